import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from scipy.special import sph_harm_y

from so3k.nn.spherical_harmonics import SphericalHarmonics, degree_index, spherical_harmonics

DEGREES = [0, 1, 2, 3, 4]


def grid(n_t=8, n_phi=16):
    """Product rule exact on S² for polynomials of degree <= 15 (independent of the CG code)."""
    t, w_t = np.polynomial.legendre.leggauss(n_t)
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    s = np.sqrt(1 - t**2)
    pts = np.stack([np.outer(s, np.cos(phi)), np.outer(s, np.sin(phi)), np.outer(t, 0 * phi + 1)], -1)
    w = np.outer(w_t, np.full(n_phi, 2 * np.pi / n_phi))
    return torch.from_numpy(pts.reshape(-1, 3)), torch.from_numpy(w.reshape(-1))


def random_unit(n, seed=0, dtype=torch.float64):
    u = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return (u / u.norm(dim=-1, keepdim=True)).to(dtype)


def real_sh_scipy(l, u):
    """Real SH from SciPy's complex ones (which carry the Condon–Shortley phase; ours don't)."""
    u = u.numpy()
    theta = np.arccos(np.clip(u[:, 2], -1, 1))
    phi = np.mod(np.arctan2(u[:, 1], u[:, 0]), 2 * np.pi)
    cols = []
    for m in range(-l, l + 1):
        y = sph_harm_y(l, abs(m), theta, phi)
        if m > 0:
            cols.append(np.sqrt(2) * (-1) ** m * y.real)
        elif m < 0:
            cols.append(np.sqrt(2) * (-1) ** m * y.imag)
        else:
            cols.append(y.real)
    return np.stack(cols, -1)


def wigner_d(l, rot):
    """D^l(R) = ∫ Y(R u) Y(u)^T dΩ by exact quadrature."""
    pts, w = grid()
    y = spherical_harmonics(pts, [l])
    y_rot = spherical_harmonics(pts @ rot.T, [l])
    return torch.einsum("p,pi,pj->ij", w, y_rot, y)


def test_orthonormal():
    pts, w = grid()
    y = spherical_harmonics(pts, DEGREES)
    gram = torch.einsum("p,pi,pj->ij", w, y, y)
    assert y.shape == (pts.shape[0], 25)
    torch.testing.assert_close(gram, torch.eye(25, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("l", DEGREES)
def test_matches_scipy(l):
    u = random_unit(200, seed=l)
    ours = spherical_harmonics(u, [l]).numpy()
    np.testing.assert_allclose(ours, real_sh_scipy(l, u), atol=1e-12, rtol=0)


def test_degree_order_and_subset():
    u = random_unit(10)
    full = spherical_harmonics(u, DEGREES)
    sub = spherical_harmonics(u, [3, 1])
    torch.testing.assert_close(sub, torch.cat([full[:, 9:16], full[:, 1:4]], -1), rtol=0, atol=0)


@pytest.mark.parametrize("l", DEGREES)
def test_equivariance(l):
    u = random_unit(50, seed=10 + l)
    for seed in range(3):
        rot = torch.from_numpy(Rotation.random(random_state=seed).as_matrix())
        d = wigner_d(l, rot)
        torch.testing.assert_close(d @ d.T, torch.eye(2 * l + 1, dtype=torch.float64), atol=1e-12, rtol=0)
        assert abs(torch.linalg.det(d).item() - 1) < 1e-12
        torch.testing.assert_close(
            spherical_harmonics(u @ rot.T, [l]), spherical_harmonics(u, [l]) @ d.T, atol=1e-12, rtol=0
        )
    # Inversion: Y^l(-u) = (-1)^l Y^l(u).
    torch.testing.assert_close(
        spherical_harmonics(-u, [l]), (-1) ** l * spherical_harmonics(u, [l]), atol=1e-14, rtol=0
    )


def test_zero_vector_finite_with_gradients():
    u = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    y = spherical_harmonics(u, DEGREES)
    assert torch.isfinite(y).all()
    assert (y[:, 1:] == 0).all() and (y[:, 0] > 0).all()
    (g,) = torch.autograd.grad((y * torch.arange(25.0, dtype=y.dtype)).sum(), u)
    assert torch.isfinite(g).all()


def test_script_matches_eager_and_keeps_dtype():
    scripted = torch.jit.script(spherical_harmonics)
    module = torch.jit.script(SphericalHarmonics([1, 2, 3]))
    for dtype in (torch.float32, torch.float64):
        u = random_unit(30, dtype=dtype)
        eager = spherical_harmonics(u, DEGREES)
        assert eager.dtype == dtype
        torch.testing.assert_close(scripted(u, DEGREES), eager, rtol=0, atol=0)
        assert module(u).dtype == dtype
        tol = 1e-13 if dtype == torch.float64 else 2e-6
        torch.testing.assert_close(module(u), spherical_harmonics(u, [1, 2, 3]), rtol=0, atol=tol)
    u = random_unit(30)
    torch.testing.assert_close(
        spherical_harmonics(u.float(), DEGREES).double(), spherical_harmonics(u, DEGREES), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("degrees", [[1, 2, 3, 4], [4, 1], [0, 2], [3]])
def test_module_is_the_explicit_polynomials(degrees):
    """The module's monomial-matrix form equals the explicit harmonics, also off the unit sphere
    (solid harmonics), is exactly zero at the zero vector for l > 0, and has the same gradient."""
    module = SphericalHarmonics(degrees)
    v = torch.randn(200, 3, dtype=torch.float64).requires_grad_(True)
    y = module(v)
    reference = spherical_harmonics(v, degrees)
    torch.testing.assert_close(y, reference, rtol=1e-13, atol=1e-12)
    weights = torch.randn_like(y)
    (g,) = torch.autograd.grad((y * weights).sum(), v)
    (g_ref,) = torch.autograd.grad((reference * weights).sum(), v)
    torch.testing.assert_close(g, g_ref, rtol=1e-13, atol=1e-12)
    at_zero = module(torch.zeros(1, 3, dtype=torch.float64))
    nonzero_degree = torch.cat([torch.full((2 * l + 1,), l > 0) for l in degrees])
    assert (at_zero[0, nonzero_degree] == 0).all()


def test_module_attributes_and_validation():
    m = SphericalHarmonics([1, 2, 3])
    assert m.degrees == [1, 2, 3] and m.dims == [3, 5, 7]
    for bad in ([], [5], [-1], [1, 1]):
        with pytest.raises(ValueError, match="0..4"):
            SphericalHarmonics(bad)


def test_degree_index():
    idx = degree_index([1, 2, 0])
    assert idx.dtype == torch.int64
    assert idx.tolist() == [0] * 3 + [1] * 5 + [2]
    # Per-degree squared norms of Y on unit vectors: Σ_m Y_lm² = (2l+1) / 4π.
    y = spherical_harmonics(random_unit(4), [1, 2, 0])
    sq = torch.zeros(4, 3, dtype=y.dtype).index_add_(1, idx, y * y)
    expected = torch.tensor([3.0, 5.0, 1.0], dtype=y.dtype) / (4 * np.pi)
    torch.testing.assert_close(sq, expected.expand(4, 3), atol=1e-12, rtol=0)
