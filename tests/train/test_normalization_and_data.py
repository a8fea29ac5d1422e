"""Per-element shifts, the global-batch sampler, config parsing."""

import numpy as np
import pytest
import torch

from so3k.data.frames import Frames
from so3k.train.config import ConfigError, load_config
from so3k.train.data import GlobalBatchSampler
from so3k.train.normalization import fit_normalization


def test_least_squares_recovers_known_element_shifts():
    rng = np.random.default_rng(0)
    shifts = {"H": -13.6, "C": -1030.0, "O": -2040.0}
    numbers, n_atoms, energies = [], [], []
    for _ in range(40):  # varied compositions, so each shift is determined
        counts = {"H": rng.integers(1, 9), "C": rng.integers(0, 5), "O": rng.integers(0, 3)}
        z = [1] * counts["H"] + [6] * counts["C"] + [8] * counts["O"]
        numbers += z
        n_atoms.append(len(z))
        energies.append(sum(shifts[e] * c for e, c in counts.items()) + rng.normal(scale=1e-3))
    n = sum(n_atoms)
    frames = Frames(
        numbers=numbers, positions=rng.normal(size=(n, 3)), n_atoms=n_atoms, cell=np.zeros((40, 3, 3)),
        pbc=np.zeros((40, 3), bool), energy=energies, forces=rng.normal(scale=0.5, size=(n, 3)),
    )
    norm = fit_normalization(frames, ["H", "C", "O"])
    for element, value in shifts.items():
        assert norm.shifts[element] == pytest.approx(value, abs=2e-3)
    assert norm.scale == pytest.approx(np.std(frames.forces))


@pytest.mark.parametrize("world_size", [2, 3])
def test_processes_together_draw_the_global_batches_of_one_process(world_size):
    single = GlobalBatchSampler(23, 6, True, seed=4)
    shared = [GlobalBatchSampler(23, 6, True, seed=4, rank=r, world_size=world_size) for r in range(world_size)]
    for epoch in (0, 1):
        for s in [single, *shared]:
            s.set_epoch(epoch)
        parts = [list(s) for s in shared]
        for k, batch in enumerate(single):
            assert sorted(sum((p[k] for p in parts), [])) == sorted(batch)
    single.set_epoch(0)
    first = list(single)
    single.set_epoch(1)
    assert list(single) != first  # a new order every epoch
    assert sorted(sum(first, [])) == list(range(23))


def test_config_files_and_overrides(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("model:\n  preset: neurips2022\n  layers: 2\ntraining:\n  lr: 1e-3\n  batch_size: 4\n")
    config = load_config(path, ["training.batch_size=8", "data.n_valid=10"])
    assert (config.model["layers"], config.training.lr, config.training.batch_size, config.data.n_valid) == (2, 1e-3, 8, 10)
    with pytest.raises(ConfigError, match="training.lr must be float, got 'fast'"):
        load_config(path, ["training.lr=fast"])
    with pytest.raises(ConfigError, match="--set expects section.key=value"):
        load_config(path, ["lr=3"])
    with pytest.raises(ConfigError, match="model.elements is taken from the training data"):
        load_config(path, ["model.elements=[C]"])
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    assert torch.get_default_dtype() == torch.float32
