import pytest
import torch
from scipy.spatial.transform import Rotation

from so3k.nn.clebsch_gordan import allowed_couplings, clebsch_gordan, sphere_quadrature
from so3k.nn.spherical_harmonics import spherical_harmonics

COUPLINGS = allowed_couplings([1, 2, 3, 4], include_equal=True)


def random_unit(n, seed=0):
    u = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return u / u.norm(dim=-1, keepdim=True)


def wigner_d(l, rot):
    """Real Wigner matrix of the SH basis by least squares: Y(R u) = D Y(u) on many points."""
    u = random_unit(100, seed=123)
    y, y_rot = spherical_harmonics(u, [l]), spherical_harmonics(u @ rot.T, [l])
    return torch.linalg.lstsq(y, y_rot).solution.T


def couple(c, a, b):
    return torch.einsum("ijk,...i,...j->...k", c, a, b)


def test_allowed_couplings_hand_written():
    assert allowed_couplings([1, 2, 3]) == [(1, 2, 1), (2, 3, 1), (1, 3, 2), (1, 2, 3), (2, 3, 3)]
    assert allowed_couplings([3, 1, 2]) == allowed_couplings([1, 2, 3])
    assert allowed_couplings([1, 2, 3, 4]) == [
        (1, 2, 1), (2, 3, 1), (3, 4, 1),
        (1, 3, 2), (2, 4, 2),
        (1, 2, 3), (1, 4, 3), (2, 3, 3), (3, 4, 3),
        (1, 3, 4), (2, 4, 4),
    ]  # fmt: skip
    assert allowed_couplings([1, 2], include_equal=True) == [(1, 2, 1), (1, 1, 2), (2, 2, 2)]


@pytest.mark.parametrize("l1,l2,l3", COUPLINGS)
def test_equivariance_and_norm(l1, l2, l3):
    c = clebsch_gordan(l1, l2, l3)
    assert c.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1) and c.dtype == torch.float64
    assert abs((c * c).sum().item() - (2 * l3 + 1)) < 1e-12
    g = torch.Generator().manual_seed(l1 * 100 + l2 * 10 + l3)
    a = torch.randn(4, 2 * l1 + 1, dtype=torch.float64, generator=g)
    b = torch.randn(4, 2 * l2 + 1, dtype=torch.float64, generator=g)
    for seed in range(3):
        rot = torch.from_numpy(Rotation.random(random_state=seed).as_matrix())
        d1, d2, d3 = (wigner_d(l, rot) for l in (l1, l2, l3))
        lhs = couple(c, a @ d1.T, b @ d2.T)
        torch.testing.assert_close(lhs, couple(c, a, b) @ d3.T, atol=1e-10, rtol=0)


@pytest.mark.parametrize("l1,l2,l3", COUPLINGS)
def test_coupled_harmonics_proportional_to_harmonic(l1, l2, l3):
    # Σ C Y^l1(u) Y^l2(u) is an equivariant function of u alone, hence c · Y^l3(u).
    u = random_unit(50, seed=7)
    coupled = couple(clebsch_gordan(l1, l2, l3), spherical_harmonics(u, [l1]), spherical_harmonics(u, [l2]))
    y3 = spherical_harmonics(u, [l3])
    ratio = (coupled * y3).sum() / (y3 * y3).sum()
    assert abs(ratio.item()) > 1e-3  # nonzero because l1 + l2 + l3 is even
    torch.testing.assert_close(coupled, ratio * y3, atol=1e-12, rtol=0)


def test_sign_convention_and_cache_returns_copies():
    c = clebsch_gordan(1, 1, 2)
    flat = c.reshape(-1).abs()
    first = int(torch.nonzero(flat > flat.max() * (1 - 1e-9))[0])
    assert c.reshape(-1)[first] > 0
    c.zero_()
    assert clebsch_gordan(1, 1, 2).abs().sum() > 0
    # Trivial couplings: l2 = 0 is the identity up to the fixed normalisation.
    torch.testing.assert_close(
        clebsch_gordan(2, 0, 2)[:, 0, :], torch.eye(5, dtype=torch.float64), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("l1,l2,l3", [(1, 1, 1), (1, 2, 2), (2, 3, 4), (1, 3, 3)])
def test_parity_forbidden_raises(l1, l2, l3):
    with pytest.raises(ValueError, match="reflection"):
        clebsch_gordan(l1, l2, l3)


@pytest.mark.parametrize("l1,l2,l3", [(1, 1, 4), (1, 4, 1), (0, 2, 4), (0, 1, 3)])
def test_triangle_violation_raises(l1, l2, l3):
    with pytest.raises(ValueError, match="triangle"):
        clebsch_gordan(l1, l2, l3)


def test_degree_out_of_range_raises():
    with pytest.raises(ValueError, match="0..4"):
        clebsch_gordan(4, 1, 5)


def test_quadrature_exact():
    pts, w = sphere_quadrature(12)
    assert abs(w.sum().item() - 4 * torch.pi) < 1e-12
    # ∫ z^12 dΩ = 4π / 13 and ∫ x^4 y^4 z^4 dΩ = 4π · 27 / (3 · 5 · 7 · 9 · 11 · 13).
    assert abs((w * pts[:, 2] ** 12).sum().item() - 4 * torch.pi / 13) < 1e-12
    xyz4 = (w * (pts[:, 0] * pts[:, 1] * pts[:, 2]) ** 4).sum().item()
    assert abs(xyz4 - 4 * torch.pi * 27 / 135135) < 1e-14
