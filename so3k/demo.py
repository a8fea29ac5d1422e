"""``so3k demo`` (``make demo``): the main job on bundled data.

A summary of every shipped data set; a small So3krates model trained on the shipped aspirin
set for a few minutes of CPU time and evaluated on frames it never saw; the model exported for
OpenMM and run as a short NVE simulation on the CPU platform; the model exported for LAMMPS and
run with the aspirin NVE deck of deploy/lammps/examples; then a short GFN2-xTB MD run that
makes a fresh data set of ethanol. Artifacts go to ``runs/demo/``.
"""

from __future__ import annotations

import time
from pathlib import Path

from so3k import datasets
from so3k.data.io import read_frames
from so3k.data.plots import plot_dataset
from so3k.data.stats import compute_stats


def summarise_shipped() -> None:
    print(f"{'data set':<16}{'frames':>7}{'atoms':>8}  {'elements':<12}{'E std/eV':>9}{'F std/(eV/Å)':>14}{'d_min/Å':>9}")
    for name in datasets.available():
        stats = compute_stats(read_frames(datasets.path(name)))
        lo, hi, _ = stats.atoms_per_frame
        atoms = f"{lo}" if lo == hi else f"{lo}-{hi}"
        e_std = f"{stats.energy_residual_std:.3f}" if stats.energy else "-"
        f_std = f"{stats.forces['std']:.3f}" if stats.forces else "-"
        print(f"{name:<16}{stats.n_frames:>7}{atoms:>8}  {','.join(stats.elements):<12}{e_std:>9}{f_std:>14}{stats.d_min:>9.3f}")


# A small euclidean2024 model: 2 layers, F = 64; 3 minutes of training on 2 CPU cores.
DEMO_TRAINING = [
    "model.preset=euclidean2024", "model.layers=2", "model.features=64",
    "data.path=aspirin", "data.n_train=450", "data.n_valid=50", "data.n_test=200",
    "training.batch_size=5", "training.lr=2e-3", "training.max_minutes=3", "training.plateau_patience=5",
]


def train_demo_model(out_dir: Path, minutes: float = 3.0) -> Path:
    from so3k.evaluate import evaluate
    from so3k.train import load_config, train

    for name in ("last.ckpt", "best.ckpt", "metrics.csv"):  # a new demo replaces the previous one
        (out_dir / name).unlink(missing_ok=True)
    config = load_config(None, DEMO_TRAINING + [f"training.max_minutes={minutes}"])
    best = train(config, out_dir)
    metrics = evaluate(best, "aspirin", subset="test", progress=False)
    print(
        f"\nheld-back test frames ({int(metrics['frames'])} never seen in training): energy MAE "
        f"{metrics['energy_mae_meV']:.1f} meV ({metrics['energy_mae_meV_atom']:.2f} meV/atom), "
        f"forces MAE {metrics['forces_mae_meV_A']:.1f} meV/Å"
    )
    print(f"model {best}; learning curves {out_dir / 'learning_curves.png'}; parity plot {out_dir / 'parity_valid.png'}")
    print(f"inspect it with: so3k info {best}")
    return best


