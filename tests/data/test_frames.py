import numpy as np
import pytest

from so3k.data.frames import Frames


def test_ptr_and_frame_index(frames):
    assert frames.ptr[-1] == frames.positions.shape[0]
    assert np.array_equal(np.bincount(frames.frame_index), frames.n_atoms)


def test_subset_reorders_atoms_and_labels(frames):
    sub = frames.subset([2, 0])
    assert np.array_equal(sub.n_atoms, frames.n_atoms[[2, 0]])
    a2, a0 = frames.atoms(2), frames.atoms(0)
    assert np.array_equal(sub.positions, np.concatenate([a2.positions, a0.positions]))
    assert np.array_equal(sub.forces, np.concatenate([a2.get_forces(), a0.get_forces()]))
    assert sub.energy.tolist() == [frames.energy[2], frames.energy[0]]
    assert sub.info["temperature"].tolist() == frames.info["temperature"][[2, 0]].tolist()


def test_atoms_round_trip_keeps_labels(make_frames):
    frames = make_frames(periodic=True, stress=True)
    back = Frames.from_atoms(
        frames.to_atoms(),
        energy=[a.get_potential_energy() for a in frames.to_atoms()],
        forces=[a.get_forces() for a in frames.to_atoms()],
        stress=[frames.stress[k] for k in range(len(frames))],
        info_keys=("temperature",),
    )
    for name in ("numbers", "positions", "n_atoms", "cell", "pbc", "energy", "forces"):
        assert np.array_equal(getattr(back, name), getattr(frames, name)), name
    assert np.allclose(np.stack([a.get_stress(voigt=False) for a in frames.to_atoms()]), frames.stress, rtol=0, atol=1e-15)


def test_concatenate(frames):
    both = Frames.concatenate([frames, frames.subset([1])])
    assert len(both) == len(frames) + 1
    assert np.array_equal(both.positions[-frames.n_atoms[1] :], frames.atoms(1).positions)


def test_inconsistent_arrays_are_refused(frames):
    with pytest.raises(ValueError, match="forces has"):
        Frames(frames.numbers, frames.positions, frames.n_atoms, frames.cell, frames.pbc, forces=frames.forces[:-1])
