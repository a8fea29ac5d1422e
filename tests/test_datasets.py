"""The shipped data sets: present, readable, clean, and documented by their provenance files."""

import json

import numpy as np
import pytest

from so3k import datasets
from so3k.data.generate.sink import provenance_path
from so3k.data.io import read_frames
from so3k.data.stats import compute_stats

# name -> (minimum frames, elements, periodic)
EXPECTED = {
    "aspirin": (1000, {"H", "C", "O"}, False),
    "ethanol": (1000, {"H", "C", "O"}, False),
    "cumulene": (500, {"H", "C"}, False),
    "cumulene-scan": (100, {"H", "C"}, False),
    "water": (150, {"H", "O"}, True),
    "ethanol-dft": (50, {"H", "C", "O"}, False),
}


def test_every_expected_set_is_shipped():
    assert set(EXPECTED) <= set(datasets.available())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_set(name):
    min_frames, elements, periodic = EXPECTED[name]
    path = datasets.path(name)
    frames = read_frames(path, require_energy=True, require_forces=True)
    stats = compute_stats(frames)
    assert len(frames) >= min_frames
    assert set(stats.elements) == elements
    assert frames.periodic == periodic
    assert stats.outliers == [], stats.outliers
    record = json.loads(provenance_path(path).read_text())
    assert record["file"] == path.name and record["frames"] == len(frames)
    assert record["command"].startswith("so3k data ")
    assert record["statistics"]["energy"]["mean"] == pytest.approx(frames.energy.mean())
    if periodic:
        assert frames.stress is not None and np.isfinite(frames.stress).all()


def test_shipped_data_stay_small():
    total = sum(datasets.path(n).stat().st_size for n in datasets.available())
    assert total < 8e6, f"shipped data sets take {total / 1e6:.1f} MB"


def test_unknown_set_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no shipped data set 'benzene'; available: .*aspirin"):
        datasets.path("benzene")
