"""LAMMPS step time of an exported model beside the eager call and the OpenMM step.

    python examples/benchmarks/lammps_speed.py                       # aspirin, water 96, 768 and 1,536
    python examples/benchmarks/lammps_speed.py --systems aspirin     # quick

For each system, with random weights (the cost does not depend on them) and float32:
  - eager: the Python ForceField call (energy + forces, pair list included), --threads threads;
  - OpenMM CPU: one Verlet step of the exported model;
  - LAMMPS 1 rank: one NVE step, the model sees the owned atoms and the cell (no ghost shell);
  - LAMMPS 1 rank, ghosts: `pair_style so3krates ghosts always`, the domain-decomposition path
    on one rank (per-layer exchange over one cutoff of ghosts);
  - LAMMPS 2 ranks: mpirun -np 2, one thread each, per-layer exchange.
Ghost atoms per rank are read from LAMMPS's own summary. The 1,536-atom box's ghost rows are off
unless --ghosts-large. lammps_scaling.py compares the exchange with the deep shell over ranks.
Writes runs/benchmarks/lammps_speed.md.
"""

import argparse
import os
import re
import subprocess
import tempfile
from pathlib import Path

import torch  # noqa: F401  (libtorch before the OpenMM-Torch plugin)
from common import eager_ms, openmm_step_ms, random_model, report, shipped_frame

SYSTEMS = {"aspirin": ("aspirin", (1, 1, 1)), "water-96": ("water", (1, 1, 1)), "water-768": ("water", (2, 2, 2)),
           "water-1536": ("water", (4, 2, 2))}

DECK = """
units           metal
atom_style      atomic
boundary        {boundary}
newton          on
read_data       structure.data
pair_style      so3krates {style} min_distance 0
pair_coeff      * * model.pt {types}
neighbor        1.0 bin
timestep        0.0005
fix             integrate all nve
thermo          1000
run             {warmup}
run             {steps}
"""


def load(name):
    return shipped_frame(*SYSTEMS[name])


def lammps_step(folder, atoms, types, style, ranks, threads, warmup, steps):
    """ms per step of the timed run, and the average number of ghost atoms per rank."""
    import ase.io

    from so3k.lammps import lmp_command, lmp_environment, ms_per_step

    ase.io.write(folder / "structure.data", atoms, format="lammps-data", specorder=types, masses=True, atom_style="atomic")
    boundary = " ".join("p" if p else "s" for p in atoms.pbc)
    (folder / "in.bench").write_text(DECK.format(boundary=boundary, style=style, types=" ".join(types), warmup=warmup, steps=steps))
    env = lmp_environment()
    env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run([*lmp_command(ranks), "-in", "in.bench", "-log", "none"], cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"LAMMPS failed:\n{done.stdout[-2000:]}\n{done.stderr[-1000:]}")
    ghosts = re.findall(r"Nghost:\s+([0-9.e+-]+) ave", done.stdout)[-1]
    return ms_per_step(done.stdout), float(ghosts)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--preset", default="euclidean2024")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ghosts-large", action="store_true", help="also the ghost rows of the 1,536-atom box")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()

    from so3k.export import export_model
    from so3k.lammps import build

    build()  # the plugin, if it is not built yet
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OPENMM_CPU_THREADS", str(args.threads))
    load_before = os.getloadavg()[0]
    rows = []
    for name in args.systems:
        atoms = load(name)
        big = len(atoms) > 500
        warmup, repeats = (2, 4) if big else (20, 200)
        types = sorted(set(atoms.get_chemical_symbols()))
        model = random_model(args.preset, atoms, force_scale=0.01)  # gentle: a random model heats up and collapses
        rows.append((name, len(atoms), "eager (Python)", eager_ms(model, atoms, warmup, repeats), 0.0))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            openmm_path = export_model(model, folder / "openmm.pt", dtype="float32")
            rows.append((name, len(atoms), "OpenMM CPU", openmm_step_ms(openmm_path, atoms, "CPU", warmup, repeats), 0.0))
            export_model(model, folder / "model.pt", engine="lammps", dtype="float32")
            cases = [("LAMMPS 1 rank", "", 1, args.threads)]
            if len(atoms) < 1000 or args.ghosts_large:
                cases += [("LAMMPS 1 rank, ghosts", "ghosts always", 1, args.threads), ("LAMMPS 2 ranks", "", 2, 1)]
            for label, style, ranks, threads in cases:
                ms, ghosts = lammps_step(folder, atoms, types, style, ranks, threads, warmup, repeats)
                rows.append((name, len(atoms), label, ms, ghosts))
        print(f"{name}: done", flush=True)
    lines = [
        f"{args.preset}, float32, {args.threads} threads per process (2 ranks: 1 thread each); "
        f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        "",
        "| system | atoms | path | ghost atoms per rank | ms per call/step | ratio to eager |",
        "|---|---:|---|---:|---:|---:|",
    ]
    eager = {name: ms for name, _, path_name, ms, _ in rows if path_name.startswith("eager")}
    for name, n, path_name, ms, ghosts in rows:
        ghost_text = f"{ghosts:,.0f}" if path_name.startswith("LAMMPS") else ""
        lines.append(f"| {name} | {n:,} | {path_name} | {ghost_text} | {ms:.1f} | {ms / eager[name]:.2f} |")
    report(lines, args.out, "lammps_speed.md")


if __name__ == "__main__":
    main()
