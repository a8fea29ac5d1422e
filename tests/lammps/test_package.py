"""pair_style so3krates with a compiled package (.pt2, `so3k export --format aoti`): LAMMPS's own
neighbour list and ghost shell, against the ASE calculator in float64 on 1 and 2 ranks, and the
refusals of packages it cannot run."""

import importlib.util
from pathlib import Path

import pytest
import torch
from so3k.export import export_model

import so3k

HERE = Path(__file__).resolve().parent


def load(name):
    """A helper of test_pair_style.py (test modules are not importable under importlib mode)."""
    spec = importlib.util.spec_from_file_location("pair_style_helpers", HERE / "test_pair_style.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """One float64 package for H, C and O (so water and aspirin share it): compiled once."""
    torch.manual_seed(0)
    model = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=2, features=32, cutoff=3.5).double()
    model.readout.scale.fill_(2.0)
    return model, export_model(model, tmp_path_factory.mktemp("package") / "model.pt2", dtype="float64", format="aoti")


@pytest.mark.parametrize("system", ["aspirin, non-periodic", "water, cubic", "water, small triclinic"])
def test_run0_with_a_package_equals_the_ase_calculator_on_1_and_2_ranks(system, package, lmp, make_water, perturb, aspirin,
                                                                        tmp_path):
    model, path = package
    atoms, types = load("structures")(make_water, perturb, aspirin)[system]
    results = {ranks: lmp.run0(tmp_path / f"ranks{ranks}", path, atoms, types, ranks=ranks) for ranks in (1, 2)}
    assert "compiled package on LAMMPS's neighbour list" in results[1]["stdout"]
    want = load("reference")(model, results[1]["structure"])
    for got in results.values():
        load("assert_close")(got, want)


DECK = """
units           metal
atom_style      atomic
boundary        p p p
read_data       structure.data
pair_style      so3krates {style}
pair_coeff      * * {model} O H
run             0
"""


@pytest.mark.parametrize("case, change, message", [
    ("for CUDA", {"device": "cuda"}, "was compiled for cuda, and this pair_style runs on cpu: use `device cuda`, or export again"),
    ("older torch", {"torch_version": "2.3.1"}, "was compiled with torch 2.3.1; this plugin's libtorch is"),
    ("not a package", None, "is not a compiled package"),
])
def test_packages_it_cannot_run_are_refused_with_the_reason(case, change, message, package, lmp, make_water, rewritten_package,
                                                           tmp_path):
    _, path = package
    if change is None:
        model = tmp_path / "notes.pt2"
        model.write_text("not a zip archive")
    else:
        model = rewritten_package(path, tmp_path / "changed.pt2", change)
    lmp.write_structure(make_water(n_per_side=2, spacing=3.1, seed=0), tmp_path / "structure.data", ["O", "H"])
    done = lmp.run(tmp_path, DECK.format(style="", model=model), check=False)
    text = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0 and "ERROR" in text and message in text, text[-1500:]


def test_overlapping_atoms_stop_a_package_run_naming_them(package, lmp, make_water, tmp_path):
    _, path = package
    water = make_water(n_per_side=2, spacing=3.1, seed=0)
    water.positions[3] = water.positions[0] + [0.2, 0.0, 0.0]
    lmp.write_structure(water, tmp_path / "structure.data", ["O", "H"])
    done = lmp.run(tmp_path, DECK.format(style="", model=path), check=False)
    text = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0 and "atoms 1 and 4 (IDs) are 0.200 A apart at step 0" in text, text[-1500:]
    assert lmp.run(tmp_path, DECK.format(style="min_distance 0.1", model=path), check=False).returncode == 0


def test_nve_with_a_package_conserves_energy_and_follows_the_torchscript_run(trained_ethanol, lmp, tmp_path):
    """A trained model (float64), ethanol at 300 K, 400 velocity Verlet steps of 0.25 fs: the package
    on 1 and 2 ranks conserves energy, and its trajectory is the TorchScript file's."""
    from so3k.data.molecules import load_molecule

    models = {"package": export_model(trained_ethanol, tmp_path / "ethanol.pt2", dtype="float64", format="aoti"),
              "torchscript": export_model(trained_ethanol, tmp_path / "ethanol-lammps.pt", engine="lammps", dtype="float64")}
    atoms = load_molecule("ethanol")
    atoms.center(vacuum=4.0)
    atoms.pbc = False
    deck = """
units           metal
atom_style      atomic
boundary        s s s
newton          on
read_data       structure.data
pair_style      so3krates
pair_coeff      * * {model} C H O
neighbor        1.0 bin
timestep        0.00025
velocity        all create 300.0 4928459 mom yes rot yes dist gaussian
fix             integrate all nve
thermo_style    custom step pe ke etotal
thermo_modify   format float %.12f
thermo          5
run             400
"""
    tables = {}
    for name, ranks in (("package", 1), ("package", 2), ("torchscript", 1)):
        folder = tmp_path / f"{name}{ranks}"
        folder.mkdir()
        lmp.write_structure(atoms, folder / "structure.data", ["C", "H", "O"])
        tables[name, ranks] = lmp.thermo(lmp.run(folder, deck.format(model=models[name]), ranks=ranks).stdout)
    for ranks in (1, 2):
        total, kinetic = tables["package", ranks]["TotEng"], tables["package", ranks]["KinEng"]
        assert total.std() < 0.01 * kinetic.std()
        assert abs(total[-1] - total[0]) < 0.02 * kinetic.std()
    # the same trajectory as the TorchScript file, until round-off (amplified by chaos) separates them
    for ranks in (1, 2):
        assert max(abs(a - b) for a, b in zip(tables["package", ranks]["PotEng"][:20], tables["torchscript", 1]["PotEng"][:20])) < 1e-8
