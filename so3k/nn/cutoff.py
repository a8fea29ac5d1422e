"""Cutoff functions phi(d): 1 at d = 0, 0 from r_c on, smooth in between.

Pairs of length exactly zero are padding (real pair lists never hold them), and both
functions give them weight 0 so that padded, fixed-shape pair lists change nothing.
"""

import math

import torch
from torch import Tensor, nn


class CosineCutoff(nn.Module):
    """phi(d) = (cos(pi d / r_c) + 1) / 2 for 0 < d < r_c, else 0 (paper default)."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = float(cutoff)

    def forward(self, d_ij: Tensor) -> Tensor:
        phi = 0.5 * (torch.cos(d_ij * (math.pi / self.cutoff)) + 1.0)
        inside = (d_ij < self.cutoff) & (d_ij > 0)
        return torch.where(inside, phi, torch.zeros_like(phi))


class PolynomialCutoff(nn.Module):
    """Smooth polynomial envelope of order p (Klicpera et al., DimeNet), continuous up to the
    (p-1)-th derivative at r_c: 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), x = d/r_c.
    """

    def __init__(self, cutoff: float, p: int = 6):
        super().__init__()
        if p < 2:
            raise ValueError(f"polynomial cutoff order must be >= 2, got {p}")
        self.cutoff = float(cutoff)
        self.p = int(p)

    def forward(self, d_ij: Tensor) -> Tensor:
        phi = polynomial_envelope(d_ij / self.cutoff, float(self.p))
        inside = (d_ij < self.cutoff) & (d_ij > 0)
        return torch.where(inside, phi, torch.zeros_like(phi))


def polynomial_envelope(x: Tensor, p: float) -> Tensor:
    """The order-p polynomial of PolynomialCutoff at x = d / r_c, without the masks (valid for 0 <= x < 1)."""
    xp = torch.pow(x, p)
    return 1.0 - 0.5 * (p + 1.0) * (p + 2.0) * xp + p * (p + 2.0) * xp * x - 0.5 * p * (p + 1.0) * xp * x * x


CUTOFF_FUNCTIONS = ("cosine", "polynomial")


def make_cutoff(name: str, cutoff: float) -> nn.Module:
    if name == "cosine":
        return CosineCutoff(cutoff)
    if name == "polynomial":
        return PolynomialCutoff(cutoff)
    raise ValueError(f"unknown cutoff function {name!r}; choose one of {', '.join(CUTOFF_FUNCTIONS)}")
