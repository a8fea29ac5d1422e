"""``so3k demo`` (``make demo``): the main job on bundled data.

For now: a summary of every shipped data set, then a short GFN2-xTB MD run that makes a fresh
data set of ethanol, and its statistics. Artifacts go to ``runs/demo/``.
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


def run_demo(out_dir: str | Path = "runs/demo") -> int:
    from so3k.data.generate.md import MDConfig, generate_md

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print("== shipped data sets (so3k/datasets; E std after per-element reference energies)")
    summarise_shipped()

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
