"""The accuracy benchmark (examples/benchmarks/accuracy.py) in its quick so3k-only form: the
split files, a row per (data set, model), the learning curve, the plots, reuse of finished runs,
and a failed run reported in its row."""

import json
import math
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import yaml

BENCHMARKS = Path(__file__).resolve().parents[1] / "examples" / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import accuracy  # noqa: E402

METRICS = ("energy_mae_meV", "energy_rmse_meV", "energy_mae_meV_atom", "forces_mae_meV_A", "forces_rmse_meV_A")


def quick(out, *extra):
    return ["--quick", "--no-peers", "--datasets", "ethanol", "--minutes", "0.05", "--curve-minutes", "0.05",
            "--curve-dataset", "ethanol", "--curve-frames", "10", "20", "--out", str(out), *extra]


@pytest.fixture(autouse=True)
def idle_machine(monkeypatch):
    # the machine check sleeps 3 s per call; its own test is in test_benchmarks.py
    monkeypatch.setattr(accuracy, "busy_cores", lambda: 0.0)


def test_quick_run_without_peers(tmp_path):
    from so3k.checkpoint import model_from_checkpoint
    from so3k.data.io import read_frames
    from so3k.datasets import path
    from so3k.model import count_parameters

    out = tmp_path / "acc"
    report = accuracy.main(quick(out))

    # one split, written once: disjoint, of the quick sizes, the shipped frames at the recorded indices
    split = json.loads((Path(report["splits"]["ethanol"]["folder"]) / "split.json").read_text())
    idx = split["indices"]
    assert [len(idx[k]) for k in ("train", "valid", "test")] == [20, 5, 5]
    assert not set(idx["train"]) & set(idx["test"]) and not set(idx["train"]) & set(idx["valid"]) and not set(idx["valid"]) & set(idx["test"])
    shipped = read_frames(path("ethanol"))
    files = {k: ase.io.read(split["files"][k], index=":") for k in ("train", "valid", "test")}
    for k, frames in files.items():
        assert np.allclose([a.get_potential_energy() for a in frames], shipped.energy[idx[k]])
    positions = {k: {a.positions.round(6).tobytes() for a in frames} for k, frames in files.items()}
    assert not positions["test"] & positions["train"] and not positions["valid"] & positions["train"]

    # a row for every requested (data set, model); the peers marked as not run
    rows = {(r["dataset"], r["model"]): r for r in report["rows"]}
    assert sorted(rows) == sorted(("ethanol", m) for m in accuracy.DEFAULT_MODELS)
    for model in ("so3krates-torch", "mace-small", "nequip"):
        assert rows["ethanol", model]["status"] == "not run (--no-peers)"
    for preset in accuracy.SO3K:
        r = rows["ethanol", preset]
        assert r["status"] == "ok"
        assert all(math.isfinite(r["test"][m]) and r["test"][m] > 0 for m in METRICS)
        best = Path(r["run"]) / "best.ckpt"
        assert r["params"] == count_parameters(model_from_checkpoint(best))
        # trained on the split's training file, selected on its validation file, scored on its test file
        assert r["digests"] == split["digests"] and r["frames"] == {"train": 20, "valid": 5, "test": 5}
        config = yaml.safe_load((Path(r["run"]) / "config.yaml").read_text())
        assert config["data"]["path"] == split["files"]["train"] and config["data"]["valid_path"] == split["files"]["valid"]
        assert r["curve"] and all(t > 0 and mae > 0 for t, mae in r["curve"])
        assert r["minutes_to_threshold"] is not None  # the default threshold is one every model reached
    assert rows["ethanol", "euclidean2024"]["params"] != rows["ethanol", "neurips2022"]["params"]

    # the learning curve: a point per requested frame count; the 10-frame run trained on the first 10 frames
    points = {(p["model"], p["n_train"]): p for p in report["curve"]}
    assert sorted(points) == sorted((m, n) for m in ("euclidean2024", "mace-small") for n in (10, 20))
    for n in (10, 20):
        p = points["euclidean2024", n]
        assert p["status"] == "ok" and math.isfinite(p["forces_mae_meV_A"]) and p["digests"]["test"] == split["digests"]["test"]
        assert len(json.loads((Path(p["run"]) / "split.json").read_text())["train"]) == n
        assert points["mace-small", n]["status"] == "not run (--no-peers)"
    ten = ase.io.read(Path(split["folder"]) / "train-10.extxyz", index=":")
    assert [a.positions.round(6).tobytes() for a in ten] == [a.positions.round(6).tobytes() for a in files["train"][:10]]
    assert points["euclidean2024", 20]["run"] == rows["ethanol", "euclidean2024"]["run"]  # same run, trained once

    # the outputs
    table = (out / "accuracy.md").read_text()
    assert table.count("| ethanol |") == len(accuracy.DEFAULT_MODELS) and "| so3k euclidean2024 |" in table
    saved = json.loads((out / "accuracy.json").read_text())
    assert saved["rows"][0]["dataset"] == "ethanol"
    assert str(out) not in (out / "accuracy.json").read_text()  # paths relative to --out: the file travels
    assert (out / saved["rows"][0]["run"] / "best.ckpt").exists()
    for name in ("accuracy.png", "accuracy-learning-curve.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a second call reuses every finished run
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/result.json")}
    assert len(stamps) == 3  # two presets, and the 10-frame curve point
    again = accuracy.main(quick(out))
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/result.json")} == stamps
    assert [r.get("test") for r in again["rows"]] == [r.get("test") for r in report["rows"]]


def test_a_failed_run_is_reported_in_its_row(tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy.Job, "command", lambda self, pythons: [sys.executable, "-c", "raise ValueError('planted failure')"])
    report = accuracy.main(quick(tmp_path, "--models", "euclidean2024", "--curve-models"))
    assert [r["status"] for r in report["rows"]] == ["failed: ValueError: planted failure"]
    assert "| ethanol | so3k euclidean2024 | failed: ValueError: planted failure |" in (tmp_path / "accuracy.md").read_text()
    assert not list(tmp_path.glob("runs/*/*/result.json"))  # a failure is not kept: the next call tries again


def test_time_to_threshold_and_default_threshold():
    rows = [{"dataset": "d", "curve": [[10.0, 80.0], [20.0, 40.0], [30.0, 30.0]]},
            {"dataset": "d", "curve": [[5.0, 90.0], [15.0, 50.0]]}]
    limits = accuracy.thresholds(rows, {})
    assert limits == {"d": 50.0}  # the best of the weakest model
    assert accuracy.time_to(rows[0]["curve"], limits["d"]) == 20.0
    assert accuracy.time_to(rows[1]["curve"], limits["d"]) == 15.0
    assert accuracy.time_to(rows[1]["curve"], 10.0) is None
    assert accuracy.thresholds(rows, {"d": 35.0}) == {"d": 35.0}
