import numpy as np
import pytest
from ase import Atoms

import ase.io
from so3k.data.io import read_frames, write_extxyz
from so3k.data.validate import DataError
from so3k.units import BOHR_TO_ANGSTROM, KCAL_PER_MOL_TO_EV

# extended XYZ stores per-atom floats with 8 decimals
XYZ_ATOL = 1e-8


def assert_frames_close(a, b, atol=XYZ_ATOL):
    assert np.array_equal(a.numbers, b.numbers)
    assert np.array_equal(a.n_atoms, b.n_atoms)
    assert np.array_equal(a.pbc, b.pbc)
    for name in ("positions", "cell", "energy", "forces", "stress"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=name)


@pytest.mark.parametrize("suffix", [".extxyz", ".extxyz.gz", ".extxyz.xz"])
def test_extxyz_round_trip(tmp_path, make_frames, suffix):
    frames = make_frames(periodic=True, stress=True)
    path = tmp_path / f"set{suffix}"
    write_extxyz(frames, path)
    back = read_frames(path, require_energy=True, require_forces=True)
    assert_frames_close(frames, back)
    np.testing.assert_allclose(back.info["temperature"], frames.info["temperature"])


def test_custom_keys_in_info_and_arrays(tmp_path):
    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms.info["REF_energy"] = -14.5
    atoms.arrays["REF_forces"] = np.arange(9.0).reshape(3, 3)
    path = tmp_path / "custom.extxyz"
    ase.io.write(path, [atoms, atoms], format="extxyz")
    frames = read_frames(path, energy_key="REF_energy", forces_key="REF_forces")
    assert frames.energy.tolist() == [-14.5, -14.5]
    np.testing.assert_allclose(frames.forces[:3], np.arange(9.0).reshape(3, 3))


def test_units_converted_once_at_the_boundary(tmp_path, frames):
    path = tmp_path / "kcal.extxyz"
    write_extxyz(frames, path)
    back = read_frames(path, energy_unit="kcal/mol", length_unit="Bohr")
    np.testing.assert_allclose(back.energy, frames.energy * KCAL_PER_MOL_TO_EV)
    np.testing.assert_allclose(back.positions, frames.positions * BOHR_TO_ANGSTROM, atol=1e-8)
    np.testing.assert_allclose(back.forces, frames.forces * KCAL_PER_MOL_TO_EV / BOHR_TO_ANGSTROM, atol=1e-8)


def test_energy_only_data(tmp_path):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    atoms.info["energy"] = -31.5
    path = tmp_path / "qm9like.extxyz"
    ase.io.write(path, atoms, format="extxyz")
    frames = read_frames(path, require_energy=True)
    assert frames.forces is None and frames.energy.tolist() == [-31.5]
    with pytest.raises(DataError, match="qm9like.extxyz: has no forces"):
        read_frames(path, require_forces=True)


def _md17(n_frames=3, convention=("R", "z", "E", "F")):
    rng = np.random.default_rng(1)
    R = rng.normal(size=(n_frames, 3, 3)) + np.array([[0, 0, 0], [1.5, 0, 0], [0, 1.5, 0]])
    z = np.array([8, 1, 1])
    E = rng.normal(-47000, 1, size=(n_frames, 1))
    F = rng.normal(size=(n_frames, 3, 3)) * 20
    return dict(zip(convention, (R, z, E, F)))


@pytest.mark.parametrize("convention", [("R", "z", "E", "F"), ("coords", "nuclear_charges", "energies", "forces")])
def test_md17_npz_in_kcal_per_mol(tmp_path, convention):
    data = _md17(convention=convention)
    path = tmp_path / "md17.npz"
    np.savez(path, **data)
    frames = read_frames(path, require_energy=True, require_forces=True)
    R, z, E, F = (data[k] for k in convention)
    np.testing.assert_allclose(frames.positions, R.reshape(-1, 3))
    assert frames.numbers.tolist() == np.tile(z, 3).tolist()
    np.testing.assert_allclose(frames.energy, E.reshape(-1) * KCAL_PER_MOL_TO_EV)
    np.testing.assert_allclose(frames.forces, F.reshape(-1, 3) * KCAL_PER_MOL_TO_EV)
    assert KCAL_PER_MOL_TO_EV == pytest.approx(0.0433641, rel=1e-6)
    # read back as eV when the user says the file is in eV
    assert read_frames(path, energy_unit="eV").energy[0] == pytest.approx(E[0, 0])
    # frame selection works as for ASE files
    assert read_frames(path, index="::2").energy.tolist() == frames.energy[::2].tolist()
    assert read_frames(path, index=-1).energy.tolist() == frames.energy[-1:].tolist()


