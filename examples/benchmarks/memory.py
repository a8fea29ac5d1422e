"""Memory of one energy + forces call: the activations autograd saves for the force backward,
per pair, and what that means for the largest water box a given memory holds.

    python examples/benchmarks/memory.py                  # water 192 and 1,536, float32, both presets
    python examples/benchmarks/memory.py --quick          # water 96 only (what CI runs)

Saved bytes are counted exactly with torch.autograd.graph.saved_tensors_hooks: every tensor the
forward pass keeps for the backward, counted once per storage (views of one buffer share it).
The pair list is built outside the counted call; the count does not depend on the device.
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="water 96 only")
    parser.add_argument("--memory-gb", type=float, default=24.0, help="memory for the largest-box estimate")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
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
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
