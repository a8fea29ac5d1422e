"""Radial bases, cutoffs, safe operations, block-diagonal linear maps, SPHC blocks."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from so3k.nn import BlockLinear, Exchange, SelfMix, SphcInit, SphcInvariant, spherical_harmonics
from so3k.nn.cutoff import CosineCutoff, PolynomialCutoff, make_cutoff
from so3k.nn.ops import safe_divide, safe_sqrt
from so3k.nn.radial import PhysNetBasis, make_radial_basis
from so3k.nn.sphc import degree_matrix

DEGREES = [1, 2, 3]


def wigner_d(rotation: np.ndarray, degrees) -> torch.Tensor:
    """Block-diagonal real Wigner matrix of our harmonics, fitted by least squares on sample points."""
    u = torch.tensor(np.random.default_rng(0).normal(size=(200, 3)))
    u = u / u.norm(dim=1, keepdim=True)
    y = spherical_harmonics(u, list(degrees))
    y_rot = spherical_harmonics(u @ torch.tensor(rotation).T, list(degrees))
    return torch.linalg.lstsq(y, y_rot).solution.T


def test_safe_operations_have_finite_gradients_at_zero():
    x = torch.tensor([0.0, 4.0], dtype=torch.float64, requires_grad=True)
    y = safe_sqrt(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert y.tolist() == [0.0, 2.0] and torch.isfinite(grad).all() and grad[1] == 0.25
    num = torch.tensor([1.0, 3.0], dtype=torch.float64, requires_grad=True)
    den = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
    z = safe_divide(num, den)
    grads = torch.autograd.grad(z.sum(), [num, den])
    assert z.tolist() == [0.0, 1.5] and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["cosine", "polynomial"])
def test_cutoff_is_one_at_origin_zero_outside_and_smooth_at_rc(name):
    cutoff = make_cutoff(name, 5.0)
    d = torch.tensor([1e-9, 2.5, 5.0 - 1e-7, 5.0, 7.0], dtype=torch.float64, requires_grad=True)
    phi = cutoff(d)
    (grad,) = torch.autograd.grad(phi.sum(), d)
    assert phi[0].item() == pytest.approx(1.0, abs=1e-12)
    assert phi[3].item() == 0.0 and phi[4].item() == 0.0
    assert abs(phi[2].item()) < 1e-12 and abs(grad[2].item()) < 1e-6
    # zero-length pairs are padding: weight 0
    assert cutoff(torch.zeros(1, dtype=torch.float64)).item() == 0.0


def test_cosine_and_polynomial_formulas():
    d = torch.linspace(0.1, 4.9, 7, dtype=torch.float64)
    torch.testing.assert_close(CosineCutoff(5.0)(d), 0.5 * (torch.cos(math.pi * d / 5.0) + 1))
    x = d / 5.0
    expected = 1 - 28 * x**6 + 48 * x**7 - 21 * x**8
    torch.testing.assert_close(PolynomialCutoff(5.0, p=6)(d), expected)


def test_physnet_basis_matches_its_definition():
    basis = PhysNetBasis(32, 5.0).double()
    d = torch.tensor([0.7, 1.5, 4.2], dtype=torch.float64)
    mu = np.linspace(np.exp(-5.0), 1.0, 32)
    beta = ((2 / 32) * (1 - np.exp(-5.0))) ** -2
    expected = np.exp(-beta * (np.exp(-d.numpy())[:, None] - mu) ** 2)
    np.testing.assert_allclose(basis(d).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["physnet", "gaussian", "bernstein"])
def test_radial_bases_are_finite_with_finite_gradients(name):
    basis = make_radial_basis(name, 16, 5.0).double()
    d = torch.tensor([0.0, 0.5, 2.0, 4.99], dtype=torch.float64, requires_grad=True)
    rbf = basis(d)
    (grad,) = torch.autograd.grad(rbf.sum(), d)
    assert rbf.shape == (4, 16) and torch.isfinite(rbf).all() and torch.isfinite(grad).all()
    assert (rbf[1:] > 0).any(dim=1).all()


def test_unknown_block_options_are_refused():
    with pytest.raises(ValueError, match="unknown radial basis 'bessel'"):
        make_radial_basis("bessel", 8, 5.0)
    with pytest.raises(ValueError, match="unknown cutoff function"):
        make_cutoff("step", 5.0)
    with pytest.raises(ValueError, match="unknown SPHC initialisation"):
        SphcInit("random")


def test_block_linear_equals_block_diagonal_matrix():
    torch.manual_seed(0)
    layer = BlockLinear(4, 3, bias=True).double()
    x = torch.randn(5, 12, dtype=torch.float64)
    weight = torch.block_diag(*layer.weight)
    torch.testing.assert_close(layer(x), x @ weight + layer.bias.reshape(-1))


def test_sphc_init_average_and_zero():
    sph = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]], dtype=torch.float64)
    phi = torch.tensor([1.0, 3.0, 0.0], dtype=torch.float64)
    idx_i = torch.tensor([0, 0, 1])
    chi = SphcInit("average")(sph, phi, idx_i, 3)
    torch.testing.assert_close(chi, torch.tensor([[0.25, 0.75], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    assert SphcInit("zeros")(sph, phi, idx_i, 3).abs().sum() == 0


@pytest.mark.parametrize("mode", ["norm", "squared"])
def test_sphc_invariants_are_rotation_invariant(mode):
    torch.manual_seed(1)
    invariant = SphcInvariant(DEGREES, mode).double()
    chi = torch.randn(4, 15, dtype=torch.float64)
    d = wigner_d(Rotation.random(random_state=5).as_matrix(), DEGREES)
    torch.testing.assert_close(invariant(chi @ d.T), invariant(chi), rtol=1e-10, atol=1e-12)
    norms = [chi[:, s : s + 2 * l + 1].norm(dim=1) for s, l in zip([0, 3, 8], DEGREES)]
    expected = torch.stack(norms, 1) if mode == "norm" else torch.stack(norms, 1) ** 2 / torch.tensor([3, 5, 7]) ** 0.5
    torch.testing.assert_close(invariant(chi), expected.double())


@pytest.mark.parametrize("block", ["selfmix", "exchange"])
def test_interaction_is_equivariant_under_rotation_and_reflection(block):
    torch.manual_seed(2)
    cls = SelfMix if block == "selfmix" else Exchange
    layer = cls(12, DEGREES, "norm").double()
    expand = degree_matrix(DEGREES).T.double()
    x = torch.randn(6, 12, dtype=torch.float64)
    chi = torch.randn(6, 15, dtype=torch.float64)
    x0, chi0 = layer(x, chi, expand)
    rotation = Rotation.random(random_state=7).as_matrix()
    for q in (rotation, -rotation):  # -R: a rotation combined with the inversion
        d = wigner_d(q, DEGREES)
        x1, chi1 = layer(x, chi @ d.T, expand)
        torch.testing.assert_close(x1, x0, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(chi1, chi0 @ d.T, rtol=1e-10, atol=1e-10)


def test_selfmix_uses_only_parity_allowed_couplings():
    layer = SelfMix(12, DEGREES, "norm")
    assert layer.coefficients.numel() == 5  # (1,2->1) (2,3->1) (1,3->2) (1,2->3) (2,3->3)
    with pytest.raises(ValueError, match="at least one parity-allowed coupling"):
        SelfMix(12, [1], "norm")
