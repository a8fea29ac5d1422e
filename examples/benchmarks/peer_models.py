"""Time one peer model (so3krates-torch, MACE, NequIP) on one case; run inside the peer's venv.

    python peer_models.py --model mace-small --case aspirin --dtype float32 --threads 2 \
        --warmup 3 --repeats 10 --structures DIR

Prints one JSON line on stdout: model, case, dtype, params, ms (median over repeats after
warm-up), peak_rss_mb (of the whole process), atoms, versions. Everything the packages print
goes to stderr. This script does not import so3k: the peers' pins conflict with ours.

Cases (structures from DIR/<case>.extxyz): aspirin, water-192, water-1536 time one energy +
forces call, with the input graph (neighbour list included) built once outside the timed loop;
train-aspirin5 times one training step on its 5 frames: energy + forces, loss MSE(E) + MSE(F)
against the frames' reference values (zeros where a frame has none), backward, Adam step.
Models have random weights (seed 0), a 5 Å cutoff, and are built through each package's own API
for the elements H, C, O (plus any other element in the structures): the parameter counts
quoted for these peers are for H, C, O.
"""

import argparse
import ast
import contextlib
import json
import resource
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import ase.io
import numpy as np
import torch
from common import median_ms  # torch only: importable in a peer's venv

CUTOFF = 5.0
SEED = 0
BASE_ELEMENTS = (1, 6, 8)
MODELS = ("so3krates-torch", "mace-small", "mace-medium", "nequip")
CASES = ("aspirin", "water-192", "water-1536", "train-aspirin5")
PACKAGES = {  # versions reported per model
    "so3krates-torch": ("torch", "so3krates-torch", "torch-geometric"),
    "mace-small": ("torch", "mace-torch", "e3nn"),
    "mace-medium": ("torch", "mace-torch", "e3nn"),
    "nequip": ("torch", "nequip", "e3nn"),
}


# Each builder returns (model, batch, call): `batch` is the package's input for all frames (graph
# included), `call(batch, training)` returns (energies [frames], forces [atoms, 3]).

def so3krates_torch(frames, zs, dtype):
    from so3krates_torch.data.atomic_data import AtomicData
    from so3krates_torch.data.utils import config_from_atoms
    from so3krates_torch.modules.models import So3krates
    from so3krates_torch.tools import torch_geometric, utils

    # Our euclidean2024 preset. The package one-hot encodes all 118 elements (its default
    # num_elements, as its own calculator assumes), which gives the quoted 296,809 parameters.
    model = So3krates(
        r_max=CUTOFF, num_radial_basis_fn=32, degrees=[1, 2, 3, 4], num_features=128, num_heads=4, num_layers=3,
        dtype=dtype,
    )
    z_table = utils.AtomicNumberTable(list(range(1, 119)))
    data = [AtomicData.from_config(config_from_atoms(a), z_table=z_table, cutoff=CUTOFF) for a in frames]
    batch = next(iter(torch_geometric.dataloader.DataLoader(data, batch_size=len(data)))).to_dict()

    def call(batch, training):
        out = model(dict(batch), training=training)
        return out["energy"], out["forces"]

    return model, batch, call


def mace(hidden_irreps):
    def build(frames, zs, dtype):
        import mace  # noqa: F401  (first: lets e3nn 0.4.4 torch.load its constants under torch >= 2.6)
        from e3nn import o3
        from mace import data, modules, tools
        from mace.tools import torch_geometric

        z_table = tools.AtomicNumberTable(list(zs))
        graphs = [data.AtomicData.from_config(data.config_from_atoms(a), z_table=z_table, cutoff=CUTOFF) for a in frames]
        batch = next(iter(torch_geometric.dataloader.DataLoader(graphs, batch_size=len(graphs)))).to_dict()
        # mace_run_train's defaults for --model MACE (ScaleShiftMACE with a non-residual first
        # interaction); avg_num_neighbors as it would be computed from these frames.
        args = tools.build_default_arg_parser().parse_args(["--name", "peer", "--train_file", "unused.xyz"])
        model = modules.ScaleShiftMACE(
            r_max=CUTOFF, num_bessel=args.num_radial_basis, num_polynomial_cutoff=args.num_cutoff_basis,
            max_ell=args.max_ell, interaction_cls=modules.interaction_classes[args.interaction],
            interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
            num_interactions=2, num_elements=len(zs), hidden_irreps=o3.Irreps(hidden_irreps),
            atomic_energies=np.zeros(len(zs)), avg_num_neighbors=batch["edge_index"].shape[1] / len(batch["batch"]),
            atomic_numbers=list(zs), correlation=args.correlation, gate=modules.gate_dict[args.gate],
            MLP_irreps=o3.Irreps(args.MLP_irreps), radial_MLP=ast.literal_eval(args.radial_MLP), radial_type=args.radial_type,
            atomic_inter_scale=1.0, atomic_inter_shift=0.0,
        ).to(dtype)

        def call(batch, training):
            out = model(dict(batch), training=training, compute_force=True)
            return out["energy"], out["forces"]

        return model, batch, call

    return build


