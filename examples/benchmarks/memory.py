"""Memory of one energy + forces call: the activations autograd saves for the force backward,
per pair, and what that means for the largest water box a given memory holds.

    python examples/benchmarks/memory.py                  # water 192 and 1,536, float32, both presets
    python examples/benchmarks/memory.py --quick          # water 96 only (what CI runs)
    python examples/benchmarks/memory.py --peak           # + peak memory per pair: eager against the .pt2 package

Saved bytes are counted exactly with torch.autograd.graph.saved_tensors_hooks: every tensor the
forward pass keeps for the backward, counted once per storage (views of one buffer share it).
The pair list is built outside the counted call; the count does not depend on the device.

--peak adds what a call really holds at its peak, saved activations and temporaries together,
for the eager call and the compiled package (so3k export --format aoti, whose graph has the
force backward fused in by Inductor and so saves no autograd tensors): each call runs in a
fresh process, and peak bytes per pair = (peak RSS of the 1,536-atom water call - that of the
192-atom call) / (difference in pairs), which cancels the process's fixed memory.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import random_model, shipped_frame  # noqa: E402


def saved_bytes(model, atoms) -> dict:
    """Bytes saved for the backward of one energy + forces call, and the call's pairs."""
    from so3k.graph import build_graph

    graph = build_graph([atoms], model.config.elements, model.cutoff, torch.float32)
    inputs = graph.inputs()
    positions = inputs["positions"].clone().requires_grad_(True)
    seen = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        energy = model.atomic_energies(positions, inputs["species"], inputs["idx_i"], inputs["idx_j"],
                                       inputs["offsets"].to(positions.dtype) @ inputs["cell"][0], inputs["batch"]).sum()
    torch.autograd.grad(energy, positions)
    pairs = int(inputs["idx_i"].numel())
    total = sum(seen.values())
    return {"atoms": len(atoms), "pairs": pairs, "saved_MB": total / 1e6, "bytes_per_pair": total / pairs,
            "pairs_per_atom": pairs / len(atoms)}


def peak_rss_child(mode, preset, repeat, package):
    """Run in a fresh process: one structure's energy + forces twice; print peak RSS and pairs."""
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    torch.set_num_threads(2)
    atoms = shipped_frame("water", repeat)
    model = random_model(preset, atoms).float()
    inputs = build_graph([atoms], model.config.elements, model.cutoff, torch.float32).inputs()
    if mode == "compiled":
        from so3k.export.aoti import CompiledForceField

        call = CompiledForceField(package)
    else:
        call = ForceField(model)
    for _ in range(2):
        call(**inputs)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    print(json.dumps({"peak_MB": int(status["VmHWM"].split()[0]) / 1024, "pairs": int(inputs["idx_i"].numel())}))


def peak_per_pair(preset, folder: Path) -> dict:
    """Peak bytes per pair of the eager call and of the compiled package (see the module doc)."""
    import subprocess

    from so3k.export import export_model

    package = folder / f"{preset}.pt2"
    export_model(random_model(preset, shipped_frame("water")).float(), package, dtype="float32", format="aoti")
    row = {"preset": preset}
    for mode in ("eager", "compiled"):
        runs = []
        for repeat in ("2,1,1", "4,2,2"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, preset, repeat, str(package)],
                                 capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        row[f"{mode}_kB_per_pair"] = (runs[1]["peak_MB"] - runs[0]["peak_MB"]) * 1048.576 / (runs[1]["pairs"] - runs[0]["pairs"])
        row[f"{mode}_peak_MB_1536"] = runs[1]["peak_MB"]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="water 96 only")
    parser.add_argument("--memory-gb", type=float, default=24.0, help="memory for the largest-box estimate")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument("--peak", action="store_true", help="also peak memory per pair, eager against the compiled package")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, preset, repeat, package = args.child
        return peak_rss_child(mode, preset, tuple(int(r) for r in repeat.split(",")), package)
    repeats = [(1, 1, 1)] if args.quick else [(2, 1, 1), (4, 2, 2)]
    rows = []
    for preset in ("euclidean2024", "neurips2022"):
        for repeat in repeats:
            atoms = shipped_frame("water", repeat)
            model = random_model(preset, atoms).float()
            row = {"preset": preset, **saved_bytes(model, atoms)}
            # saved activations dominate a call's memory: atoms that fit = memory / (bytes per pair x pairs per atom)
            row["largest_waters"] = int(args.memory_gb * 1e9 / (row["bytes_per_pair"] * row["pairs_per_atom"]) / 3)
            rows.append(row)
    print(f"| preset | atoms | pairs | saved (MB) | kB per pair | waters in {args.memory_gb:g} GB (saved activations only) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['preset']} | {r['atoms']:,} | {r['pairs']:,} | {r['saved_MB']:.0f} | {r['bytes_per_pair'] / 1e3:.1f} | "
              f"{r['largest_waters']:,} |")
    peaks = []
    if args.peak:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            peaks = [peak_per_pair(preset, Path(folder)) for preset in ("euclidean2024", "neurips2022")]
        print("\n| preset | peak kB per pair, eager | peak kB per pair, compiled (.pt2) | peak RSS at 1,536 atoms, eager / compiled (MB) |")
        print("|---|---:|---:|---:|")
        for r in peaks:
            print(f"| {r['preset']} | {r['eager_kB_per_pair']:.1f} | {r['compiled_kB_per_pair']:.1f} | "
                  f"{r['eager_peak_MB_1536']:.0f} / {r['compiled_peak_MB_1536']:.0f} |")
    if args.out:
        args.out.write_text(json.dumps({"saved": rows, "peak": peaks}, indent=1) if peaks else json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
