"""Every refusal of pair_style so3krates stops LAMMPS with a message that says what to do."""

import json

import numpy as np
import pytest
import torch
from so3k.export import export_model

import so3k

DECK = """
units           {units}
atom_style      atomic
boundary        p p p
newton          {newton}
read_data       structure.data
pair_style      so3krates {style}
pair_coeff      * * {model} {types}
run             0
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = so3k.build_model("euclidean2024", elements=["H", "O"], layers=2, features=32, cutoff=3.0)
    lammps = export_model(model, folder / "lammps.pt", engine="lammps", dtype="float32")
    openmm = export_model(model, folder / "openmm.pt", engine="openmm", dtype="float32")
    corrupt = folder / "corrupt.pt"
    corrupt.write_bytes(b"this is not a TorchScript archive\n" * 10)

    def with_metadata(name, **changes):
        extra = {"so3k.json": ""}
        module = torch.jit.load(str(lammps), _extra_files=extra)
        meta = json.loads(extra["so3k.json"])
        for key, value in changes.items():
            meta[key] = value
        path = folder / name
        torch.jit.save(module, str(path), _extra_files={"so3k.json": json.dumps(meta)})
        return path

    no_meta = folder / "no-metadata.pt"
    torch.jit.save(torch.jit.load(str(lammps)), str(no_meta))
    return {
        "lammps": lammps,
        "openmm": openmm,
        "corrupt": corrupt,
        "missing": folder / "does-not-exist.pt",
        "no-metadata": no_meta,
        "newer": with_metadata("newer.pt", format_version=99, so3k_version="9.0"),
        "real-units": with_metadata("real.pt", units={"style": "real"}),
        "nonlocal": with_metadata("nonlocal.pt", nonlocal_attention=True),
        "no-cutoff": with_metadata("no-cutoff.pt", ghost_cutoff=None),
    }


CASES = {
    "missing model file": (dict(model="missing"), 1, "cannot read the model file"),
    "not TorchScript": (dict(model="corrupt"), 1, "is not a TorchScript file that this libtorch can read"),
    "no metadata": (dict(model="no-metadata"), 1, "has no so3k.json metadata"),
    "exported for OpenMM": (dict(model="openmm"), 1, "was exported for openmm, not LAMMPS"),
    "newer format": (dict(model="newer"), 1, "has format version 99 (so3k 9.0), newer than this plugin's 1"),
    "model in other units": (dict(model="real-units"), 1, "uses units real, but this plugin needs units metal"),
    "corrupt metadata": (dict(model="no-cutoff"), 1, "metadata of"),
    "deck in other units": (dict(units="real"), 1, "needs `units metal` (Angstrom, eV), not units real"),
    "element not in model": (dict(types="O N"), 1, "element N (type 2) is not in the model"),
    "too few element names": (dict(types="O"), 1, "give one element name per atom type: 2 type(s) in this system, 1 name(s)"),
    "NULL type": (dict(types="O NULL"), 1, "type 2 is NULL, but a So3krates model must see every atom"),
    "newton off": (dict(newton="off"), 1, "requires `newton on`"),
    "non-local on 2 ranks": (dict(model="nonlocal"), 2, "cannot be split over MPI ranks: non-local attention compares every pair of atoms"),
    "unknown keyword": (dict(style="cutoff 5"), 1, "unknown keyword cutoff"),
    "type masses of other elements": (dict(types="H O"), 1, "type 1 is named H (1.008 u), but its mass is 15.999 u"),
    "negative min_distance": (dict(style="min_distance -1"), 1, "`min_distance` must be >= 0 Angstrom"),
    "no CUDA here": (dict(style="device cuda"), 1, "libtorch sees no CUDA device; use `device cpu`"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refusals_say_what_to_do(case, models, lmp, make_water, tmp_path):
    changes, ranks, message = CASES[case]
    if case == "no CUDA here" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    fields = dict(units="metal", newton="on", style="", model="lammps", types="O H")
    fields.update(changes)
    fields["model"] = models[fields["model"]]
    lmp.write_structure(make_water(n_per_side=2, spacing=3.1, seed=0), tmp_path / "structure.data", ["O", "H"])
    done = lmp.run(tmp_path, DECK.format(**fields), ranks=ranks, check=False)
    assert done.returncode != 0
    text = " ".join((done.stdout + done.stderr).split())
    assert "ERROR" in text and message in text, text[-1500:]


def test_overlapping_atoms_stop_the_run_with_the_step_and_the_atoms(models, lmp, make_water, tmp_path):
    water = make_water(n_per_side=2, spacing=3.1, seed=0)
    water.positions[3] = water.positions[0] + [0.2, 0.0, 0.0]  # an O on top of another
    lmp.write_structure(water, tmp_path / "structure.data", ["O", "H"])
    fields = dict(units="metal", newton="on", style="", model=models["lammps"], types="O H")
    done = lmp.run(tmp_path, DECK.format(**fields), check=False)
    text = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0 and "failed at step 0" in text and "Å apart, closer than min_distance = 0.5 Å" in text, text[-1500:]
    fields["style"] = "min_distance 0.1"  # the user's own threshold
    assert lmp.run(tmp_path, DECK.format(**fields), check=False).returncode == 0


def test_isotopes_run_with_check_masses_no(models, lmp, make_water, tmp_path):
    water = make_water(n_per_side=2, spacing=3.1, seed=0)
    lmp.write_structure(water, tmp_path / "structure.data", ["O", "H"])
    lines = (tmp_path / "structure.data").read_text().splitlines()
    data = "\n".join("2 2.014 # D" if line.strip().startswith("2 ") and line.strip().endswith("# H") else line for line in lines)
    (tmp_path / "structure.data").write_text(data)
    fields = dict(units="metal", newton="on", style="", model=models["lammps"], types="O H")
    assert lmp.run(tmp_path, DECK.format(**fields), check=False).returncode != 0
    fields["style"] = "check_masses no"
    assert lmp.run(tmp_path, DECK.format(**fields), check=False).returncode == 0


def test_a_valid_file_runs(models, lmp, make_water, tmp_path):
    """The baseline of the refusals above: the same deck with nothing wrong runs."""
    fields = dict(units="metal", newton="on", style="", model=models["lammps"], types="O H")
    lmp.write_structure(make_water(n_per_side=2, spacing=3.1, seed=0), tmp_path / "structure.data", ["O", "H"])
    assert lmp.run(tmp_path, DECK.format(**fields), check=False).returncode == 0


def test_a_non_local_model_runs_on_one_rank_only_and_without_periodic_boundaries(lmp, tmp_path):
    from so3k.calculators import So3kratesCalculator
    from so3k.data.generate.cumulene import build_cumulene

    torch.manual_seed(1)
    model = so3k.build_model("euclidean2024", elements=["H", "C"], layers=2, features=32, cutoff=4.0,
                             nonlocal_attention="fixed", nonlocal_threshold=0.5).double()
    path = export_model(model, tmp_path / "nonlocal.pt", engine="lammps", dtype="float64")
    atoms = build_cumulene(12, 35.0)
    atoms.center(vacuum=5.0)
    one = lmp.run0(tmp_path / "one", path, atoms, ["C", "H"])
    reference = lmp.read_structure(tmp_path / "one" / "structure.data", ["C", "H"])
    reference.pbc = False
    reference.calc = So3kratesCalculator(model=model)
    assert one["energy"] == pytest.approx(reference.get_potential_energy(), rel=1e-10)
    np.testing.assert_allclose(one["forces"], reference.get_forces(), atol=1e-9)
    two = lmp.run(tmp_path / "one", (tmp_path / "one" / "in.deck").read_text(), ranks=2, check=False)
    assert two.returncode != 0 and "cannot be split over MPI ranks" in " ".join(two.stdout.split())
    periodic = atoms.copy()
    periodic.pbc = True
    lmp.write_structure(periodic, tmp_path / "structure.data", ["C", "H"])
    deck = DECK.format(units="metal", newton="on", style="", model=path, types="C H")
    done = lmp.run(tmp_path, deck, check=False)
    assert done.returncode != 0 and "cannot run on a periodic box: non-local attention" in " ".join(done.stdout.split())
