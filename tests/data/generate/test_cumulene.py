import numpy as np
import pytest
from ase.geometry import get_distances

from so3k.cli import main
from so3k.data.generate.cumulene import (
    CumuleneConfig,
    ScanConfig,
    build_cumulene,
    generate_cumulene,
    generate_scan,
    measure_dihedral,
    minimum_dihedral,
    optimised_cumulene,
    rotate_end,
    SCAN_LENGTHS,
    TRAIN_LENGTHS,
)
from so3k.data.generate import sink as sink_module
from so3k.data.generate.reference import xtb_calculator
from so3k.data.io import read_frames


def test_minimum_alternates_with_the_number_of_double_bonds():
    assert [minimum_dihedral(n) for n in (3, 4, 5, 6)] == [90.0, 0.0, 90.0, 0.0]
    for n in (3, 4, 7):
        assert measure_dihedral(build_cumulene(n, minimum_dihedral(n))) == pytest.approx(minimum_dihedral(n), abs=1e-9)


@pytest.mark.parametrize("n", [4, 6, 9])
def test_rigid_rotation_changes_no_short_distance(n):
    """The locality argument of the experiment: rotating one end moves no pair closer than 5 Å."""
    atoms = build_cumulene(n)
    rotated = rotate_end(atoms, 50.0)
    _, d0 = get_distances(atoms.positions)
    _, d1 = get_distances(rotated.positions)
    changed = ~np.isclose(d0, d1, atol=1e-12)
    assert changed.any()
    assert d0[changed].min() > 5.0
    assert measure_dihedral(rotated) == pytest.approx(50.0, abs=1e-9)


def test_xtb_barrier_at_the_minimum():
    """GFN2-xTB energy rises monotonically from the minimum (the physics the set encodes)."""
    atoms = optimised_cumulene(6)
    calc = xtb_calculator()
    energies = []
    for angle in (0, 30, 60, 90):
        a = rotate_end(atoms, angle)
        a.calc = calc
        energies.append(a.get_potential_energy())
    assert np.all(np.diff(energies) > 0.05)
    assert 0.3 < energies[-1] - energies[0] < 2.0


def test_default_lengths_span_both_sides_of_the_local_reach():
    """Both parities of the double-bond count are trained below and beyond 16 Å (14 carbons), and the
    scans hold out lengths on both sides, far ones included."""
    far = [n for n in TRAIN_LENGTHS if n > 14]
    near = [n for n in TRAIN_LENGTHS if n <= 14]
    for group in (near, far):
        assert {minimum_dihedral(n) for n in group} == {0.0, 90.0}
    held_out = sorted(set(SCAN_LENGTHS) - set(TRAIN_LENGTHS))
    assert set(TRAIN_LENGTHS) <= set(SCAN_LENGTHS)
    far_held_out = [n for n in held_out if n > 14]
    assert {minimum_dihedral(n) for n in far_held_out} == {0.0, 90.0}
    assert min(held_out) < 14 < max(held_out)


@pytest.mark.parametrize("lengths", [(4, 5, 13), (21, 22)])
def test_generated_frames_and_forces(tmp_path, lengths):
    out = tmp_path / "c.extxyz"
    generate_cumulene(CumuleneConfig(n_frames=4, lengths=lengths, seed=3), out, progress=False)
    frames = read_frames(out, require_energy=True, require_forces=True)
    assert len(frames) == 4
    assert set(frames.info["n_carbons"]) <= set(lengths)
    assert np.all((frames.info["rotation"] >= 0) & (frames.info["rotation"] <= 70))
    assert np.all((frames.info["dihedral"] >= 0) & (frames.info["dihedral"] <= 90))
    # forces = -dE/dR by central differences of the reference energy, at both ends and mid-chain
    atoms = frames.atoms(0)
    forces = atoms.get_forces()
    atoms.calc = xtb_calculator()
    h = 1e-4
    n = len(atoms) - 4
    for i, c in [(0, 0), (n // 2, 2), (len(atoms) - 1, 1)]:
        e = []
        for sign in (1, -1):
            a = atoms.copy()
            a.calc = atoms.calc
            a.positions[i, c] += sign * h
            e.append(a.get_potential_energy())
        assert -(e[0] - e[1]) / (2 * h) == pytest.approx(forces[i, c], abs=2e-5)


def test_same_seed_same_file_and_resume(tmp_path, interrupt):
    config = CumuleneConfig(n_frames=8, lengths=(3, 4, 5), seed=11)
    generate_cumulene(config, tmp_path / "a.extxyz", progress=False)
    generate_cumulene(config, tmp_path / "b.extxyz", progress=False)
    assert (tmp_path / "a.extxyz").read_bytes() == (tmp_path / "b.extxyz").read_bytes()
    other = CumuleneConfig(n_frames=8, lengths=(3, 4, 5), seed=12)
    generate_cumulene(other, tmp_path / "c.extxyz", progress=False)
    assert (tmp_path / "a.extxyz").read_bytes() != (tmp_path / "c.extxyz").read_bytes()

    # interrupt after 3 frames, then resume
    interrupt(sink_module.FrameSink, "append", after=3)
    with pytest.raises(KeyboardInterrupt):
        generate_cumulene(config, tmp_path / "d.extxyz", progress=False)
    interrupt.undo()
    assert len(read_frames(tmp_path / "d.extxyz")) == 3
    generate_cumulene(config, tmp_path / "d.extxyz", resume=True, progress=False)
    assert (tmp_path / "d.extxyz").read_bytes() == (tmp_path / "a.extxyz").read_bytes()


def test_scan(tmp_path):
    out = tmp_path / "scan.extxyz"
    generate_scan(ScanConfig(lengths=(4, 5), n_points=4, max_rotation=90.0), out, progress=False)
    frames = read_frames(out)
    assert frames.info["n_carbons"].tolist() == [4] * 4 + [5] * 4
    assert np.allclose(frames.info["rotation"], [0, 30, 60, 90] * 2)
    assert np.allclose(frames.info["dihedral"], [0, 30, 60, 90, 90, 60, 30, 0])
    for n in (4, 5):
        e = frames.energy[frames.info["n_carbons"] == n]
        assert np.all(np.diff(e) > 0), "the energy rises away from the minimum"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="chain lengths must be >= 3"):
        CumuleneConfig(lengths=(2, 5))
    with pytest.raises(ValueError, match="max_rotation must be in \\[0, 90\\]"):
        CumuleneConfig(max_rotation=120)


def test_cli(tmp_path):
    out = tmp_path / "c.extxyz.xz"
    assert main(["data", "cumulene", "--frames", "3", "--lengths", "3-4", "-o", str(out), "--no-progress"]) == 0
    assert len(read_frames(out)) == 3
    assert '"command": "so3k data cumulene --frames 3' in (tmp_path / "c.provenance.json").read_text()
