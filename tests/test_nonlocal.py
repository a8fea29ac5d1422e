"""Non-local SPHC attention (paper Eq. 14): symmetry, forces, smoothness, and what it can see
that a local model provably cannot."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import so3k
from so3k.data.generate.cumulene import build_cumulene, rotate_end
from so3k.forces import ForceField
from so3k.nn.nonlocal_attention import SphcNeighbourhood, structure_pairs

MODES = ["fixed", "dynamic"]


def model_for(mode, seed=0, **overrides):
    torch.manual_seed(seed)
    options = dict(layers=2, features=32, cutoff=4.0, nonlocal_attention=mode)
    options.update(overrides)
    model = so3k.build_model("euclidean2024", elements=["H", "C", "O"], **options).double()
    model.readout.scale.fill_(2.0)
    return model


def rattled(atoms, seed=0, scale=0.05):
    atoms = atoms.copy()
    atoms.positions += np.random.default_rng(seed).normal(scale=scale, size=atoms.positions.shape)
    return atoms


@pytest.mark.parametrize("mode", MODES)
def test_invariance_and_force_equivariance(mode, run_model):
    model = model_for(mode)
    atoms = rattled(build_cumulene(8, 30.0))
    e0, f0, _ = run_model(model, [atoms])
    rotation = Rotation.random(random_state=1).as_matrix() * np.array([1, 1, -1])  # with a reflection
    moved = atoms.copy()
    moved.positions = atoms.positions @ rotation.T + np.array([3.0, -1.0, 2.0])
    order = np.random.default_rng(2).permutation(len(atoms))
    moved = moved[order]
    e1, f1, _ = run_model(model, [moved])
    assert e1[0] == pytest.approx(e0[0], rel=1e-12)
    np.testing.assert_allclose(f1, (f0 @ rotation.T)[order], atol=1e-10 * np.abs(f0).max())


@pytest.mark.parametrize("mode", MODES)
def test_forces_are_minus_the_energy_gradient(mode, run_model):
    model = model_for(mode, seed=3)
    atoms = rattled(build_cumulene(6, 50.0), seed=4)
    _, forces, _ = run_model(model, [atoms])
    h = 1e-5
    for atom, axis in [(0, 2), (3, 0), (7, 1), (9, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        derivative = (run_model(model, [plus])[0][0] - run_model(model, [minus])[0][0]) / (2 * h)
        assert -derivative == pytest.approx(forces[atom, axis], abs=1e-7 * max(1.0, np.abs(forces).max()))


def test_psi_is_smooth_in_the_sphcs():
    """psi is a smooth function of chi: gradcheck through the softmax and the envelope, with
    pairs on both sides of the threshold."""
    torch.manual_seed(5)
    batch = torch.tensor([0] * 7 + [1] * 5)
    g_i, g_j = structure_pairs(batch)
    counts = torch.bincount(batch)[batch]
    for mode, threshold in (("fixed", 0.15), ("dynamic", 0.0)):
        neighbourhood = SphcNeighbourhood(mode, threshold or 0.05)
        chi = torch.randn(12, 8, dtype=torch.float64, requires_grad=True)
        psi = neighbourhood(chi, g_i, g_j, counts)
        assert ((psi > 0) & (psi < 1)).any() and (psi == 0).any()  # both regimes are exercised
        assert torch.autograd.gradcheck(lambda c: neighbourhood(c, g_i, g_j, counts), (chi,))


def test_pairs_stay_inside_each_structure():
    g_i, g_j = structure_pairs(torch.tensor([0, 0, 0, 1, 1]))
    pairs = set(zip(g_i.tolist(), g_j.tolist()))
    assert pairs == {(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (3, 4), (4, 3)}


@pytest.mark.parametrize("mode", MODES)
def test_a_batch_equals_each_structure_alone(mode, run_model):
    model = model_for(mode, seed=6)
    a, b = rattled(build_cumulene(5, 20.0), seed=7), rattled(build_cumulene(9, 70.0), seed=8)
    energies, forces, _ = run_model(model, [a, b])
    for k, atoms in enumerate((a, b)):
        e, f, _ = run_model(model, [atoms])
        assert energies[k] == pytest.approx(e[0], rel=1e-12)
    np.testing.assert_allclose(forces[: len(a)], run_model(model, [a])[1], atol=1e-12)


def test_far_end_rotation_changes_only_the_non_local_energy(run_model):
    """A 14-carbon cumulene: rotating one CH2 end rigidly about the chain axis changes no distance
    within 4 Å, and the ends are ~19 Å apart, beyond the 2 x 2 x 4 Å = 16 Å a 2-layer local model
    with a 4 Å cutoff can bridge. The local model cannot see the rotation at all; the non-local
    one must."""
    atoms = build_cumulene(14, 0.0)
    ends = np.linalg.norm(atoms.positions[-1] - atoms.positions[-3])
    assert ends > 2 * 2 * 4.0
    angles = [0.0, 30.0, 60.0, 90.0]
    scan = [rotate_end(atoms, angle) for angle in angles]
    local = run_model(model_for("off"), scan)[0]
    np.testing.assert_allclose(local - local[0], 0.0, atol=1e-12)
    # Random weights give nearly equal SPHCs, so the softmax is nearly uniform (p ~ 1/(N-1)) and
    # lies above both default thresholds: psi = 0. A generous fixed threshold, or first-layer SPHC
    # weights large enough to spread the SPHCs, opens the SPHC-space neighbourhoods.
    generous = model_for("fixed", nonlocal_threshold=0.5)
    spread = model_for("dynamic")
    with torch.no_grad():
        for parameter in spread.layers[0].sphc_attention.parameters():
            parameter.mul_(5.0)
    for model in (generous, spread):
        energies = run_model(model, scan)[0]
        assert np.abs(energies - energies[0]).max() > 1e-5, (model.config.nonlocal_attention, energies - energies[0])
    # the same weights without the option: flat again
    spread_local = model_for("off")
    spread_local.load_state_dict(spread.state_dict())
    energies = run_model(spread_local, scan)[0]
    np.testing.assert_allclose(energies - energies[0], 0.0, atol=1e-12)


def test_scripted_equals_eager_in_float32_and_float64(run_model):
    model = model_for("dynamic", seed=9)
    atoms = rattled(build_cumulene(7, 40.0), seed=10)
    e64, f64, _ = run_model(model, [atoms])
    scripted = torch.jit.script(ForceField(model))
    e, f, _ = run_model(model, [atoms], scripted=scripted)
    assert e[0] == pytest.approx(e64[0], rel=1e-12)
    np.testing.assert_allclose(f, f64, atol=1e-12 * np.abs(f64).max())
    e32, f32, _ = run_model(model.float(), [atoms], dtype=torch.float32)
    assert e32[0] == pytest.approx(e64[0], rel=1e-5)
    np.testing.assert_allclose(f32, f64, atol=1e-4 * np.abs(f64).max())


def test_periodic_structures_are_refused(make_water, tmp_path):
    from so3k.calculators import So3kratesCalculator
    from so3k.errors import CapabilityError

    model = model_for("dynamic")
    water = make_water(n_per_side=2, spacing=3.1)
    water.calc = So3kratesCalculator(model=model)
    with pytest.raises(CapabilityError, match="cannot run on a periodic system: non-local attention compares every pair"):
        water.get_potential_energy()
    graph = so3k.graph.build_graph([water], model.config.elements, model.cutoff, torch.float64)
    with pytest.raises(ValueError, match="cannot evaluate periodic images: non-local attention"):
        ForceField(model)(**graph.inputs())


def test_only_non_local_layers_carry_an_sphc_neighbourhood():
    local = so3k.build_model("euclidean2024", elements=["H", "C"], layers=2, features=32)
    assert all(layer.neighbourhood is None for layer in local.layers)
    assert not any(isinstance(m, SphcNeighbourhood) for m in local.modules())
    non_local = model_for("fixed")
    assert all(isinstance(layer.neighbourhood, SphcNeighbourhood) for layer in non_local.layers)
