"""Time so3k on one case; the suite (suite.py) runs this in a fresh process per measurement.

    python so3k_cases.py --preset euclidean2024 --mode eager --case aspirin --structures DIR

Prints one JSON line like peer_models.py: preset, mode, case, dtype, params, ms (median after
warm-up), peak_rss_mb, atoms, pairs. Modes:
  eager     the Python ForceField call (energy + forces); pair list built once, outside the
            timed call, as for the peers (--with-pairs puts it inside: the scaling series);
  exported  the same call through the frozen TorchScript module that `so3k export` writes;
  compiled  the same call through the AOTInductor package of `so3k export --format aoti`
            (compiled once per preset and dtype into DIR/../packages, outside the timing);
  train     one training step on all frames of the case: energy + forces, loss MSE(E) + MSE(F)
            against the frames' values, backward, Adam step (as peer_models.py does);
  train_compiled  the same step with training.compile (so3k.train.compiled); the first step,
            which traces and compiles, is timed on its own (compile_s);
  openmm    one 0.5 fs Verlet step of an OpenMM Context holding the exported model (CPU platform);
  lammps    one NVE step of `pair_style so3krates` on one rank (the plugin must be built).
Random weights (seed 0); the readout is scaled down so that MD steps stay stable.
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import ase.io
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import median_ms  # noqa: E402


def build(preset, frames, dtype):
    import so3k

    torch.manual_seed(0)
    elements = sorted({s for atoms in frames for s in atoms.get_chemical_symbols()} | {"H", "C", "O"})
    model = so3k.build_model(preset, elements=elements).to(dtype)
    model.readout.scale.fill_(0.01)
    return model


def run(args):
    from so3k.forces import ForceField
    from so3k.graph import build_graph
    from so3k.model import count_parameters

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    frames = ase.io.read(args.structures / f"{args.case}.extxyz", index=":")
    model = build(args.preset, frames, dtype)
    params = count_parameters(model)

    def graph():
        return build_graph(frames, model.config.elements, model.cutoff, dtype)

    pairs = int(graph().inputs()["idx_i"].shape[0])
    compile_s = None
    if args.mode in ("train", "train_compiled"):
        from so3k.train.compiled import CompiledForces

        model.train()
        force_field = CompiledForces(model) if args.mode == "train_compiled" else ForceField(model).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        inputs = graph().inputs()
        energy_ref = torch.tensor([a.get_potential_energy() for a in frames], dtype=dtype)
        forces_ref = torch.tensor(np_forces(frames), dtype=dtype)

        def step():
            optimizer.zero_grad()
            out = force_field(**inputs)
            loss = ((out["energy"] - energy_ref) ** 2).mean() + ((out["forces"] - forces_ref) ** 2).mean()
            loss.backward()
            optimizer.step()

        if args.mode == "train_compiled":  # the first step traces and compiles: timed on its own
            start = time.perf_counter()
            step()
            compile_s = time.perf_counter() - start

    elif args.mode == "compiled":
        from so3k.export.aoti import CompiledForceField

        package = CompiledForceField(compiled_package(args, model))
        inputs = graph().inputs()

        def step():
            package(**(graph().inputs() if args.with_pairs else inputs))["forces"]

    elif args.mode in ("eager", "exported"):
        for p in model.parameters():
            p.requires_grad_(False)
        force_field = ForceField(model).eval()
        if args.mode == "exported":
            from so3k.runtime import plain_torchscript

            plain_torchscript()
            force_field = torch.jit.freeze(torch.jit.script(force_field))
        inputs = graph().inputs()

        def step():
            force_field(**(graph().inputs() if args.with_pairs else inputs))["forces"]

    elif args.mode in ("openmm", "lammps"):
        return result(args, params, engine_step_ms(args, model, frames[0]), frames, pairs)
    else:
        raise ValueError(args.mode)
    row = result(args, params, median_ms(step, args.warmup, args.repeats), frames, pairs)
    if compile_s is not None:
        row["compile_s"] = round(compile_s, 1)
    return row


def compiled_package(args, model):
    """The package of this preset and dtype, compiled on first use (about a minute) and then reused."""
    from so3k.export import export_model

    path = args.structures.parent / "packages" / f"{args.preset}-{args.dtype}-{'-'.join(model.config.elements)}.pt2"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_model(model, path, dtype=args.dtype, format="aoti")
    return path


def engine_step_ms(args, model, atoms):
    """ms per MD step of the exported model in OpenMM (CPU platform) or LAMMPS (1 rank)."""
    from common import openmm_step_ms
    from lammps_speed import lammps_step
    from so3k.export import export_model

    if not atoms.pbc.any():
        atoms.center(vacuum=5.0)
    with tempfile.TemporaryDirectory() as folder:
        path = export_model(model, Path(folder) / "model.pt", engine=args.mode, dtype=args.dtype)
        if args.mode == "openmm":
            return openmm_step_ms(path, atoms, "CPU", args.warmup, args.repeats)
        types = sorted(set(atoms.get_chemical_symbols()))
        return lammps_step(Path(folder), atoms, types, "", 1, args.threads, args.warmup, args.repeats)[0]


def np_forces(frames):
    import numpy as np

    return np.concatenate([a.get_forces() if a.calc is not None else np.zeros((len(a), 3)) for a in frames])


def result(args, params, ms, frames, pairs):
    return {
        "model": f"so3k {args.preset}", "mode": args.mode, "case": args.case, "dtype": args.dtype, "params": params,
        "ms": round(ms, 3), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "atoms": sum(len(a) for a in frames), "pairs": pairs, "versions": {"torch": torch.__version__},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="euclidean2024")
    parser.add_argument("--mode", choices=("eager", "exported", "compiled", "train", "train_compiled", "openmm", "lammps"), default="eager")
    parser.add_argument("--case", required=True)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--with-pairs", action="store_true", help="build the pair list inside the timed call")
    parser.add_argument("--structures", type=Path, required=True)
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
