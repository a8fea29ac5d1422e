"""Data-parallel training: 2 gloo processes under torchrun equal 1 process on the same global batches."""

import csv
import os
import subprocess
import sys

import torch

from so3k.train import load_checkpoint

SETS = [
    "model.preset=euclidean2024", "model.layers=1", "model.features=16", "model.num_radial=8", "model.radial_hidden=16",
    "model.sphc_hidden=8", "data.path=ethanol", "data.n_train=22", "data.n_valid=7", "training.batch_size=4",
    "training.valid_batch_size=4", "training.max_epochs=2", "training.dtype=float64",
]


def run(out, processes):
    launcher = [sys.executable, "-m", "so3k.cli"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "so3k.cli"]
    command = launcher + ["train", "--out", str(out), "--no-progress"] + [a for s in SETS for a in ("--set", s)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_two_gloo_processes_equal_one_process(tmp_path):
    # 22 frames in batches of 4: the last global batch has 2 frames, one per process.
    stdout = run(tmp_path / "two", 2)
    assert "2 process(es)" in stdout
    run(tmp_path / "one", 1)
    one, two = load_checkpoint(tmp_path / "one" / "last.ckpt"), load_checkpoint(tmp_path / "two" / "last.ckpt")
    assert one["training_state"]["step"] == two["training_state"]["step"] == 12
    for key, value in one["raw_state_dict"].items():
        # float64: only the order of the gradient sums differs
        torch.testing.assert_close(two["raw_state_dict"][key], value, rtol=1e-9, atol=1e-11)
    rows = [list(csv.DictReader((tmp_path / name / "metrics.csv").open())) for name in ("one", "two")]
    for a, b in zip(*rows):
        for column in a:
            if column != "time_s":
                assert abs(float(a[column]) - float(b[column])) <= 1e-9 * max(1.0, abs(float(a[column]))), column
