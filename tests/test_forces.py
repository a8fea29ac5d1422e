"""so3k.forces.ForceField, the one wrapper every front end calls: its outputs beyond energy and
forces (per-atom energies, ghost-shell mode, virial without stress, an attached energy), float64."""

import numpy as np
import pytest
import torch

import so3k
from so3k import keys
from so3k.forces import ForceField
from so3k.graph import build_graph


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    m = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=3, features=32).double().eval()
    m.readout.scale.fill_(2.0)
    return m


def test_per_atom_energies_sum_to_each_structure_and_eval_outputs_are_detached(model, aspirin, water):
    graph = build_graph([aspirin, water], model.config.elements, model.cutoff)
    out = ForceField(model)(**graph.inputs(), compute_stress=True)
    per_structure = torch.zeros(2, dtype=torch.float64).index_add_(0, graph.batch, out[keys.ENERGIES])
    torch.testing.assert_close(per_structure, out[keys.ENERGY], rtol=1e-13, atol=0)
    assert not any(v.requires_grad for v in out.values())
    assert keys.STRESS not in out  # the molecule has no cell volume; the virial is still there
    assert out[keys.VIRIAL].shape == (2, 3, 3)


def test_the_virial_of_a_molecule_is_the_sum_of_r_times_f(model, aspirin):
    graph = build_graph([aspirin], model.config.elements, model.cutoff)
    out = ForceField(model)(**graph.inputs(), compute_stress=True)
    rf = graph.positions.T @ out[keys.FORCES]
    torch.testing.assert_close(out[keys.VIRIAL][0], 0.5 * (rf + rf.T), rtol=0, atol=1e-10 * float(rf.abs().max()))


def test_without_forces_the_energy_keeps_its_graph_for_the_engine(model, aspirin):
    graph = build_graph([aspirin], model.config.elements, model.cutoff)
    inputs = graph.inputs()
    positions = inputs.pop("positions").clone().requires_grad_(True)
    out = ForceField(model)(positions, **inputs, compute_forces=False)
    assert keys.FORCES not in out and out[keys.ENERGY].requires_grad
    (grad,) = torch.autograd.grad(out[keys.ENERGY].sum(), positions)
    forces = ForceField(model)(**graph.inputs())[keys.FORCES]
    torch.testing.assert_close(-grad, forces, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_local", [5, 21])
def test_ghost_mode_gives_the_owned_energy_and_its_forces_on_all_atoms(model, aspirin, n_local):
    graph = build_graph([aspirin], model.config.elements, model.cutoff)
    out = ForceField(model)(**graph.inputs(), n_local=n_local)
    # the same quantities from the whole structure, by plain autograd
    positions = graph.positions.clone().requires_grad_(True)
    e_i = model.atomic_energies(positions, graph.species, graph.idx_i, graph.idx_j, graph.shifts(), graph.batch)
    owned = e_i[:n_local].sum()
    (grad,) = torch.autograd.grad(owned, positions)
    assert out[keys.ENERGIES].shape == (n_local,)
    torch.testing.assert_close(out[keys.ENERGIES], e_i[:n_local].detach(), rtol=1e-12, atol=0)
    assert float(out[keys.ENERGY][0]) == pytest.approx(float(owned.detach()), rel=1e-12)
    np.testing.assert_allclose(out[keys.FORCES].numpy(), -grad.numpy(), rtol=0, atol=1e-12)
