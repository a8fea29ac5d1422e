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
from collections import namedtuple
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


# Each builder takes the elements `zs` (sorted atomic numbers), the dtype and `stats` of the
# training data: avg_num_neighbors (required), and optionally e0s (eV per atom of each element of
# zs, the energy shift) and scale (eV, the scale of the network's atomic energies). Without e0s and
# scale a model keeps its package's neutral values (zero shifts, scale 1), as the timing cases use.
# It returns a Peer: `graphs(frames)` turns ASE frames into the package's per-structure inputs
# (neighbour list included), `collate(items)` batches them, and `call(batch, training)` returns
# (energies [frames], forces [atoms, 3]).
Peer = namedtuple("Peer", "model graphs collate call")


def mean_neighbors(frames, cutoff=CUTOFF):
    """Neighbours within the cutoff per atom (periodic images included), over all frames."""
    from ase.neighborlist import neighbor_list

    return sum(len(neighbor_list("i", a, cutoff)) for a in frames) / sum(len(a) for a in frames)


def so3krates_torch(zs, dtype, stats):
    from so3krates_torch.data.atomic_data import AtomicData
    from so3krates_torch.data.utils import config_from_atoms
    from so3krates_torch.modules.models import So3krates
    from so3krates_torch.tools import torch_geometric, utils

    # Our euclidean2024 preset. The package one-hot encodes all 118 elements (its default
    # num_elements, as its own calculator assumes), which gives the quoted 296,809 parameters.
    model = So3krates(
        r_max=CUTOFF, num_radial_basis_fn=32, degrees=[1, 2, 3, 4], num_features=128, num_heads=4, num_layers=3,
        avg_num_neighbors=stats["avg_num_neighbors"], dtype=dtype,
    )
    head = model.atomic_energy_output_block  # e_i = scale_z * MLP(x_i) + shift_z, indexed by Z - 1
    with torch.no_grad():
        for k, z in enumerate(zs):
            if "e0s" in stats:
                head.energy_shifts[z - 1] = stats["e0s"][k]
            if "scale" in stats:
                head.energy_scales.weight[0, z - 1] = stats["scale"]
    z_table = utils.AtomicNumberTable(list(range(1, 119)))

    def graphs(frames):
        return [AtomicData.from_config(config_from_atoms(a), z_table=z_table, cutoff=CUTOFF) for a in frames]

    def collate(items):
        return next(iter(torch_geometric.dataloader.DataLoader(items, batch_size=len(items)))).to_dict()

    def call(batch, training):
        out = model(dict(batch), training=training)
        return out["energy"], out["forces"]

    return Peer(model, graphs, collate, call)


def mace(hidden_irreps):
    def build(zs, dtype, stats):
        import mace  # noqa: F401  (first: lets e3nn 0.4.4 torch.load its constants under torch >= 2.6)
        from e3nn import o3
        from mace import data, modules, tools
        from mace.tools import torch_geometric

        z_table = tools.AtomicNumberTable(list(zs))
        # mace_run_train's defaults for --model MACE (ScaleShiftMACE with a non-residual first
        # interaction); E0s and the scale (its default: the RMS of the training forces) from stats.
        args = tools.build_default_arg_parser().parse_args(["--name", "peer", "--train_file", "unused.xyz"])
        model = modules.ScaleShiftMACE(
            r_max=CUTOFF, num_bessel=args.num_radial_basis, num_polynomial_cutoff=args.num_cutoff_basis,
            max_ell=args.max_ell, interaction_cls=modules.interaction_classes[args.interaction],
            interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
            num_interactions=2, num_elements=len(zs), hidden_irreps=o3.Irreps(hidden_irreps),
            atomic_energies=np.asarray(stats.get("e0s", np.zeros(len(zs))), dtype=float),
            avg_num_neighbors=stats["avg_num_neighbors"],
            atomic_numbers=list(zs), correlation=args.correlation, gate=modules.gate_dict[args.gate],
            MLP_irreps=o3.Irreps(args.MLP_irreps), radial_MLP=ast.literal_eval(args.radial_MLP), radial_type=args.radial_type,
            atomic_inter_scale=float(stats.get("scale", 1.0)), atomic_inter_shift=0.0,
        ).to(dtype)

        def graphs(frames):
            return [data.AtomicData.from_config(data.config_from_atoms(a), z_table=z_table, cutoff=CUTOFF) for a in frames]

        def collate(items):
            return next(iter(torch_geometric.dataloader.DataLoader(items, batch_size=len(items)))).to_dict()

        def call(batch, training):
            out = model(dict(batch), training=training, compute_force=True)
            return out["energy"], out["forces"]

        return Peer(model, graphs, collate, call)

    return build


def nequip(zs, dtype, stats):
    from ase.data import chemical_symbols
    from nequip.data import AtomicDataDict, from_ase
    from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    set_global_state()  # required before building; makes float64 the default dtype (nequip's data is float64)
    type_names = [chemical_symbols[z] for z in zs]
    to_types = ChemicalSpeciesToAtomTypeMapper(type_names)
    to_graph = NeighborListTransform(r_max=CUTOFF)
    # NequIPGNNModel's defaults (4 layers, l_max 1, 32 features, parity); the builder requires
    # avg_num_neighbors. Shifts and scales per type as nequip's own configs derive them (per-atom
    # energy references, force RMS). Its force output also computes the virial.
    extra = {}
    if "e0s" in stats:
        extra["per_type_energy_shifts"] = {name: float(e) for name, e in zip(type_names, stats["e0s"])}
    if "scale" in stats:
        extra["per_type_energy_scales"] = {name: float(stats["scale"]) for name in type_names}
    model = NequIPGNNModel(
        seed=SEED, model_dtype=str(dtype).removeprefix("torch."), type_names=type_names, r_max=CUTOFF,
        avg_num_neighbors=stats["avg_num_neighbors"], **extra,
    )

    def graphs(frames):
        return [to_graph(to_types(from_ase(a))) for a in frames]

    def collate(items):
        return AtomicDataDict.batched_from_list(items)

    def call(batch, training):
        out = model(batch)  # GraphModel copies the dict: the batch is reused as is
        return out[AtomicDataDict.TOTAL_ENERGY_KEY].view(-1), out[AtomicDataDict.FORCE_KEY]

    return Peer(model, graphs, collate, call)


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
    peer = BUILDERS[args.model](zs, dtype, {"avg_num_neighbors": mean_neighbors(frames)})
    model, call = peer.model, peer.call
    batch = peer.collate(peer.graphs(frames))
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
    print_result(run, parser.parse_args())


def print_result(function, args):
    """function(args) with the packages' output on stderr; its result as one JSON line on stdout."""
    warnings.filterwarnings("ignore")  # the packages' TorchScript and deprecation warnings
    with contextlib.redirect_stdout(sys.stderr):
        result = function(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