# -- bad input ---------------------------------------------------------------------------------
def _xyz(tmp_path, body: str, name="bad.extxyz"):
    path = tmp_path / name
    path.write_text(body)
    return path


GOOD = '2\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-1.0 pbc="F F F"\nH 0 0 0 0 0 0\nH 0 0 0.74 0 0 0\n'


def test_unknown_element_symbol_names_the_frame(tmp_path):
    path = _xyz(tmp_path, GOOD + GOOD.replace("H 0 0 0.74", "Xq 0 0 0.74"))
    with pytest.raises(DataError, match=r"bad.extxyz: frame 1: unknown element symbol 'Xq'"):
        read_frames(path)


@pytest.mark.parametrize(
    "line, quantity",
    [("H 0 0 0.74 nan 0 0", "forces"), ("H 0 inf 0.74 0 0 0", "positions")],
)
def test_non_finite_values_name_frame_and_quantity(tmp_path, line, quantity):
    path = _xyz(tmp_path, GOOD + GOOD + GOOD.replace("H 0 0 0.74 0 0 0", line))
    with pytest.raises(DataError, match=rf"frame 2: {quantity} contain NaN or inf"):
        read_frames(path)


def test_non_finite_energy(tmp_path):
    path = _xyz(tmp_path, GOOD.replace("energy=-1.0", "energy=nan") + GOOD)
    with pytest.raises(DataError, match="frame 0: energy contain NaN"):
        read_frames(path)


def test_missing_energy_when_required(tmp_path):
    path = _xyz(tmp_path, GOOD.replace(" energy=-1.0", ""))
    with pytest.raises(DataError, match="has no energies"):
        read_frames(path, require_energy=True)


def test_some_frames_without_energy(tmp_path):
    path = _xyz(tmp_path, GOOD + GOOD.replace(" energy=-1.0", ""))
    with pytest.raises(DataError, match="frame 1: has no energy under key 'energy'"):
        read_frames(path)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="empty.extxyz: contains no frames"):
        read_frames(_xyz(tmp_path, "", "empty.extxyz"))
    with pytest.raises(DataError, match="no such file"):
        read_frames(tmp_path / "nothing.extxyz")


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(z=np.array([8, 1])), "'z' has 2 atoms but 'R' has 3 per frame"),
        (dict(F=np.zeros((3, 2, 3))), r"'F' has shape \(3, 2, 3\) but 'R' has \(3, 3, 3\)"),
        (dict(E=np.zeros(2)), "'E' has 2 values for 3 frames"),
        (dict(z=np.array([8, 1, 0])), "frame 0: unknown element \\(atomic number 0\\) at atom 2"),
        (dict(z=np.array([8, 1, 200])), "unknown element \\(atomic number 200\\)"),
        (dict(R=np.zeros((0, 3, 3)), F=np.zeros((0, 3, 3)), E=np.zeros(0)), "contains no frames"),
    ],
)
def test_bad_npz(tmp_path, change, message):
    data = _md17() | change
    path = tmp_path / "bad.npz"
    np.savez(path, **data)
    with pytest.raises(DataError, match=message):
        read_frames(path)


def test_npz_with_unknown_keys(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, xyz=np.zeros((1, 2, 3)))
    with pytest.raises(DataError, match="expected \\(R, z, E, F\\) or \\(coords, nuclear_charges, energies, forces\\)"):
        read_frames(path)


def test_unknown_unit_is_refused(tmp_path, frames):
    path = tmp_path / "set.extxyz"
    write_extxyz(frames, path)
    with pytest.raises(ValueError, match="unknown energy unit 'kcal'; use one of eV, meV, kcal/mol"):
        read_frames(path, energy_unit="kcal")


def test_periodic_frame_without_cell(tmp_path):
    path = _xyz(tmp_path, GOOD.replace('pbc="F F F"', 'pbc="T T T"'))
    with pytest.raises(DataError, match="periodic but its cell has zero volume"):
        read_frames(path)
