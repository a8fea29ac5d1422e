"""training.compile: the compiled energy + forces of a training step against ForceField (float64)."""

import csv

import pytest
import torch

import so3k
from so3k.forces import ForceField
from so3k.graph import build_graph
from so3k.train import TrainingError, train
from so3k.train.compiled import CompiledForces

TINY_MODEL = dict(layers=2, features=16, num_radial=8, radial_hidden=16, sphc_hidden=8)


def loss_and_gradients(step_forces, model, structures):
    inputs = build_graph(structures, model.config.elements, model.cutoff, torch.float64).inputs()
    out = step_forces(**inputs)
    loss = (out["energy"] ** 2).sum() + 10.0 * (out["forces"] ** 2).sum()
    model.zero_grad()
    loss.backward()
    return out, {name: p.grad.clone() for name, p in model.named_parameters()}


def test_compiled_step_equals_eager_and_compiles_once_per_graph(water, make_water, aspirin, perturb):
    torch.manual_seed(0)
    model = so3k.build_model("euclidean2024", elements=["H", "C", "O"], **TINY_MODEL).double().train()
    compiled, eager = CompiledForces(model), ForceField(model).train()
    # periodic triclinic boxes of two sizes in batches of two, then a single molecule
    batches = [[water, make_water(2, seed=1)], [make_water(3, seed=2), perturb(water, seed=3)], [aspirin]]
    for structures in batches:
        out_c, grads_c = loss_and_gradients(compiled, model, structures)
        out_e, grads_e = loss_and_gradients(eager, model, structures)
        torch.testing.assert_close(out_c["energy"], out_e["energy"], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(out_c["forces"], out_e["forces"], rtol=1e-9, atol=1e-10)
        for name, grad in grads_e.items():
            torch.testing.assert_close(grads_c[name], grad, rtol=1e-8, atol=1e-10, msg=name)
    # one graph for batches of any size (symbolic atoms, pairs and structures), one for single structures
    assert sorted(compiled.graphs) == [False, True] and all(s > 0 for s in compiled.compile_seconds.values())


def test_training_with_compile_follows_the_same_path(tiny_config, tmp_path):
    runs = {}
    for flag in ("false", "true"):
        train(tiny_config("training.dtype=float64", "training.max_epochs=2", f"training.compile={flag}"), tmp_path / flag,
              progress=False)
        with (tmp_path / flag / "metrics.csv").open() as handle:
            runs[flag] = list(csv.DictReader(handle))
    for eager, compiled in zip(runs["false"], runs["true"]):
        for key in ("train_loss", "valid_loss", "valid_forces_mae_meV_A"):
            assert float(compiled[key]) == pytest.approx(float(eager[key]), rel=1e-7), key


def test_non_local_models_are_refused():
    model = so3k.build_model("neurips2022", elements=["H", "C"], nonlocal_attention="fixed", **{**TINY_MODEL, "features": 24})
    with pytest.raises(TrainingError, match="training.compile to false"):
        CompiledForces(model)
