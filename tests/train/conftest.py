import pytest

from so3k.train import load_config

TINY = [
    "model.preset=euclidean2024", "model.layers=1", "model.features=16", "model.num_radial=8", "model.radial_hidden=16",
    "model.sphc_hidden=8", "data.path=ethanol", "data.n_train=24", "data.n_valid=8", "data.n_test=8",
    "training.batch_size=4", "training.valid_batch_size=8", "training.max_epochs=3",
]


@pytest.fixture
def tiny_config():
    """A seconds-long training config on the shipped ethanol set; extra `section.key=value` strings override."""

    def make(*sets: str):
        return load_config(None, TINY + list(sets))

    return make
