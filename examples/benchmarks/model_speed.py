"""Time and memory per energy+forces call of so3k models, with the neighbour-list share.

    python examples/benchmarks/model_speed.py            # both presets, about 5 minutes on 2 cores
    python examples/benchmarks/model_speed.py --quick    # fewer repeats

Systems: aspirin (21 atoms, first frame of the shipped set) and a periodic water box of 1,536
atoms (the shipped 96-atom box repeated 4x2x2; 1 g/cm^3, about 52 neighbours per atom at 5 Å).
Modes: eager Python; scripted (torch.jit.script); frozen (scripted, then torch.jit.freeze,
which turns the weights into constants and skips their gradients, as in an exported file).
Each (system, preset, dtype, mode) runs in a fresh child process, so that the peak memory of
one case (resident set size, as the kernel reports it) is not inflated by another; the table
reports the median time of the timed calls after untimed warm-up calls (TorchScript optimises
on early calls). Random weights: the cost does not depend on them. The 1-minute load average
is recorded; other work on the machine distorts every number here.
Writes runs/benchmarks/model_speed.{md,json,png} (or --out).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SYSTEMS = ("aspirin", "water")
DTYPES = ("float32", "float64")
MODES = ("eager", "scripted", "frozen")


def load_system(name):
    from so3k.data.io import read_frames
    from so3k.datasets import path as dataset_path

    atoms = read_frames(dataset_path(name), index=":1").to_atoms()[0]
    return atoms.repeat((4, 2, 2)) if name == "water" else atoms


def run_case(system, preset, dtype_name, mode, repeats, warmup, threads):
    """Runs in the child process; returns a dict of measurements."""
    import torch

    import so3k
    from so3k.forces import ForceField
    from so3k.neighbors import neighbor_list

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dtype = getattr(torch, dtype_name)
    atoms = load_system(system)
    model = so3k.build_model(preset, elements=sorted(set(atoms.get_chemical_symbols()))).to(dtype).eval()
    force_field = ForceField(model).eval()
    if mode != "eager":
        force_field = torch.jit.script(force_field)
    if mode == "frozen":  # weights become constants: what an exported file runs
        force_field = torch.jit.freeze(force_field)
    positions = torch.tensor(atoms.get_positions(), dtype=dtype)
    cell = torch.tensor(atoms.cell.array, dtype=dtype)
    pbc = torch.tensor(atoms.pbc)
    periodic = bool(pbc.any())
    species = model.species(torch.tensor(atoms.numbers))
    batch = torch.zeros(len(atoms), dtype=torch.long)

    def pairs():
        return neighbor_list(positions, model.cutoff, cell if periodic else None, pbc)

    idx_i, idx_j, offsets = pairs()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pair_times, model_times = [], []
    for k in range(warmup + repeats):
        start = time.perf_counter()
        pairs()
        middle = time.perf_counter()
        force_field(positions, species, idx_i, idx_j, offsets, cell[None], batch, 1)["forces"]
        end = time.perf_counter()
        if k >= warmup:
            pair_times.append(middle - start)
            model_times.append(end - middle)
    return {
        "atoms": len(atoms),
        "pairs": int(idx_i.numel()),
        "params": sum(p.numel() for p in model.parameters()),
        "model_ms": statistics.median(model_times) * 1e3,
        "pairs_ms": statistics.median(pair_times) * 1e3,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "model_peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["neurips2022", "euclidean2024"])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls (5 for the water box)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first (2 for the water box)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 timed calls after 2 warm-up calls")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument("--case", nargs=4, help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.warmup = 3, 2

    if args.case:
        system = args.case[0]
        repeats, warmup = (min(args.repeats, 5), min(args.warmup, 2)) if system == "water" else (args.repeats, args.warmup)
        print(json.dumps(run_case(*args.case, repeats, warmup, args.threads)))
        return

    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"WARNING: the 1-min load average is {load_before:.2f}: other work will distort the timings")
    results = []
    for system in args.systems:
        for preset in args.presets:
            for dtype_name in args.dtypes:
                for mode in MODES:
                    case = [system, preset, dtype_name, mode]
                    command = [sys.executable, __file__, "--case", *case, "--threads", str(args.threads)]
                    command += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
                    done = subprocess.run(command, capture_output=True, text=True)
                    if done.returncode != 0:
                        reason = "killed (out of memory?)" if done.returncode < 0 else done.stderr.strip().splitlines()[-1]
                        print(f"{' / '.join(case)}: FAILED: {reason}")
                        results.append(dict(zip(("system", "preset", "dtype", "mode"), case), failed=reason))
                        continue
                    result = dict(zip(("system", "preset", "dtype", "mode"), case), **json.loads(done.stdout.splitlines()[-1]))
                    results.append(result)
                    print(f"{' / '.join(case)}: {result['model_ms']:.1f} ms", flush=True)
    load_after = os.getloadavg()[0]

    import torch

    import so3k

    lines = [
        f"so3k {so3k.__version__}, torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} cores, "
        f"{args.threads} torch threads; 1-min load average {load_before:.2f} before, {load_after:.2f} after",
        "",
        "| system | preset | params | dtype | mode | atoms | pairs | E+F (ms) | neighbour list (ms) | NL share | peak memory (MB) |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "failed" in r:
            lines.append(f"| {r['system']} | {r['preset']} | | {r['dtype']} | {r['mode']} | | | failed: {r['failed']} | | | |")
            continue
        share = r["pairs_ms"] / (r["model_ms"] + r["pairs_ms"])
        lines.append(
            f"| {r['system']} | {r['preset']} | {r['params']:,} | {r['dtype']} | {r['mode']} | {r['atoms']:,} | "
            f"{r['pairs']:,} | {r['model_ms']:.1f} | {r['pairs_ms']:.2f} | {share:.1%} | {r['peak_mb']:,.0f} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    (args.out / "model_speed.md").write_text(table + "\n")
    (args.out / "model_speed.json").write_text(json.dumps(results, indent=1) + "\n")
    plot([r for r in results if "failed" not in r], args.out / "model_speed.png")
    print(f"\nwrote {args.out}/model_speed.md, .json and .png")


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(dict.fromkeys(r["system"] for r in results))
    fig, axes = plt.subplots(1, len(systems), figsize=(6 * len(systems), 4.5), squeeze=False)
    for ax, system in zip(axes[0], systems):
        rows = [r for r in results if r["system"] == system]
        labels = [f"{r['preset']}\n{r['dtype']} {r['mode']}" for r in rows]
        model = [r["model_ms"] for r in rows]
        ax.barh(labels, model, label="model (energy + forces)")
        ax.barh(labels, [r["pairs_ms"] for r in rows], left=model, label="neighbour list")
        ax.set_xlabel("time per call (ms)")
        ax.set_title(f"{system} ({rows[0]['atoms']} atoms)")
        ax.tick_params(axis="y", labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
