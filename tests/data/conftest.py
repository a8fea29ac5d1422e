import numpy as np
import pytest

from so3k.data.frames import Frames


def random_frames(n_frames=4, n_atoms=(3, 5), periodic=False, seed=0, stress=False) -> Frames:
    """Synthetic labelled frames with atoms at least ~1 Å apart."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(n_atoms[0], n_atoms[1] + 1, size=n_frames)
    pos = []
    for n in counts:
        grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3) * 1.5
        pos.append(grid[rng.permutation(27)[:n]] + rng.normal(scale=0.05, size=(n, 3)))
    n_total = int(counts.sum())
    sigma = rng.normal(scale=0.01, size=(n_frames, 3, 3))
    sigma = 0.5 * (sigma + sigma.transpose(0, 2, 1))  # a stress tensor is symmetric
    cell = np.tile(np.diag([6.0, 6.5, 7.0]), (n_frames, 1, 1)) if periodic else np.zeros((n_frames, 3, 3))
    return Frames(
        numbers=rng.choice([1, 6, 8], size=n_total),
        positions=np.concatenate(pos),
        n_atoms=counts,
        cell=cell,
        pbc=np.full((n_frames, 3), periodic),
        energy=rng.normal(-100, 1, size=n_frames),
        forces=rng.normal(size=(n_total, 3)),
        stress=sigma if stress else None,
        info={"temperature": rng.uniform(200, 300, size=n_frames)},
    )


@pytest.fixture
def make_frames():
    """The synthetic-frames factory, for tests that need other sizes or periodicity."""
    return random_frames


@pytest.fixture
def frames():
    return random_frames()