def openmm_demo(best: Path, out_dir: Path, steps: int = 400, warmup: int = 50) -> Path:
    """Export for OpenMM and run NVE MD of an aspirin frame; prints ns/day and the energy drift."""
    import numpy as np
    import openmm
    import torch  # noqa: F401  (libtorch before the OpenMM-Torch plugin)
    from openmm import unit

    from so3k.export import export_model
    from so3k.export.openmm import system_from_atoms
    from so3k.units import ANGSTROM_TO_NM

    path = export_model(best, out_dir / "model-openmm.pt", engine="openmm", dtype="float32")
    atoms = read_frames(datasets.path("aspirin"), index=":1").to_atoms()[0]
    system = system_from_atoms(path, atoms)
    timestep = 0.5
    integrator = openmm.VerletIntegrator(timestep * unit.femtoseconds)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(atoms.positions * ANGSTROM_TO_NM)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 0)
    integrator.step(warmup)  # TorchScript optimises the model during its first calls
    energies = []
    start = time.perf_counter()
    for _ in range(steps // 10):
        integrator.step(10)
        state = context.getState(getEnergy=True)
        energies.append((state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole))
    wall = time.perf_counter() - start
    energies = np.array(energies)
    ns_per_day = steps * timestep * 1e-6 / (wall / 86400)
    print(
        f"exported {path}; OpenMM CPU platform, NVE, {steps} steps of {timestep} fs: {ns_per_day:.2f} ns/day, "
        f"{1e3 * wall / steps:.1f} ms/step; total energy drift {energies[-1] - energies[0]:+.3f} kJ/mol "
        f"(fluctuation {energies.std():.3f} kJ/mol)"
    )
    return path


def lammps_demo(best: Path, out_dir: Path, steps: int = 300) -> Path:
    """Export for LAMMPS, build the plugin if needed and run the aspirin NVE deck."""
    import shutil
    import subprocess

    from so3k.export import export_model
    from so3k.lammps import EXAMPLES, build, lmp_command, lmp_environment, ms_per_step, plugin_status, thermo_table

    path = export_model(best, out_dir / "model-lammps.pt", engine="lammps", dtype="float32")
    if plugin_status() != "ok":
        print("compiling the pair_style so3krates plugin (once per environment, about 20 s) ...", flush=True)
    plugin = build()
    folder = out_dir / "lammps"
    folder.mkdir(exist_ok=True)
    for name in ("in.aspirin-nve", "aspirin.data"):
        shutil.copy(EXAMPLES / name, folder / name)
    command = [*lmp_command(), "-in", "in.aspirin-nve", "-var", "model", str(path.resolve()), "-var", "steps", str(steps)]
    done = subprocess.run(command, cwd=folder, env=lmp_environment(), capture_output=True, text=True)
    (folder / "screen.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"LAMMPS failed; its output is in {folder / 'screen.txt'}:\n{done.stdout[-1500:]}")
    total = thermo_table(done.stdout)["TotEng"]
    ms = ms_per_step(done.stdout)
    print(
        f"exported {path}; plugin {plugin}\nLAMMPS ({folder}/in.aspirin-nve), NVE, {steps} steps of 0.5 fs: "
        f"{ms:.1f} ms/step; total energy {total[0]:.4f} -> {total[-1]:.4f} eV; trajectory {folder / 'aspirin-nve.xyz'}"
    )
    print(f"  the same by hand: cd {folder} && lmp -in in.aspirin-nve -var model {path.resolve()}")
    return path


def run_demo(out_dir: str | Path = "runs/demo", minutes: float = 3.0) -> int:
    from so3k.data.generate.md import MDConfig, generate_md

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print("== shipped data sets (so3k/datasets; E std after per-element reference energies)")
    summarise_shipped()

    print(f"\n== training a small So3krates model on aspirin for {minutes:g} minutes of CPU time")
    best = train_demo_model(out_dir, minutes)

    print("\n== the trained model in OpenMM (so3k export --engine openmm)")
    openmm_demo(best, out_dir)

    print("\n== the trained model in LAMMPS (so3k export --engine lammps, pair_style so3krates)")
    lammps_demo(best, out_dir)

    print("\n== a fresh data set: GFN2-xTB Langevin MD of ethanol at 500 K (200 frames)")
    t0 = time.perf_counter()
    config = MDConfig(molecule="ethanol", n_frames=200, equilibration_steps=400, stride=10, seed=0)
    path = generate_md(config, out_dir / "ethanol-md.extxyz", overwrite=True, command="so3k demo")
    print(f"generated in {time.perf_counter() - t0:.1f} s")
    frames = read_frames(path)
    print(compute_stats(frames).format(str(path)))
    plot = plot_dataset(frames, out_dir / "ethanol-md.png", title="GFN2-xTB ethanol, 500 K")
    print(f"\nartifacts in {out_dir}/: {path.name}, its provenance file, and the overview plot {plot.name}")
    return 0
