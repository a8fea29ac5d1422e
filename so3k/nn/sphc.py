"""Spherical harmonic coordinates (SPHCs): initialisation and per-degree invariants.

chi has shape (N, M) with M = sum(2l+1) over the degrees L, concatenated degree by degree.
Per-degree reductions use a fixed (M, |L|) 0/1 matrix so that they are one matmul.
"""

from typing import List

import torch
from torch import Tensor, nn

from .ops import safe_divide, safe_sqrt, scatter_sum

SPHC_INITS = ("average", "zeros")
SPHC_INVARIANTS = ("norm", "squared")


def degree_matrix(degrees: List[int]) -> Tensor:
    """(M, |L|) matrix with a 1 where SPHC component m belongs to degree position l."""
    blocks = [torch.ones(2 * l + 1, 1) for l in degrees]
    return torch.block_diag(*blocks)


class SphcInit(nn.Module):
    """chi_i^l = sum_j phi_ij Y^l(u_ij) / sum_j phi_ij ("average", NeurIPS; 0 if no neighbour),
    or chi_i = 0 ("zeros", 2024 model)."""

    def __init__(self, mode: str):
        super().__init__()
        if mode not in SPHC_INITS:
            raise ValueError(f"unknown SPHC initialisation {mode!r}; choose one of {', '.join(SPHC_INITS)}")
        self.average = mode == "average"

    def forward(self, sph_ij: Tensor, phi_ij: Tensor, idx_i: Tensor, num_atoms: int) -> Tensor:
        if not self.average:
            return torch.zeros((num_atoms, sph_ij.shape[1]), dtype=sph_ij.dtype, device=sph_ij.device)
        total = scatter_sum(phi_ij[:, None] * sph_ij, idx_i, num_atoms)
        weight = scatter_sum(phi_ij, idx_i, num_atoms)
        return safe_divide(total, weight[:, None])


class SphcInvariant(nn.Module):
    """Per-degree rotation invariants of SPHC vectors v (..., M) -> (..., |L|).

    "norm": |v^l| (NeurIPS). "squared": |v^l|^2 / sqrt(2l+1) (2024; no square root, hence no
    singular gradient at v = 0 by construction). Both have finite gradients at zero.
    """

    def __init__(self, degrees: List[int], mode: str):
        super().__init__()
        if mode not in SPHC_INVARIANTS:
            raise ValueError(f"unknown SPHC invariant {mode!r}; choose one of {', '.join(SPHC_INVARIANTS)}")
        self.squared = mode == "squared"
        # Derived from the config, so not saved; float64 and cast per call so that float64 models
        # get exact constants whatever the default dtype was at construction.
        self.register_buffer("reduce", degree_matrix(degrees), persistent=False)
        self.register_buffer(
            "inv_sqrt_dim", torch.tensor([(2 * l + 1) ** -0.5 for l in degrees], dtype=torch.float64), persistent=False
        )

    def forward(self, v: Tensor) -> Tensor:
        sq = (v * v) @ self.reduce.to(v.dtype)
        if self.squared:
            return sq * self.inv_sqrt_dim.to(v.dtype)
        return safe_sqrt(sq)
