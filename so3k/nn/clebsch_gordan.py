"""Real Clebsch–Gordan coefficients in the basis of `so3k.nn.spherical_harmonics`.

The coefficients are Gaunt integrals G[m1, m2, m3] = ∫ Y_l1m1 Y_l2m2 Y_l3m3 dΩ of our own
real harmonics, so they live in exactly the SH basis (ordering, signs, no Condon–Shortley
phase) used everywhere else.  Equivariance follows from Y(R u) = D(R) Y(u) with D orthogonal
and the rotation invariance of dΩ:
    Σ G (D1 a)(D2 b) = D3 (Σ G a b).
Gaunt integrals vanish when l1 + l2 + l3 is odd, i.e. they only give the couplings that
also commute with the inversion u -> -u; the parity-odd (pseudo-tensor) couplings are refused.

These are built once at model construction, so nothing here needs to be scriptable.
"""
import functools
from typing import List, Tuple

import numpy as np
import torch
from torch import Tensor

from so3k.nn.spherical_harmonics import MAX_DEGREE, spherical_harmonics


def sphere_quadrature(max_poly_degree: int) -> Tuple[Tensor, Tensor]:
    """Points (N, 3) and weights (N,) (float64) integrating exactly over S² every polynomial
    in (x, y, z) of total degree <= max_poly_degree.  Weights sum to 4π.

    Gauss–Legendre in t = cos θ (n nodes are exact to degree 2n - 1 in t, and after the φ
    integral a degree-d polynomial leaves a degree-d polynomial in t) times the uniform rule
    in φ (k points are exact for trigonometric polynomials of order < k).
    """
    n_t = max_poly_degree // 2 + 1
    n_phi = max_poly_degree + 1
    t, w_t = np.polynomial.legendre.leggauss(n_t)
    phi = 2.0 * np.pi * np.arange(n_phi) / n_phi
    sin_t = np.sqrt(1.0 - t**2)
    pts = np.stack(
        [
            np.outer(sin_t, np.cos(phi)),
            np.outer(sin_t, np.sin(phi)),
            np.outer(t, np.ones_like(phi)),
        ],
        axis=-1,
    ).reshape(-1, 3)
    w = np.outer(w_t, np.full(n_phi, 2.0 * np.pi / n_phi)).reshape(-1)
    return torch.from_numpy(pts), torch.from_numpy(w)


def _check_coupling(l1: int, l2: int, l3: int) -> None:
    for l in (l1, l2, l3):
        if not isinstance(l, (int, np.integer)) or not 0 <= l <= MAX_DEGREE:
            raise ValueError(f"degrees must be integers in 0..{MAX_DEGREE}, got ({l1}, {l2}, {l3})")
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        raise ValueError(
            f"coupling ({l1}, {l2}, {l3}) violates the triangle rule |l1 - l2| <= l3 <= l1 + l2"
        )
    if (l1 + l2 + l3) % 2:
        raise ValueError(
            f"coupling ({l1}, {l2}, {l3}) is parity-forbidden: only l1 + l2 + l3 even couplings "
            "preserve reflection (inversion) symmetry, the odd ones produce pseudo-tensors"
        )


@functools.lru_cache(maxsize=None)
def _clebsch_gordan_cached(l1: int, l2: int, l3: int) -> Tensor:
    # Integrand has degree l1 + l2 + l3 <= 12, so this rule is exact (up to rounding).
    pts, w = sphere_quadrature(l1 + l2 + l3)
    y1 = spherical_harmonics(pts, [l1])
    y2 = spherical_harmonics(pts, [l2])
    y3 = spherical_harmonics(pts, [l3])
    c = torch.einsum("p,pi,pj,pk->ijk", w, y1, y2, y3)
    # Same norm as the standard complex CG block: ||C||_F² = 2 l3 + 1.
    c = c * torch.sqrt((2 * l3 + 1) / (c * c).sum())
    # Clean quadrature round-off so exactly-zero coefficients stay exactly zero.
    c = torch.where(c.abs() < 1e-13, torch.zeros_like(c), c)
    # Deterministic sign: the first (row-major) entry of largest magnitude is positive.
    flat = c.reshape(-1)
    first = int(torch.nonzero(flat.abs() > flat.abs().max() * (1.0 - 1e-9))[0])
    if flat[first] < 0:
        c = -c
    return c


def clebsch_gordan(l1: int, l2: int, l3: int) -> Tensor:
    """Real CG block (2l1+1, 2l2+1, 2l3+1), float64, in the `spherical_harmonics` basis.

    For all rotations R: Σ_{m1 m2} C[m1, m2, m3] (D1 a)_m1 (D2 b)_m2 = (D3 Σ C a b)_m3.
    Frobenius norm² = 2 l3 + 1; sign fixed so that the first largest-magnitude entry is > 0.
    Raises ValueError for degrees outside 0..4, triangle violations and odd l1 + l2 + l3.
    """
    _check_coupling(l1, l2, l3)
    return _clebsch_gordan_cached(int(l1), int(l2), int(l3)).clone()


def allowed_couplings(
    degrees: List[int], include_equal: bool = False
) -> List[Tuple[int, int, int]]:
    """All (l1, l2, l3) from `degrees` with l1 < l2 (l1 <= l2 if include_equal), the triangle
    rule and l1 + l2 + l3 even; sorted by l3, then l1, then l2."""
    ls = sorted(set(degrees))
    out = [
        (l1, l2, l3)
        for l1 in ls
        for l2 in ls
        for l3 in ls
        if (l1 < l2 or (include_equal and l1 == l2))
        and abs(l1 - l2) <= l3 <= l1 + l2
        and (l1 + l2 + l3) % 2 == 0
    ]
    return sorted(out, key=lambda c: (c[2], c[0], c[1]))
