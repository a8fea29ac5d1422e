"""The training loop: learning, exact resume, EMA, checkpoints, non-finite steps, bad input."""

import csv
import json

import numpy as np
import pytest
import torch

from so3k import keys
from so3k.calculators import So3kratesCalculator
from so3k.forces import ForceField
from so3k.train import ConfigError, TrainingError, load_checkpoint, model_from_checkpoint, train
from so3k.train.trainer import Trainer


def rows(run):
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_training_lowers_the_loss_and_writes_the_run_folder(tiny_config, tmp_path):
    run = tmp_path / "run"
    config = tiny_config("model.layers=2", "model.features=32", "model.radial_hidden=32", "data.n_train=48",
                         "training.max_epochs=6", "training.lr=3e-3")
    best = train(config, run, progress=False)
    history = rows(run)
    assert len(history) == 6
    assert float(history[-1]["valid_loss"]) < 0.5 * float(history[0]["valid_loss"])
    assert float(history[-1]["valid_forces_mae_meV_A"]) < 0.7 * float(history[0]["valid_forces_mae_meV_A"])
    assert float(history[-1]["train_loss"]) < float(history[0]["train_loss"])
    for name in ("config.yaml", "split.json", "metrics.csv", "best.ckpt", "last.ckpt", "learning_curves.png", "parity_valid.png"):
        assert (run / name).stat().st_size > 0, name
    assert best == run / "best.ckpt"
    split = json.loads((run / "split.json").read_text())
    assert [len(split[k]) for k in ("train", "valid", "test")] == [48, 8, 8]
    assert not set(split["train"]) & set(split["valid"]) and not set(split["train"]) & set(split["test"])


def test_resume_after_a_kill_equals_an_uninterrupted_run(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("training.max_epochs=4", "training.dtype=float64")
    train(config, tmp_path / "straight", progress=False)

    original = Trainer._train_epoch

    def killed_in_epoch_three(self):
        if self.epoch == 2:
            raise KeyboardInterrupt  # the process dies in the middle of epoch 3
        return original(self)

    monkeypatch.setattr(Trainer, "_train_epoch", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", progress=False)
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    assert len(rows(tmp_path / "killed")) == 2
    train(config, tmp_path / "killed", resume=True, progress=False)

    straight, resumed = rows(tmp_path / "straight"), rows(tmp_path / "killed")
    assert len(resumed) == 4
    for a, b in zip(straight, resumed):
        assert {k: v for k, v in a.items() if k != "time_s"} == {k: v for k, v in b.items() if k != "time_s"}
    a, b = load_checkpoint(tmp_path / "straight" / "last.ckpt"), load_checkpoint(tmp_path / "killed" / "last.ckpt")
    for name in ("state_dict", "raw_state_dict"):
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)


def test_a_finished_run_is_not_overwritten(tiny_config, tmp_path):
    train(tiny_config("training.max_epochs=1"), tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="already holds a run; continue it with --resume"):
        train(tiny_config("training.max_epochs=1"), tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="last.ckpt not found"):
        train(tiny_config(), tmp_path / "empty", resume=True, progress=False)


def test_ema_weights_differ_from_raw_and_are_what_is_saved(tiny_config, tmp_path, aspirin):
    run = tmp_path / "run"
    train(tiny_config("training.max_epochs=2", "training.ema_decay=0.9"), run, progress=False)
    content = torch.load(run / "best.ckpt", weights_only=True)  # plain tensors and primitives only
    ema, raw = content["state_dict"], content["raw_state_dict"]
    differ = [k for k in ema if ema[k].dtype.is_floating_point and not torch.equal(ema[k], raw[k])]
    assert "readout.mlp.net.0.weight" in differ
    torch.testing.assert_close(ema["readout.shift"], raw["readout.shift"])  # buffers are copied, not averaged
    model = model_from_checkpoint(run / "best.ckpt")
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())
    ethanol = model_from_checkpoint(run / "best.ckpt")
    from so3k.data.molecules import load_molecule

    atoms = load_molecule("ethanol")
    atoms.calc = So3kratesCalculator(str(run / "best.ckpt"))
    direct = So3kratesCalculator(model=ethanol)
    assert atoms.get_potential_energy() == pytest.approx(direct.get_potential_energy(atoms), rel=1e-12)


def test_non_finite_steps_are_skipped_then_training_stops(tiny_config, tmp_path, monkeypatch):
    forward = ForceField.forward
    calls = {"n": 0}

    def sometimes_nan(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] in (2, 3):
                out[keys.ENERGY] = out[keys.ENERGY] * float("nan")
        return out

    monkeypatch.setattr(ForceField, "forward", sometimes_nan)
    run = tmp_path / "run"
    train(tiny_config("training.max_epochs=1"), run, progress=False)
    assert int(rows(run)[0]["skipped_steps"]) == 2

    def always_nan(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        if self.training:
            out[keys.ENERGY] = out[keys.ENERGY] * float("nan")
        return out

    monkeypatch.setattr(ForceField, "forward", always_nan)
    with pytest.raises(TrainingError, match="NaN/inf in 3 consecutive steps.*lower training.lr"):
        train(tiny_config("training.max_nonfinite_steps=3"), tmp_path / "nan", progress=False)


@pytest.mark.parametrize(
    "sets, error, message",
    [
        (["training.epochs=3"], ConfigError, r"unknown key\(s\) \['epochs'\] in section 'training'"),
        (["optim.lr=3"], ConfigError, r"unknown section\(s\) \['optim'\]"),
        (["model.layer=2"], ConfigError, r"model section: unknown model option\(s\) \['layer'\]"),
        (["training.optimizer=sgd"], ConfigError, "training.optimizer must be adam or adamw"),
        (["data.n_train=2000"], ConfigError, "the data have 1000 frames but n_train"),
        (["data.forces_key=nope"], ConfigError, "no forces .* set training.forces_weight=0 to train on energies only"),
    ],
)
def test_bad_configs_are_refused_with_the_fix(tiny_config, tmp_path, sets, error, message):
    with pytest.raises(error, match=message):
        train(tiny_config(*sets), tmp_path / "run", progress=False)


def test_validation_elements_must_occur_in_training(tiny_config, tmp_path):
    from ase import Atoms
    from ase.build import molecule

    from so3k.data.frames import Frames
    from so3k.data.io import write_extxyz

    def write(structures, name):
        frames = Frames.from_atoms(structures, energy=[0.0] * len(structures), forces=[np.zeros((len(a), 3)) for a in structures])
        write_extxyz(frames, tmp_path / name)
        return str(tmp_path / name)

    h2 = write([Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * k]]) for k in range(6)], "h2.extxyz")
    water = write([molecule("H2O")] * 3, "water.extxyz")
    config = tiny_config(f"data.path={h2}", f"data.valid_path={water}", "data.n_train=null", "data.n_test=0")
    with pytest.raises(ConfigError, match=r"element\(s\) \['O'\] occur in the validation data but not in the training"):
        Trainer(config, tmp_path / "run")


def test_energy_only_training(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("training.forces_weight=0", "training.energy_weight=1", "training.max_epochs=2"), run, progress=False)
    assert float(rows(run)[-1]["valid_loss"]) > 0
