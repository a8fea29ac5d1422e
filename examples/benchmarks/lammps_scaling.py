"""Scaling of `pair_style so3krates` over MPI ranks: per-layer exchange against the deep ghost shell.

    python examples/benchmarks/lammps_scaling.py                 # 1,536 and 12,288 atoms, both presets (~10 min)
    python examples/benchmarks/lammps_scaling.py --quick         # 96 atoms, euclidean2024 (what CI runs)

Water boxes of the speed suite (the 96 shipped atoms repeated), float32, random weights (the cost
does not depend on them), NVE steps of 0.5 fs:
  - strong scaling: the same box on 1 rank x 2 threads (the model sees the owned atoms and the
    cell: no ghosts), and on 2 ranks x 1 thread with the per-layer exchange (default) and with the
    deep shell (`exchange shell`); 4 ranks x 1 thread where asked, oversubscribed on 2 cores;
  - weak scaling: 768 atoms per rank, 1 rank x 1 thread against 2 ranks x 1 thread.
Per run: ghost atoms of the busiest rank (LAMMPS's summary), ms per step (LAMMPS's loop time),
the share of the step spent in the exchanges (waiting for the other rank included) and the peak
memory of the largest rank (what the pair style reports at the end of a run). Cases that would
not fit in memory are skipped and say so. Writes lammps_scaling.{md,json,png} to --out.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch  # noqa: F401  (libtorch first)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import random_model, report, shipped_frame  # noqa: E402
from lammps_speed import DECK  # noqa: E402  (the NVE deck, 1 Å skin)

SKIN = 1.0  # lammps_speed.DECK's neighbour skin (Å)
# kB per pair at the peak of one float32 call (memory.py --peak), for the fits-in-memory check
PEAK_KB_PER_PAIR = {"euclidean2024": 23.0, "neurips2022": 50.8}
PAIRS_PER_ATOM = 51.6  # liquid water, 5 Å cutoff


def run_lammps(folder: Path, atoms, style: str, ranks: int, threads: int, warmup: int, steps: int) -> dict:
    import ase.io
    from so3k.lammps import lmp_command, lmp_environment, ms_per_step

    ase.io.write(folder / "structure.data", atoms, format="lammps-data", specorder=["H", "O"], masses=True, atom_style="atomic")
    (folder / "in.scaling").write_text(DECK.format(boundary="p p p", style=style, types="H O", warmup=warmup, steps=steps))
    env = lmp_environment()
    env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run([*lmp_command(ranks), "-in", "in.scaling", "-log", "none"], cwd=folder, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"LAMMPS failed:\n{done.stdout[-2000:]}\n{done.stderr[-1000:]}")
    out = done.stdout
    row = {"ms": ms_per_step(out), "ghosts": float(re.findall(r"Nghost:\s+\S+ ave\s+(\S+) max", out)[-1])}
    exchange = re.findall(r"per-layer exchange took (\S+) s", out)
    loop = float(re.findall(r"Loop time of (\S+) on", out)[-1])
    # the exchange time of the timed run covers its steps and the setup call before them
    row["exchange_share"] = float(exchange[-1]) / (loop * (steps + 1) / steps) if exchange else 0.0
    row["peak_MB"] = float(re.findall(r"peak memory (\S+) MB", out)[-1])
    return row


def shell_ghosts(atoms: int, ranks: int, reach: float) -> float:
    """Ghost atoms per rank of a liquid-water box split in slabs, kept out to `reach` Å (an estimate)."""
    side = (atoms / 0.1) ** (1 / 3)  # about 0.1 atoms per Å^3
    return 0.1 * (side / ranks + 2 * reach) * (side + 2 * reach) ** 2 - atoms / ranks


def fits(preset: str, atoms: float, memory_gb: float) -> bool:
    """Whether one call on `atoms` atoms (all ranks of this machine together) fits, from memory.py's figure."""
    return atoms * PAIRS_PER_ATOM * PEAK_KB_PER_PAIR[preset] * 1e3 < 0.8 * memory_gb * 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="96 atoms, euclidean2024, 1 and 2 ranks")
    parser.add_argument("--four", action="store_true", help="also 4 ranks x 1 thread on 1,536 atoms (oversubscribed on 2 cores)")
    parser.add_argument("--memory-gb", type=float, default=24.0, help="this machine's memory, for skipping what cannot fit")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)

    from so3k.export import export_model
    from so3k.lammps import build

    build()
    presets = ["euclidean2024"] if args.quick else ["euclidean2024", "neurips2022"]
    strong = [(96, (1, 1, 1))] if args.quick else [(1536, (4, 2, 2)), (12288, (8, 4, 4))]
    rows, skipped = [], []
    load_before = os.getloadavg()[0]
    for preset in presets:
        for count, repeat in strong:  # count: the atoms of the box
            atoms = shipped_frame("water", repeat)
            big = len(atoms) > 5000
            warmup, steps = (1, 2) if big else (2, 5)
            model = random_model(preset, atoms, force_scale=0.01)
            cases = [("1 rank x 2 threads", "", 1, 2), ("2 ranks x 1 thread, per-layer exchange", "", 2, 1),
                     ("2 ranks x 1 thread, deep shell", "exchange shell", 2, 1)]
            if args.four and count == 1536:
                cases.append(("4 ranks x 1 thread, per-layer exchange (oversubscribed)", "", 4, 1))
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                export_model(model, folder / "model.pt", engine="lammps", dtype="float32")
                for label, style, ranks, threads in cases:
                    if not fits(preset, len(atoms), args.memory_gb):
                        skipped.append(f"{preset}, {len(atoms):,} atoms, {label}: one call needs about "
                                       f"{len(atoms) * PAIRS_PER_ATOM * PEAK_KB_PER_PAIR[preset] / 1e6:.0f} GB")
                        continue
                    if "shell" in style and (preset != "euclidean2024" or len(atoms) > 1536):
                        # measured: the 1,536-atom euclidean2024 shell is the largest that fits (about 10 GB)
                        ghosts = shell_ghosts(len(atoms), ranks, model.config.receptive_field + SKIN)
                        skipped.append(f"{preset}, {len(atoms):,} atoms, {label}: about {ghosts:,.0f} ghost atoms per rank")
                        continue
                    row = {"kind": "strong", "preset": preset, "atoms": len(atoms), "case": label, "ranks": ranks,
                           **run_lammps(folder, atoms, style, ranks, threads, warmup, steps)}
                    rows.append(row)
                    print(f"{preset} {len(atoms)} {label}: {row['ms']:.0f} ms/step, {row['ghosts']:.0f} ghosts", flush=True)
    # weak scaling: 768 atoms per rank, one thread per rank
    for preset in presets[:1]:
        for ranks, repeat in ((1, (2, 2, 2)), (2, (4, 2, 2)))[: 1 if args.quick else 2]:
            atoms = shipped_frame("water", repeat)
            model = random_model(preset, atoms, force_scale=0.01)
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                export_model(model, folder / "model.pt", engine="lammps", dtype="float32")
                row = {"kind": "weak", "preset": preset, "atoms": len(atoms), "ranks": ranks,
                       "case": f"{ranks} rank(s) x 1 thread, {len(atoms) // ranks} atoms per rank",
                       **run_lammps(folder, atoms, "", ranks, 1, 2, 5)}
                rows.append(row)
                print(f"weak {ranks}: {row['ms']:.0f} ms/step", flush=True)

    base = {(r["preset"], r["atoms"]): r["ms"] for r in rows if r["kind"] == "strong" and r["ranks"] == 1}
    weak_base = next((r["ms"] for r in rows if r["kind"] == "weak" and r["ranks"] == 1), None)
    lines = [f"float32, water, NVE; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
             f"torch {torch.__version__}", "",
             "| scaling | preset | atoms | run | ghosts (busiest rank) | ms/step | relative to 1 rank | in exchanges | peak MB (largest rank) |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ref = base.get((r["preset"], r["atoms"])) if r["kind"] == "strong" else weak_base
        rel = f"{r['ms'] / ref:.2f}" if ref else ""
        share = f"{100 * r['exchange_share']:.0f} %" if r["exchange_share"] else ""
        lines.append(f"| {r['kind']} | {r['preset']} | {r['atoms']:,} | {r['case']} | {r['ghosts']:,.0f} | {r['ms']:,.0f} | "
                     f"{rel} | {share} | {r['peak_MB']:,.0f} |")
    if skipped:
        lines += ["", "Not run (memory): " + "; ".join(skipped) + "."]
    report(lines, args.out, "lammps_scaling.md")
    (args.out / "lammps_scaling.json").write_text(json.dumps({"rows": rows, "skipped": skipped}, indent=1))
    plot(rows, base, args.out / "lammps_scaling.png")
    return rows


def plot(rows, base, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strong = [r for r in rows if r["kind"] == "strong" and r["ranks"] > 1]
    if not strong:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    labels = [f"{r['preset']}\n{r['atoms']:,} atoms\n{r['ranks']} ranks, {'shell' if 'shell' in r['case'] else 'exchange'}" for r in strong]
    left.bar(range(len(strong)), [r["ms"] / base[(r["preset"], r["atoms"])] for r in strong],
             color=["tab:red" if "shell" in r["case"] else "tab:blue" for r in strong])
    left.axhline(1.0, color="k", lw=0.8)
    left.set_xticks(range(len(strong)), labels, fontsize=7, rotation=35, ha="right")
    left.set_ylabel("step time / one-rank step")
    left.set_title("Strong scaling on 2 cores: per-layer exchange (blue), deep shell (red)")
    right.bar(range(len(strong)), [r["ghosts"] for r in strong],
              color=["tab:red" if "shell" in r["case"] else "tab:blue" for r in strong])
    right.set_xticks(range(len(strong)), labels, fontsize=7, rotation=35, ha="right")
    right.set_ylabel("ghost atoms on the busiest rank")
    right.set_title("Ghosts: one cutoff (blue) against the receptive field (red)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