def nequip(frames, zs, dtype):
    from ase.data import chemical_symbols
    from nequip.data import AtomicDataDict, from_ase
    from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    set_global_state()  # required before building; makes float64 the default dtype (nequip's data is float64)
    type_names = [chemical_symbols[z] for z in zs]
    to_types = ChemicalSpeciesToAtomTypeMapper(type_names)
    to_graph = NeighborListTransform(r_max=CUTOFF)
    batch = AtomicDataDict.batched_from_list([to_graph(to_types(from_ase(a))) for a in frames])
    n_atoms = len(batch[AtomicDataDict.POSITIONS_KEY])
    # NequIPGNNModel's defaults (4 layers, l_max 1, 32 features, parity); the builder requires
    # avg_num_neighbors, taken from these frames. Its force output also computes the virial.
    model = NequIPGNNModel(
        seed=SEED, model_dtype=str(dtype).removeprefix("torch."), type_names=type_names, r_max=CUTOFF,
        avg_num_neighbors=batch[AtomicDataDict.EDGE_INDEX_KEY].shape[1] / n_atoms,
    )

    def call(batch, training):
        out = model(batch)  # GraphModel copies the dict: the batch is reused as is
        return out[AtomicDataDict.TOTAL_ENERGY_KEY].view(-1), out[AtomicDataDict.FORCE_KEY]

    return model, batch, call


BUILDERS = {
    "so3krates-torch": so3krates_torch,
    "mace-small": mace("64x0e+64x1o"),
    "mace-medium": mace("128x0e+128x1o+128x2e"),
    "nequip": nequip,
}


def references(frames, dtype):
    """Energies [frames] and forces [atoms, 3] stored with the frames, zeros where missing."""
    energies, forces = [], []
    for atoms in frames:
        calc = atoms.calc
        has = calc is not None and "energy" in calc.results and "forces" in calc.results
        energies.append(calc.results["energy"] if has else 0.0)
        forces.append(calc.results["forces"] if has else np.zeros((len(atoms), 3)))
    return torch.tensor(energies, dtype=dtype), torch.tensor(np.concatenate(forces), dtype=dtype)


def run(args):
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    torch.set_default_dtype(dtype)  # e3nn and the data pipelines build their tensors in the default dtype
    torch.manual_seed(SEED)
    frames = ase.io.read(args.structures / f"{args.case}.extxyz", index=":")
    zs = tuple(sorted(set(BASE_ELEMENTS) | {int(z) for a in frames for z in a.numbers}))
    model, batch, call = BUILDERS[args.model](frames, zs, dtype)
    params = sum(p.numel() for p in model.parameters())

    if args.case.startswith("train"):
        model.train()
        ref_energy, ref_forces = references(frames, dtype)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        mse = torch.nn.functional.mse_loss

        def step():
            optimizer.zero_grad()
            energy, forces = call(batch, True)  # nequip returns float64 outputs also from a float32 model
            loss = mse(energy, ref_energy.to(energy.dtype)) + mse(forces, ref_forces.to(forces.dtype))
            loss.backward()
            optimizer.step()
    else:
        model.eval()
        for p in model.parameters():  # inference: forces need gradients of positions only
            p.requires_grad_(False)

        def step():
            call(batch, False)[1].detach()

    ms = median_ms(step, args.warmup, args.repeats)
    versions = {}
    for name in PACKAGES[args.model]:
        with contextlib.suppress(PackageNotFoundError):
            versions[name] = version(name)
    return {
        "model": args.model, "case": args.case, "dtype": args.dtype, "params": params, "ms": round(ms, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "atoms": int(sum(len(a) for a in frames)), "versions": versions,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--case", choices=CASES, required=True)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--structures", type=Path, required=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # the packages' TorchScript and deprecation warnings
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON line
        result = run(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
