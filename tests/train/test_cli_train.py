"""so3k train / evaluate / info from the command line."""

import json
from pathlib import Path

import numpy as np
from ase.io import read

from so3k.cli import main

SETS = [
    "model.preset=euclidean2024", "model.layers=1", "model.features=16", "model.num_radial=8", "model.radial_hidden=16",
    "model.sphc_hidden=8", "data.path=ethanol", "data.n_train=16", "data.n_valid=4", "data.n_test=6",
    "training.batch_size=4", "training.max_epochs=2",
]


def test_train_evaluate_info(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text("model:\n  preset: neurips2022\n")
    out = tmp_path / "run"
    args = ["train", str(config), "--out", str(out), "--no-progress"] + [a for s in SETS for a in ("--set", s)]
    assert main(args) == 0
    assert "stopped: reached training.max_epochs = 2" in capsys.readouterr().out

    assert main(["evaluate", str(out / "best.ckpt"), "ethanol", "--subset", "test", "--json", "--output", str(tmp_path / "p.extxyz")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["frames"] == 6 and metrics["forces_mae_meV_A"] > 0 and metrics["energy_mae_meV"] > 0
    frames = read(tmp_path / "p.extxyz", index=":")
    assert len(frames) == 6 and "ref_forces" in frames[0].arrays and "ref_energy" in frames[0].info
    errors = [abs(a.get_potential_energy() - a.info["ref_energy"]) for a in frames]
    assert np.isclose(1e3 * np.mean(errors), metrics["energy_mae_meV"], rtol=1e-4)

    assert main(["evaluate", str(out / "best.ckpt"), "ethanol", "--subset", "valid"]) == 0
    text = capsys.readouterr().out
    assert "(valid, 4 frames)" in text and "forces MAE" in text

    assert main(["info", str(out / "best.ckpt")]) == 0
    text = capsys.readouterr().out
    assert "euclidean2024" in text and "elements      H, C, O" in text and "split         train 16, valid 4, test 6" in text

    # --resume of a finished run continues to its own max_epochs: nothing left to do
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "stopped: reached training.max_epochs = 2" in capsys.readouterr().out
    # ... unless the stopping criteria are extended; other settings cannot change on resume
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--set", "training.max_epochs=3"]) == 0
    assert "epoch    3" in capsys.readouterr().out
    assert main(["train", "--out", str(out), "--resume", "--set", "training.lr=1"]) == 2
    assert "--resume accepts --set only for training.max_epochs" in capsys.readouterr().err


def test_cli_errors_are_one_line_messages(tmp_path, capsys):
    example = Path(__file__).resolve().parents[2] / "examples" / "train_euclidean2024.yaml"
    assert main(["train", str(example), "--out", str(tmp_path / "r"), "--set", "training.bogus=1"]) == 2
    assert "so3k: error: unknown key(s) ['bogus'] in section 'training'" in capsys.readouterr().err
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert main(["info", str(tmp_path / "junk.ckpt")]) == 2
    assert "is not a so3k checkpoint: torch cannot read it" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.ckpt"), "ethanol"]) == 2
    assert "checkpoint" in capsys.readouterr().err
