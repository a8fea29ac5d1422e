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
import statistics
import tempfile
import time
from pathlib import Path

import torch  # noqa: F401  (libtorch before the OpenMM-Torch plugin)

SYSTEMS = ("aspirin", "water")


def load(name):
    from so3k.data.io import read_frames
    from so3k.datasets import path

    atoms = read_frames(path(name), index=":1").to_atoms()[0]
    return atoms.repeat((4, 2, 2)) if name == "water" else atoms


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--preset", default="euclidean2024")
    parser.add_argument("--platforms", nargs="+", default=["Reference", "CPU"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()


    import openmm
    from openmm import unit

    import so3k
    from so3k.export import export_model
    from so3k.export.openmm import system_from_atoms
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OPENMM_CPU_THREADS", str(args.threads))
    load_before = os.getloadavg()[0]
    rows = []
    for name in args.systems:
        atoms = load(name)
        big = len(atoms) > 500
        warmup, repeats = (3, 5) if big else (30, 200)
        torch.manual_seed(0)
        model = so3k.build_model(args.preset, elements=sorted(set(atoms.get_chemical_symbols()))).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        force_field = ForceField(model)

        def eager_call():
            graph = build_graph([atoms], model.config.elements, model.cutoff, torch.float32)
            force_field(**graph.inputs())

        for _ in range(warmup):
            eager_call()
        eager = []
        for _ in range(repeats):
            t = time.perf_counter()
            eager_call()
            eager.append(time.perf_counter() - t)
        eager_ms = statistics.median(eager) * 1e3
        rows.append((name, len(atoms), "eager (Python)", eager_ms, 1.0))
        with tempfile.TemporaryDirectory() as folder:
            path = export_model(model, Path(folder) / "model.pt", dtype="float32")
            for platform in args.platforms:
                system = system_from_atoms(path, atoms)
                integrator = openmm.VerletIntegrator(0.5 * unit.femtoseconds)
                context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
                context.setPositions(atoms.positions * 0.1)
                integrator.step(warmup)
                start = time.perf_counter()
                integrator.step(repeats)
                step_ms = (time.perf_counter() - start) / repeats * 1e3
                rows.append((name, len(atoms), f"OpenMM {platform}", step_ms, step_ms / eager_ms))
                del context
        print(f"{name}: done", flush=True)
    lines = [
        f"{args.preset}, float32, {args.threads} threads; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        "",
        "| system | atoms | path | ms per call/step | ratio to eager | ns/day at 0.5 fs |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, n, path_name, ms, ratio in rows:
        lines.append(f"| {name} | {n:,} | {path_name} | {ms:.1f} | {ratio:.2f} | {0.5e-6 * 86400e3 / ms:.3f} |")
    table = "\n".join(lines)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "openmm_speed.md").write_text(table + "\n")



if __name__ == "__main__":
    main()
