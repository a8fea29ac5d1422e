"""Real spherical harmonics of degree 0..4 as explicit Cartesian polynomials.

Convention (fixed here and relied upon by `clebsch_gordan`):

* orthonormal on the unit sphere: ∫ Y_lm Y_l'm' dΩ = δ_ll' δ_mm';
* inside a degree the components are ordered m = -l, ..., l;
* m < 0 ↔ sin(|m| φ), m = 0 ↔ P_l(cos θ), m > 0 ↔ cos(m φ), with θ the polar angle
  from +z and φ the azimuth from +x towards +y;
* NO Condon–Shortley phase: every component is positive near the direction where it
  peaks, e.g. Y_1 = sqrt(3 / 4π) (y, z, x), Y_2,2 ∝ x² - y².

In terms of SciPy's complex harmonics (which do carry the Condon–Shortley phase):
Y_l,m = sqrt(2) (-1)^m Re Y_l^m for m > 0, sqrt(2) (-1)^m Im Y_l^|m| for m < 0, Y_l^0 for m = 0.

Each Y_lm is written as the regular solid harmonic r^l Y_lm(u), a homogeneous polynomial
of degree l in (x, y, z) (r² is spelled x² + y² + z², never 1).  On unit vectors this is the
ordinary harmonic; on the zero vector used for padded neighbour pairs it gives exactly 0 for
l ≥ 1 with finite gradients, since there is no normalisation, division or sqrt of the input.
"""
import math
import numbers
from typing import List

import numpy as np
import torch
from torch import Tensor

MAX_DEGREE = 4


def spherical_harmonics(u: Tensor, degrees: List[int]) -> Tensor:
    """Real orthonormal spherical harmonics (convention: see module docstring).

    u: (P, 3) unit vectors (any leading shape works), float32 or float64.
    degrees: distinct degrees from 0..4, in output order, e.g. [1, 2, 3].
    Returns (P, Σ_l (2l+1)) in the dtype of u, degree blocks concatenated in the order of
    `degrees`, each block ordered m = -l..l.
    """
    x = u[..., 0]
    y = u[..., 1]
    z = u[..., 2]
    x2 = x * x
    y2 = y * y
    z2 = z * z
    r2 = x2 + y2 + z2
    # Shared factors of the azimuthal parts Re/Im (x + iy)^m.
    xy = x * y
    d2 = x2 - y2
    s3 = (3.0 * x2 - y2) * y  # Im (x + iy)³
    c3 = (x2 - 3.0 * y2) * x  # Re (x + iy)³
    # Prefactors are multiples of 1/sqrt(pi); they are locals because TorchScript cannot
    # close over global floats; a few scalar square roots per call cost nothing.
    s = 1.0 / math.sqrt(math.pi)
    out: List[Tensor] = []
    for l in degrees:
        if l == 0:
            out.append(torch.full_like(x, 0.5 * s))
        elif l == 1:
            c = math.sqrt(3.0) / 2.0 * s
            out += [c * y, c * z, c * x]
        elif l == 2:
            c = math.sqrt(15.0) / 2.0 * s
            out += [
                c * xy,
                c * y * z,
                math.sqrt(5.0) / 4.0 * s * (3.0 * z2 - r2),
                c * x * z,
                0.5 * c * d2,
            ]
        elif l == 3:
            c3_3 = math.sqrt(70.0) / 8.0 * s
            c3_2 = math.sqrt(105.0) / 2.0 * s
            c3_1 = math.sqrt(42.0) / 8.0 * s
            p1 = 5.0 * z2 - r2
            out += [
                c3_3 * s3,
                c3_2 * xy * z,
                c3_1 * y * p1,
                math.sqrt(7.0) / 4.0 * s * z * (5.0 * z2 - 3.0 * r2),
                c3_1 * x * p1,
                0.5 * c3_2 * z * d2,
                c3_3 * c3,
            ]
        elif l == 4:
            c4_4 = 3.0 * math.sqrt(35.0) / 4.0 * s
            c4_3 = 3.0 * math.sqrt(70.0) / 8.0 * s
            c4_2 = 3.0 * math.sqrt(5.0) / 4.0 * s
            c4_1 = 3.0 * math.sqrt(10.0) / 8.0 * s
            p1 = z * (7.0 * z2 - 3.0 * r2)
            p2 = 7.0 * z2 - r2
            out += [
                c4_4 * xy * d2,
                c4_3 * z * s3,
                c4_2 * xy * p2,
                c4_1 * y * p1,
                3.0 / 16.0 * s * (35.0 * z2 * z2 - 30.0 * z2 * r2 + 3.0 * r2 * r2),
                c4_1 * x * p1,
                0.5 * c4_2 * d2 * p2,
                c4_3 * z * c3,
                0.25 * c4_4 * (x2 * x2 - 6.0 * x2 * y2 + y2 * y2),
            ]
        else:
            raise ValueError("spherical_harmonics: degree above MAX_DEGREE")  # _check_degrees says more, in Python
    return torch.stack(out, dim=-1)


