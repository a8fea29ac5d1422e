"""Cost of the non-local SPHC attention against the local model, N = 20 ... 2,000 atoms.

    python examples/benchmarks/nonlocal_scaling.py
    python examples/benchmarks/nonlocal_scaling.py --sizes 20 200 --repeats 3

Water clusters at liquid density (not periodic: non-local attention is defined for molecules
and clusters), the model of the cumulene experiment (euclidean2024, 2 layers, r_c = 4 Å,
F = 64), float32, energy + forces per call (pair list included), median of --repeats calls
after one warm-up. Only the SPHC attention sees all N(N-1) pairs, so its share grows as N^2
while the rest grows as N. Writes runs/benchmarks/nonlocal_scaling.md and .png.
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def water_cluster(n_atoms: int, seed: int = 0):
    """n_atoms // 3 water molecules on a jittered cubic grid at ~1 g/cm^3, no periodicity."""
    from ase import Atoms
    from ase.build import molecule

    n_molecules = max(1, n_atoms // 3)
    side = int(np.ceil(n_molecules ** (1 / 3)))
    rng = np.random.default_rng(seed)
    water = molecule("H2O")
    positions, symbols = [], []
    for k, cell in enumerate(np.ndindex(side, side, side)):
        if k == n_molecules:
            break
        rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        positions.append(water.positions @ rotation.T + 3.1 * np.array(cell) + rng.normal(scale=0.1, size=3))
        symbols += water.get_chemical_symbols()
    return Atoms(symbols, positions=np.concatenate(positions))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100, 200, 500, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-pairs", type=float, default=1.5e6,
                        help="skip non-local sizes with more pairs (about 12 GB per million pairs in float32 "
                             "with forces; 1,000 atoms took 15 s and most of 24 GB)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import so3k
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    results = {}
    for mode in ("off", "dynamic"):
        torch.manual_seed(0)
        model = so3k.build_model("euclidean2024", elements=["H", "O"], layers=2, cutoff=4.0, features=64, nonlocal_attention=mode)
        for p in model.parameters():
            p.requires_grad_(False)
        force_field = ForceField(model.eval())
        for n in args.sizes:
            atoms = water_cluster(n)
            if mode != "off" and len(atoms) * (len(atoms) - 1) > args.max_pairs:
                print(f"{mode:8s} N = {len(atoms):5d}: skipped, {len(atoms) * (len(atoms) - 1):,} pairs > --max-pairs", flush=True)
                continue

            def call():
                graph = build_graph([atoms], model.config.elements, model.cutoff, torch.float32)
                force_field(**graph.inputs())
                return graph

            graph = call()
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            local_pairs = int(graph.idx_i.numel())
            results[mode, len(atoms)] = (statistics.median(times) * 1e3, local_pairs)
            print(f"{mode:8s} N = {len(atoms):5d}: {results[mode, len(atoms)][0]:9.1f} ms", flush=True)

    sizes = sorted({n for _, n in results})
    lines = [
        f"euclidean2024, 2 layers, r_c = 4 Å, F = 64, float32, {args.threads} threads, energy + forces; "
        f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        "",
        "| atoms | local pairs | all pairs | local (ms) | non-local (ms) | ratio | non-local ms per atom |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        local_ms, pairs = results["off", n]
        if ("dynamic", n) not in results:
            lines.append(f"| {n:,} | {pairs:,} | {n * (n - 1):,} | {local_ms:.1f} | skipped (memory) | | |")
            continue
        nonlocal_ms, _ = results["dynamic", n]
        lines.append(f"| {n:,} | {pairs:,} | {n * (n - 1):,} | {local_ms:.1f} | {nonlocal_ms:.1f} | "
                     f"{nonlocal_ms / local_ms:.2f} | {nonlocal_ms / n:.3f} |")
    table = "\n".join(lines)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nonlocal_scaling.md").write_text(table + "\n")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for mode, label in (("off", "local"), ("dynamic", "non-local")):
        done = [n for n in sizes if (mode, n) in results]
        ax.loglog(done, [results[mode, n][0] for n in done], "o-", label=label)
    ax.set_xlabel("atoms")
    ax.set_ylabel("ms per energy + forces call")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "nonlocal_scaling.png", dpi=120)


if __name__ == "__main__":
    main()
