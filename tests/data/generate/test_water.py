import json

import numpy as np
import pytest
from ase import units

from so3k.cli import main
from so3k.data.generate import sink as sink_module
from so3k.data.generate.reference import xtb_calculator
from so3k.data.generate.water import R_HH, RigidWater, WaterConfig, box_length, generate_water, water_box
from so3k.data.io import read_frames

# 8 molecules, few MD steps: the file format and the labels are what is tested, not the liquid.
SMALL = dict(n_molecules=8, equilibration_steps=20, stride=5, n_frames=3, seed=4)


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("water") / "w.extxyz"
    generate_water(WaterConfig(**SMALL), out, progress=False)
    return out


def _energy(atoms):
    atoms = atoms.copy()
    atoms.calc = xtb_calculator("GFN1-xTB")
    return atoms.get_potential_energy()


def test_box_density_composition_and_labels(small_file):
    frames = read_frames(small_file, require_energy=True, require_forces=True)
    assert len(frames) == 3
    assert frames.info["md_step"].tolist() == [25, 30, 35]
    assert frames.pbc.all()
    length = box_length(8, 1.0)
    assert np.allclose(frames.cell, np.diag([length] * 3))
    atoms = frames.atoms(0)
    assert atoms.get_chemical_formula() == "H16O8"
    grams = atoms.get_masses().sum() / units._Nav
    assert grams / (atoms.get_volume() * 1e-24) == pytest.approx(1.0, rel=1e-9)
    assert frames.stress is not None and frames.stress.shape == (3, 3, 3)
    assert np.isfinite(frames.stress).all() and np.abs(frames.stress).max() > 0
    assert "GFN1-xTB" in small_file.read_text()


def test_forces_and_stress_are_derivatives_of_the_energy(small_file):
    """Central differences of the GFN1-xTB energy, step 1e-4 (Å, strain).

    Measured agreement ~1e-7 eV/Å for forces and ~2e-6 eV/Å³ for stress; tolerances 1e-5 both.
    """
    atoms = read_frames(small_file).atoms(1)
    forces, stress = atoms.get_forces(), atoms.get_stress(voigt=False)
    h = 1e-4
    for i, c in [(0, 0), (4, 2)]:
        e = []
        for sign in (1, -1):
            a = atoms.copy()
            a.positions[i, c] += sign * h
            e.append(_energy(a))
        assert -(e[0] - e[1]) / (2 * h) == pytest.approx(forces[i, c], abs=1e-5)
    # stress = (1/V) dE/d(strain) for a symmetric strain, as ASE defines it
    for i, j in [(0, 0), (0, 1)]:
        e = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[i, j] += sign * h
            strain[j, i] = strain[i, j]
            a = atoms.copy()
            a.set_cell(atoms.cell @ strain, scale_atoms=True)
            e.append(_energy(a))
        assert (e[0] - e[1]) / (2 * h * atoms.get_volume()) / (1 if i == j else 2) == pytest.approx(stress[i, j], abs=1e-5)


def test_rigid_water_constraint_keeps_tip3p_geometry():
    rng = np.random.default_rng(0)
    atoms = water_box(8, 1.0, rng)
    atoms.constraints = [RigidWater(8)]
    atoms.set_positions(atoms.positions + rng.normal(scale=0.05, size=atoms.positions.shape))
    r = atoms.positions.reshape(-1, 3, 3)
    assert np.allclose(np.linalg.norm(r[:, 1] - r[:, 0], axis=1), 0.9572, atol=1e-12)
    assert np.allclose(np.linalg.norm(r[:, 2] - r[:, 1], axis=1), R_HH, atol=1e-12)


def test_same_seed_same_file_and_resume(small_file, tmp_path, interrupt):
    generate_water(WaterConfig(**SMALL), tmp_path / "a.extxyz", progress=False)
    assert (tmp_path / "a.extxyz").read_bytes() == small_file.read_bytes()

    interrupt(sink_module.FrameSink, "append", after=2)
    with pytest.raises(KeyboardInterrupt):
        generate_water(WaterConfig(**SMALL), tmp_path / "b.extxyz", progress=False)
    interrupt.undo()
    assert len(read_frames(tmp_path / "b.extxyz")) == 2
    generate_water(WaterConfig(**SMALL), tmp_path / "b.extxyz", resume=True, progress=False)
    assert (tmp_path / "b.extxyz").read_bytes() == small_file.read_bytes()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="too small"):
        WaterConfig(n_molecules=4)
    with pytest.raises(ValueError, match="timestep must be <= 2 fs"):
        WaterConfig(timestep=3.0)


def test_cli(tmp_path):
    out = tmp_path / "w.extxyz"
    argv = ["data", "water", "--molecules", "8", "--equilibration", "5", "--stride", "2", "--frames", "2", "-o", str(out), "--no-progress"]
    assert main(argv) == 0
    assert len(read_frames(out)) == 2
    record = json.loads((tmp_path / "w.provenance.json").read_text())
    assert record["command"].startswith("so3k data water --molecules 8")
    assert record["frames"] == 2 and record["method"] == "GFN1-xTB"