def _check_degrees(degrees: List[int]) -> None:
    if len(degrees) == 0:
        raise ValueError(f"degrees must be a non-empty list of distinct integers in 0..{MAX_DEGREE}")
    for l in degrees:
        if not isinstance(l, numbers.Integral) or isinstance(l, bool) or not 0 <= l <= MAX_DEGREE:
            raise ValueError(f"degree {l!r} not supported: degrees must be integers in 0..{MAX_DEGREE}")
    if len(set(degrees)) != len(degrees):
        raise ValueError(f"degrees {degrees} contain duplicates: each degree in 0..{MAX_DEGREE} may appear once")


def monomial_plan(max_degree: int) -> List[List[List[int]]]:
    """For each degree l = 1..max_degree, its monomials x^a y^b z^c (a + b + c = l), each one
    monomial of degree l - 1 (index among those) times one coordinate: [[parent, axis], ...]."""
    previous = [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    plans = [[[axis, axis] for axis in range(3)]]  # degree 1 is u itself; never used as a plan
    for _ in range(2, max_degree + 1):
        current, plan = [], []
        for p, exponents in enumerate(previous):
            for axis in range(3):
                e = list(exponents)
                e[axis] += 1
                if tuple(e) not in current:
                    current.append(tuple(e))
                    plan.append([p, axis])
        plans.append(plan)
        previous = current
    return plans


class SphericalHarmonics(torch.nn.Module):
    """(P, 3) vectors -> (P, Σ(2l+1)), the same values as `spherical_harmonics`, computed as the
    monomials of (x, y, z) up to the largest degree (3, 6, 10, 15 of them) times one constant
    matrix: a handful of tensor operations instead of one per component, which is what makes
    the pair-level cost (forward and double backward) small. The matrix is fitted once, in
    float64, to the explicit polynomials above; the fit is exact (checked to 1e-12)."""

    def __init__(self, degrees: List[int]):
        super().__init__()
        degrees = list(degrees)
        _check_degrees(degrees)
        degrees = [int(l) for l in degrees]  # plain ints for TorchScript (not numpy ints)
        self.degrees: List[int] = degrees
        self.dims: List[int] = [2 * l + 1 for l in degrees]
        self.max_degree = max(degrees)
        plans = monomial_plan(self.max_degree)
        # Degree l's monomials are built from degree l - 1's: rows plans[l - 1] of these two
        # index vectors, at columns bounds[l - 1]:bounds[l] of the monomial matrix.
        self.bounds: List[int] = [0]
        for plan in plans:
            self.bounds.append(self.bounds[-1] + len(plan))
        flat = [step for plan in plans for step in plan]
        self.register_buffer("parent", torch.tensor([p for p, _ in flat], dtype=torch.long), persistent=False)
        self.register_buffer("axis", torch.tensor([a for _, a in flat], dtype=torch.long), persistent=False)
        # Fitted degree by degree on random (not unit) vectors, since each harmonic is written as
        # a homogeneous polynomial of its degree; zeros elsewhere, so Y(0) = 0 exactly for l > 0.
        # NumPy's least squares: it returns the same bits on every call, so every model built
        # from one config has identical constants (torch's differed between calls in the last bit).
        v = torch.from_numpy(np.random.default_rng(0).standard_normal((256, 3)))
        basis = self.monomials(v).numpy()
        coefficients = np.zeros((basis.shape[1], sum(self.dims)))
        column = 0
        for l, dim in zip(degrees, self.dims):
            rows = slice(0, 1) if l == 0 else slice(1 + self.bounds[l - 1], 1 + self.bounds[l])
            target = spherical_harmonics(v, [l]).numpy()
            fit = np.linalg.lstsq(basis[:, rows], target, rcond=None)[0]
            if not np.allclose(basis[:, rows] @ fit, target, rtol=1e-13, atol=1e-13):
                raise RuntimeError(f"spherical harmonics: the monomial fit of degree {l} is not exact")
            coefficients[rows, column : column + dim] = fit
            column += dim
        # float64 and not saved: rebuilt from the degrees, cast per call like the other constants
        self.register_buffer("coefficients", torch.from_numpy(coefficients), persistent=False)

    def monomials(self, u: Tensor) -> Tensor:
        """(P, 3) -> (P, 1 + 3 + 6 + ...): 1, then every monomial of degree 1..max_degree."""
        current = u
        out: List[Tensor] = [torch.ones_like(u[:, :1]), u]
        for l in range(2, self.max_degree + 1):
            start, end = self.bounds[l - 1], self.bounds[l]
            current = current.index_select(1, self.parent[start:end]) * u.index_select(1, self.axis[start:end])
            out.append(current)
        return torch.cat(out, dim=1)

    def forward(self, u: Tensor) -> Tensor:
        return self.monomials(u) @ self.coefficients.to(u.dtype)

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}"


def degree_index(degrees: List[int]) -> Tensor:
    """(Σ(2l+1),) int64: position in `degrees` of the degree of each SPHC component.

    E.g. [1, 2] -> [0, 0, 0, 1, 1, 1, 1, 1]; use with index_add / scatter for per-degree sums.
    """
    parts = [torch.full((2 * l + 1,), i, dtype=torch.long) for i, l in enumerate(degrees)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
