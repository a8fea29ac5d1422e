"""A run folder is never lost or mixed: one writer at a time, metrics that match the checkpoint
after a crash anywhere, resume refuses changed data, a wall-time budget, NaN rather than zero
for epochs without a step."""

import csv
import fcntl
import math
import shutil
import time

import pytest

import so3k.train.trainer as trainer_module
from so3k.train import TrainingError, load_checkpoint, train
from so3k.train.trainer import Trainer


def rows(run):
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_second_writer_is_refused(tiny_config, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with (run / ".lock").open("a+") as other:  # another process training into the same folder
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TrainingError, match="another so3k train is writing to"):
            train(tiny_config("training.max_epochs=1"), run, progress=False)
    assert not (run / "config.yaml").exists() and not (run / "last.ckpt").exists()
    train(tiny_config("training.max_epochs=1"), run, progress=False)  # free again: the run starts
    assert len(rows(run)) == 1


def test_metrics_match_the_checkpoint_after_a_crash_between_them(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("training.max_epochs=3", "training.dtype=float64")
    train(config, tmp_path / "straight", progress=False)
    original = trainer_module.write_metrics

    def dies_in_epoch_two(history, path):
        if len(history) == 2:
            raise KeyboardInterrupt  # killed after last.ckpt of epoch 2 was written, before its metrics row
        original(history, path)

    monkeypatch.setattr(trainer_module, "write_metrics", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", progress=False)
    monkeypatch.setattr(trainer_module, "write_metrics", original)
    assert len(rows(tmp_path / "killed")) == 1 and load_checkpoint(tmp_path / "killed" / "last.ckpt")["training_state"]["epoch"] == 2
    train(None, tmp_path / "killed", resume=True, progress=False)
    straight, resumed = rows(tmp_path / "straight"), rows(tmp_path / "killed")
    assert [r["epoch"] for r in resumed] == ["1", "2", "3"]
    assert [r["valid_loss"] for r in resumed] == [r["valid_loss"] for r in straight]


def test_resume_refuses_a_changed_data_file(tiny_config, tmp_path):
    from so3k.data.io import read_frames, write_extxyz
    from so3k.datasets import path

    data = tmp_path / "ethanol.extxyz"
    frames = read_frames(path("ethanol"))
    write_extxyz(frames, data)
    config = tiny_config("training.max_epochs=1", f"data.path={data}")
    train(config, tmp_path / "run", progress=False)
    frames.energy[3] += 0.5
    write_extxyz(frames, data)
    with pytest.raises(TrainingError, match="changed since this run started"):
        train(None, tmp_path / "run", resume=True, progress=False, extend=["training.max_epochs=2"])


def test_the_time_budget_is_wall_time(tiny_config, tmp_path, monkeypatch):
    original = Trainer._write_epoch

    def slow_checkpoints(self, row, improved):
        original(self, row, improved)
        time.sleep(1.5)  # checkpoints and plots that take long

    monkeypatch.setattr(Trainer, "_write_epoch", slow_checkpoints)
    start = time.perf_counter()
    train(tiny_config("training.max_epochs=50", "training.max_minutes=0.04"), tmp_path / "run", progress=False)
    assert time.perf_counter() - start < 0.04 * 60 + 4.0  # at most one epoch past the budget
    assert len(rows(tmp_path / "run")) <= 2


def test_an_epoch_without_a_step_is_nan_not_zero(tiny_config, tmp_path, monkeypatch):
    import torch

    from so3k.forces import ForceField

    forward = ForceField.forward

    def always_nan(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        if self.model.training:
            out["energy"] = out["energy"] * torch.nan
        return out

    monkeypatch.setattr(ForceField, "forward", always_nan)
    config = tiny_config("training.max_epochs=1", "training.max_nonfinite_steps=1000")
    train(config, tmp_path / "run", progress=False)
    row = rows(tmp_path / "run")[0]
    assert math.isnan(float(row["train_loss"])) and math.isnan(float(row["train_forces_mae_meV_A"]))
    assert int(row["skipped_steps"]) > 0
    state = load_checkpoint(tmp_path / "run" / "last.ckpt")["training_state"]
    assert state["consecutive_nonfinite"] == int(row["skipped_steps"])  # kept for a resumed run
    shutil.rmtree(tmp_path / "run")
