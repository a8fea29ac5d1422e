import json

import ase.io
import numpy as np
import pytest
from ase import Atoms

from so3k.cli import main
from so3k.data.generate import relabel as relabel_module
from so3k.data.generate import sink as sink_module
from so3k.data.generate.relabel import RelabelConfig, generate_relabel, selected_indices
from so3k.data.io import read_frames
from so3k.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV

WATER = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.469], [0.0, -0.757, -0.469]])


def _pyscf(atoms, gradient=True):
    """PBE/def2-SVP with density fitting straight from PySCF, in Hartree and Bohr."""
    from pyscf import dft, gto

    mol = gto.M(atom=list(zip(atoms.get_chemical_symbols(), atoms.positions.tolist())), basis="def2-SVP", verbose=0)
    mf = dft.RKS(mol).density_fit()
    mf.xc, mf.conv_tol, mf.verbose = "PBE", 1e-9, 0
    energy = mf.kernel()
    if not gradient:
        return energy
    grad = mf.nuc_grad_method()
    grad.grid_response = True
    return energy, grad.kernel()


@pytest.fixture(scope="module")
def water_file(tmp_path_factory):
    """Four rattled water molecules, unlabelled, each tagged with its position in the file."""
    rng = np.random.default_rng(0)
    images = []
    for k in range(4):
        atoms = Atoms("OH2", positions=WATER + rng.normal(scale=0.05, size=(3, 3)))
        atoms.info["md_step"] = 10 * k
        images.append(atoms)
    path = tmp_path_factory.mktemp("relabel") / "water.extxyz"
    ase.io.write(path, images)
    return path


@pytest.fixture(scope="module")
def relabelled(water_file):
    out = water_file.with_name("dft.extxyz")
    generate_relabel(RelabelConfig(input=str(water_file), start=1, every=2), out, progress=False)
    return out


def test_selection():
    config = RelabelConfig(input="x", start=1, every=3, n_frames=2)
    assert selected_indices(10, config) == [1, 4]
    assert selected_indices(10, RelabelConfig(input="x")) == list(range(10))


def test_labels_agree_with_pyscf(relabelled, water_file):
    frames = read_frames(relabelled, require_energy=True, require_forces=True)
    assert frames.info["source_index"].tolist() == [1, 3]
    assert frames.info["md_step"].tolist() == [10, 30]  # the input's per-frame info is kept
    assert "PBE/def2-SVP" in relabelled.read_text()
    atoms = ase.io.read(water_file, index=1)
    assert np.allclose(frames.atoms(0).positions, atoms.positions)
    energy, gradient = _pyscf(atoms)
    assert frames.energy[0] == pytest.approx(energy * HARTREE_TO_EV, abs=1e-6)
    assert np.allclose(frames.atoms(0).get_forces(), -gradient * HARTREE_TO_EV / BOHR_TO_ANGSTROM, atol=1e-6)


def test_forces_are_the_energy_gradient(relabelled):
    """Central differences (h = 1e-4 Å) of the PySCF energy: measured within 2e-5 eV/Å, tolerance 1e-4."""
    atoms = read_frames(relabelled).atoms(1)
    forces = atoms.get_forces()
    h = 1e-4
    for i, c in [(0, 2), (1, 1), (2, 0)]:
        e = []
        for sign in (1, -1):
            a = atoms.copy()
            a.positions[i, c] += sign * h
            e.append(_pyscf(a, gradient=False) * HARTREE_TO_EV)
        assert -(e[0] - e[1]) / (2 * h) == pytest.approx(forces[i, c], abs=1e-4)


def test_unconverged_frames_are_skipped_and_reported(water_file, tmp_path, capsys):
    out = tmp_path / "x.extxyz"
    generate_relabel(RelabelConfig(input=str(water_file), basis="sto-3g", max_cycle=1, n_frames=2), out, progress=False)
    assert out.read_text() == ""
    record = json.loads((tmp_path / "x.provenance.json").read_text())
    assert record["frames"] == 0
    assert record["not_converged_source_indices"] == [0, 1]
    assert "skipped frame 0" in capsys.readouterr().out



def test_resume_gives_the_same_file(relabelled, water_file, tmp_path, interrupt):
    config = RelabelConfig(input=str(water_file), start=1, every=2)
    out = tmp_path / "r.extxyz"
    interrupt(sink_module.FrameSink, "append", after=1)
    with pytest.raises(KeyboardInterrupt):
        generate_relabel(config, out, progress=False)
    interrupt.undo()
    assert len(read_frames(out)) == 1
    generate_relabel(config, out, resume=True, progress=False)
    assert out.read_bytes() == relabelled.read_bytes()


def test_skipped_frames_are_not_retried_on_resume(water_file, tmp_path, interrupt):
    config = RelabelConfig(input=str(water_file), basis="sto-3g", max_cycle=1, n_frames=3)
    out = tmp_path / "s.extxyz"
    interrupt(relabel_module, "dft_energy_forces", after=2)
    with pytest.raises(KeyboardInterrupt):
        generate_relabel(config, out, progress=False)
    interrupt.undo()
    calls = interrupt(relabel_module, "dft_energy_forces", after=99)
    generate_relabel(config, out, resume=True, progress=False)
    assert len(calls) == 1
    record = json.loads((tmp_path / "s.provenance.json").read_text())
    assert record["not_converged_source_indices"] == [0, 1, 2]


def test_bad_inputs_are_refused(tmp_path, water_file):
    periodic = tmp_path / "box.extxyz"
    ase.io.write(periodic, Atoms("OH2", positions=WATER, cell=[5, 5, 5], pbc=True))
    with pytest.raises(ValueError, match="periodic frames; relabel runs molecular DFT only"):
        generate_relabel(RelabelConfig(input=str(periodic)), tmp_path / "p.extxyz", progress=False)
    assert not (tmp_path / "p.extxyz").exists()
    with pytest.raises(ValueError, match="multiplicity 2 does not fit"):
        generate_relabel(RelabelConfig(input=str(water_file), multiplicity=2), tmp_path / "m.extxyz", progress=False)
    with pytest.raises(ValueError, match="basis 'no-such-basis'"):
        generate_relabel(RelabelConfig(input=str(water_file), basis="no-such-basis"), tmp_path / "b.extxyz", progress=False)
    with pytest.raises(ValueError, match="every >= 1"):
        RelabelConfig(input="x", every=0)


def test_cli(water_file, tmp_path):
    out = tmp_path / "c.extxyz"
    assert main(["data", "relabel", str(water_file), "--basis", "sto-3g", "--frames", "1", "-o", str(out), "--no-progress"]) == 0
    assert len(read_frames(out)) == 1
    record = json.loads((tmp_path / "c.provenance.json").read_text())
    assert record["command"].startswith("so3k data relabel") and record["method"] == "PBE/sto-3g"
    assert main(["data", "relabel", str(tmp_path / "missing.extxyz"), "-o", str(tmp_path / "d.extxyz")]) == 2
