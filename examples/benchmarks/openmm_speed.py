"""OpenMM step time of an exported model against the eager model's energy+forces call.

    python examples/benchmarks/openmm_speed.py                      # aspirin and the 1,536-atom water box
    python examples/benchmarks/openmm_speed.py --systems aspirin    # quick

For each system: the eager ForceField call (energy + forces, pair list included), and one
Verlet step of an OpenMM Context holding the exported model (float32) on the Reference and
CPU platforms, each after warm-up calls (TorchScript optimises the module during its first
calls). The ratio OpenMM step / eager call is the engine overhead; ns/day at 0.5 fs.
Random weights (the cost does not depend on them). Writes runs/benchmarks/openmm_speed.md.
"""

import argparse
import os
import tempfile
from pathlib import Path

import torch  # noqa: F401  (libtorch before the OpenMM-Torch plugin)
from common import eager_ms, openmm_step_ms, random_model, report, shipped_frame

SYSTEMS = ("aspirin", "water")


def load(name):
    return shipped_frame(name, (4, 2, 2) if name == "water" else (1, 1, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--preset", default="euclidean2024")
    parser.add_argument("--platforms", nargs="+", default=["Reference", "CPU"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()


    from so3k.export import export_model

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OPENMM_CPU_THREADS", str(args.threads))
    load_before = os.getloadavg()[0]
    rows = []
    for name in args.systems:
        atoms = load(name)
        warmup, repeats = (3, 5) if len(atoms) > 500 else (30, 200)
        model = random_model(args.preset, atoms)
        eager = eager_ms(model, atoms, warmup, repeats)
        rows.append((name, len(atoms), "eager (Python)", eager, 1.0))
        with tempfile.TemporaryDirectory() as folder:
            path = export_model(model, Path(folder) / "model.pt", dtype="float32")
            for platform in args.platforms:
                step = openmm_step_ms(path, atoms, platform, warmup, repeats)
                rows.append((name, len(atoms), f"OpenMM {platform}", step, step / eager))
        print(f"{name}: done", flush=True)
    lines = [
        f"{args.preset}, float32, {args.threads} threads; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        "",
        "| system | atoms | path | ms per call/step | ratio to eager | ns/day at 0.5 fs |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, n, path_name, ms, ratio in rows:
        lines.append(f"| {name} | {n:,} | {path_name} | {ms:.1f} | {ratio:.2f} | {0.5e-6 * 86400e3 / ms:.3f} |")
    report(lines, args.out, "openmm_speed.md")


if __name__ == "__main__":
    main()
