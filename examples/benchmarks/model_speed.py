"""Time per energy+forces call of so3k models, with the neighbour-list share.

    python examples/benchmarks/model_speed.py                # both presets, ~5 minutes on 2 cores
    python examples/benchmarks/model_speed.py --quick        # fewer repeats

Systems: aspirin (21 atoms, first frame of the shipped set) and a periodic water box of 1,536
atoms (the shipped 96-atom box repeated 4x2x2; 1 g/cm^3, about 54 neighbours per atom at 5 Å).
Every (preset, dtype, mode) runs interleaved with the others, repeat after repeat, so that
machine noise hits all of them alike; the table reports medians. Random weights: the cost
does not depend on them. Writes a markdown table and a bar chart to --out.
"""

import argparse
import copy
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import so3k
from so3k.data.io import read_frames
from so3k.datasets import path as dataset_path
from so3k.forces import ForceField
from so3k.neighbors import neighbor_list

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def load_systems():
    aspirin = read_frames(dataset_path("aspirin"), index=":1").to_atoms()[0]
    water = read_frames(dataset_path("water"), index=":1").to_atoms()[0].repeat((4, 2, 2))
    return {"aspirin (21 atoms)": aspirin, f"water ({len(water)} atoms, periodic)": water}


def make_case(atoms, model, dtype, scripted):
    model = copy.deepcopy(model).to(dtype).eval()
    force_field = torch.jit.script(ForceField(model)) if scripted else ForceField(model)
    positions = torch.tensor(atoms.get_positions(), dtype=dtype)
    cell = torch.tensor(atoms.cell.array, dtype=dtype)
    pbc = torch.tensor(atoms.pbc)
    species = model.species(torch.tensor(atoms.numbers))
    batch = torch.zeros(len(atoms), dtype=torch.long)
    periodic = bool(pbc.any())

    def pairs():
        return neighbor_list(positions, model.cutoff, cell if periodic else None, pbc)

    idx_i, idx_j, offsets = pairs()

    def call():
        out = force_field(positions, species, idx_i, idx_j, offsets, cell[None], batch, 1)
        return out["forces"]

    return pairs, call, idx_i.numel()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["neurips2022", "euclidean2024"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (TorchScript optimises on early calls)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 repeats, 2 warm-up calls")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.warmup = 3, 2
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    busy = os.getloadavg()[0]
    if busy > 0.5:
        print(f"WARNING: 1-min load average is {busy:.2f} before starting: other work will distort the timings")
    systems = load_systems()
    cases = {}
    for system, atoms in systems.items():
        elements = sorted(set(atoms.get_chemical_symbols()))
        for preset in args.presets:
            torch.manual_seed(0)
            base = so3k.build_model(preset, elements=elements)
            for dtype_name, dtype in DTYPES.items():
                for mode in ("eager", "scripted"):
                    key = (system, preset, dtype_name, mode)
                    cases[key] = make_case(atoms, base, dtype, mode == "scripted")
                    print(f"prepared {' / '.join(key)}", flush=True)

    load_before = os.getloadavg()[0]
    for _ in range(args.warmup):
        for pairs, call, _ in cases.values():
            pairs()
            call()
    model_times = {k: [] for k in cases}
    pair_times = {k: [] for k in cases}
    for r in range(args.repeats):
        for key, (pairs, call, _) in cases.items():
            pair_times[key].append(timed(pairs))
            model_times[key].append(timed(call))
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)
    load_after = os.getloadavg()[0]

    params = {p: sum(q.numel() for q in so3k.build_model(p, elements=["H", "C", "O"]).parameters()) for p in args.presets}
    lines = [
        f"so3k {so3k.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} threads; 1-min load average {load_before:.2f} before, {load_after:.2f} after; "
        f"median of {args.repeats} calls after {args.warmup} warm-up calls",
        "",
        "Parameters (elements H, C, O): " + ", ".join(f"{p} {n:,}" for p, n in params.items()),
        "",
        "| system | preset | dtype | mode | pairs | model E+F (ms) | neighbour list (ms) | NL share |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for key, (_, _, num_pairs) in cases.items():
        t_model = statistics.median(model_times[key]) * 1e3
        t_pairs = statistics.median(pair_times[key]) * 1e3
        lines.append(
            f"| {' | '.join(key)} | {num_pairs:,} | {t_model:.1f} | {t_pairs:.1f} | {t_pairs / (t_model + t_pairs):.0%} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    (args.out / "model_speed.md").write_text(table + "\n")
    plot(cases, model_times, pair_times, args.out / "model_speed.png")
    print(f"\nwrote {args.out / 'model_speed.md'} and {args.out / 'model_speed.png'}")


def plot(cases, model_times, pair_times, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(dict.fromkeys(k[0] for k in cases))
    fig, axes = plt.subplots(1, len(systems), figsize=(6 * len(systems), 4.5))
    for ax, system in zip(axes, systems):
        keys = [k for k in cases if k[0] == system]
        labels = [f"{k[1]}\n{k[2]} {k[3]}" for k in keys]
        model = [statistics.median(model_times[k]) * 1e3 for k in keys]
        pairs = [statistics.median(pair_times[k]) * 1e3 for k in keys]
        ax.barh(labels, model, label="model (energy + forces)")
        ax.barh(labels, pairs, left=model, label="neighbour list")
        ax.set_xlabel("time per call (ms)")
        ax.set_title(system)
        ax.tick_params(axis="y", labelsize=7)
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
