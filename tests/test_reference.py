"""The optimised model equals the plain one written from the paper (tests/reference.py), in
float64, for both presets, molecules and periodic boxes, local and non-local attention."""

import pytest
import torch

import so3k
from so3k.forces import ForceField
from so3k.graph import build_graph

from .reference import reference_energy

CASES = [
    ("neurips2022", {}),
    ("euclidean2024", {}),
    ("neurips2022", {"nonlocal_attention": "fixed", "nonlocal_threshold": 0.5}),
    ("euclidean2024", {"nonlocal_attention": "dynamic"}),
    ("neurips2022", {"attention_bias": False, "sphc_invariant": "squared", "radial_basis": "bernstein"}),
]


def model_for(preset, overrides, elements, chunk=None):
    torch.manual_seed(0)
    model = so3k.build_model(preset, elements=elements, layers=3, **overrides).double()
    if chunk is not None:  # pair work in several chunks (large systems) instead of one
        model.pair_chunk = chunk
    model.readout.scale.fill_(2.0)
    # random SPHC weights large enough that the SPHCs (zero-initialised in the 2024 model) matter
    for layer in model.layers:
        layer.sphc_attention.q.weight.data.mul_(3.0)
    return model


def both(model, atoms):
    graph = build_graph([atoms], model.config.elements, model.cutoff, torch.float64)
    inputs = graph.inputs()
    out = ForceField(model)(**inputs)
    positions = inputs["positions"].clone().requires_grad_(True)
    shifts = inputs["offsets"] @ inputs["cell"][0]
    energy = reference_energy(model, positions, inputs["species"], inputs["idx_i"], inputs["idx_j"], shifts)
    (grad,) = torch.autograd.grad(energy, positions)
    return (out["energy"][0].detach(), out["forces"].detach()), (energy.detach(), -grad)


@pytest.mark.parametrize("chunk", [None, 37])
@pytest.mark.parametrize("preset,overrides", CASES)
def test_molecule_matches_reference(preset, overrides, chunk, aspirin):
    (e, f), (e_ref, f_ref) = both(model_for(preset, overrides, ["H", "C", "O"], chunk), aspirin)
    assert abs(float(e - e_ref)) <= 1e-12 * max(1.0, abs(float(e_ref)))
    torch.testing.assert_close(f, f_ref, rtol=0, atol=1e-11 * float(f_ref.abs().max()))
    assert float(f_ref.abs().max()) > 1e-3  # the comparison is not between two zeros


@pytest.mark.parametrize("chunk", [None, 100])
@pytest.mark.parametrize("preset", ["neurips2022", "euclidean2024"])
def test_periodic_box_matches_reference(preset, chunk, water):
    (e, f), (e_ref, f_ref) = both(model_for(preset, {}, ["H", "O"], chunk), water)
    assert abs(float(e - e_ref)) <= 1e-12 * max(1.0, abs(float(e_ref)))
    torch.testing.assert_close(f, f_ref, rtol=0, atol=1e-11 * float(f_ref.abs().max()))
