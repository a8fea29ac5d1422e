"""so3k evaluate never harms its input and writes the references as they were read."""

import numpy as np
import pytest
from ase.io import read

from so3k.data.io import read_frames, write_extxyz
from so3k.datasets import path
from so3k.errors import InputError
from so3k.evaluate import evaluate
from so3k.train import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from so3k.train import load_config

    from .conftest import TINY

    folder = tmp_path_factory.mktemp("evaluate")
    frames = read_frames(path("ethanol"))
    frames.info["tag"] = np.arange(len(frames), dtype=float) + 0.125  # an info key that must survive
    frames.energy = frames.energy + 1e-3  # not the shipped file any more
    data = folder / "ethanol.extxyz"
    write_extxyz(frames, data)
    config = load_config(None, TINY + ["training.max_epochs=1", "training.dtype=float32", f"data.path={data}"])
    return train(config, folder / "run", progress=False), data


def test_output_onto_the_input_is_refused(run):
    best, data = run
    before = data.read_bytes()
    with pytest.raises(InputError, match="is the data file itself"):
        evaluate(best, str(data), output=str(data), progress=False)
    assert data.read_bytes() == before


def test_predictions_keep_float64_references_and_info_keys(run, tmp_path):
    best, data = run
    out = tmp_path / "predictions.extxyz"
    evaluate(best, str(data), subset="test", output=str(out), progress=False)
    frames = read_frames(data)
    written = read(out, ":")
    assert written
    for atoms in written:
        k = int(round(atoms.info["tag"] - 0.125))
        assert atoms.info["ref_energy"] == frames.energy[k]  # exactly, not rounded to the model's float32
        ptr = frames.ptr
        np.testing.assert_array_equal(atoms.arrays["ref_forces"], frames.forces[ptr[k]:ptr[k + 1]])


def test_a_split_is_not_applied_to_other_data(run):
    best, _ = run
    with pytest.raises(InputError, match="is not that data"):
        evaluate(best, "ethanol", subset="test", progress=False)  # the shipped file, not the one trained on
