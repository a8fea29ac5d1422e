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
            raise ValueError("spherical_harmonics: degrees must be in 0..4")
    return torch.stack(out, dim=-1)


def _check_degrees(degrees: List[int]) -> None:
    if len(degrees) == 0:
        raise ValueError("degrees must be a non-empty list of distinct integers in 0..4")
    for l in degrees:
        if not isinstance(l, numbers.Integral) or isinstance(l, bool) or not 0 <= l <= MAX_DEGREE:
            raise ValueError(f"degree {l!r} not supported: degrees must be integers in 0..{MAX_DEGREE}")
    if len(set(degrees)) != len(degrees):
        raise ValueError(f"degrees {degrees} contain duplicates: each degree in 0..4 may appear once")


class SphericalHarmonics(torch.nn.Module):
    """Module wrapper of `spherical_harmonics`: (P, 3) unit vectors -> (P, Σ(2l+1))."""

    def __init__(self, degrees: List[int]):
        super().__init__()
        degrees = list(degrees)
        _check_degrees(degrees)
        degrees = [int(l) for l in degrees]  # plain ints for TorchScript (not numpy ints)
        self.degrees: List[int] = degrees
        self.dims: List[int] = [2 * l + 1 for l in degrees]

    def forward(self, u: Tensor) -> Tensor:
        return spherical_harmonics(u, self.degrees)

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}"


def degree_index(degrees: List[int]) -> Tensor:
    """(Σ(2l+1),) int64: position in `degrees` of the degree of each SPHC component.

    E.g. [1, 2] -> [0, 0, 0, 1, 1, 1, 1, 1]; use with index_add / scatter for per-degree sums.
    """
    parts = [torch.full((2 * l + 1,), i, dtype=torch.long) for i, l in enumerate(degrees)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
