"""Neighbourhoods in SPHC space for the non-local SPHC attention (paper Eq. 14).

Over all pairs (i, j != i) of a structure, D_ij = ||chi_j - chi_i|| over all degrees together,
p_ij = softmax over j of D_ij, and psi_ij = f(p_ij / chi_cut) with f the order-6 polynomial
envelope (1 at 0, 0 from 1 on, smooth): atoms whose SPHCs are close to chi_i, however far away
in space, get psi near 1. chi_cut is a fixed threshold ("fixed") or 1 / N for a structure of N
atoms ("dynamic"). Only the SPHC attention uses psi, as alpha_ij (phi(d_ij) + psi_ij).
"""

from typing import Tuple

import torch
from torch import Tensor, nn

from .cutoff import polynomial_envelope
from .ops import safe_sqrt, scatter_sum

NONLOCAL_MODES = ("off", "fixed", "dynamic")


def structure_pairs(batch: Tensor) -> Tuple[Tensor, Tensor]:
    """Every ordered pair (i, j), i != j, of atoms in the same structure: O(N^2)."""
    same = batch[:, None] == batch[None, :]
    same.fill_diagonal_(False)
    pairs = torch.nonzero(same)
    return pairs[:, 0], pairs[:, 1]


class SphcNeighbourhood(nn.Module):
    def __init__(self, mode: str, threshold: float):
        super().__init__()
        if mode not in ("fixed", "dynamic"):
            raise ValueError(f"non-local mode must be 'fixed' or 'dynamic', got {mode!r}")
        self.dynamic = mode == "dynamic"
        self.threshold = float(threshold)

    def forward(self, chi: Tensor, g_i: Tensor, g_j: Tensor, atoms_in_structure: Tensor) -> Tensor:
        """chi (N, M), all pairs g_i, g_j (Q,), atoms_in_structure (N,) -> psi (Q,) in [0, 1]."""
        num_atoms = chi.shape[0]
        diff = chi.index_select(0, g_j) - chi.index_select(0, g_i)
        d = safe_sqrt((diff * diff).sum(-1))
        # softmax over j for each centre i (the max only keeps exp finite)
        d_max = torch.full((num_atoms,), -1e30, dtype=d.dtype, device=d.device)
        d_max = d_max.scatter_reduce(0, g_i, d.detach(), reduce="amax", include_self=True)
        e = torch.exp(d - d_max.index_select(0, g_i))
        p = e / scatter_sum(e, g_i, num_atoms).index_select(0, g_i)
        if self.dynamic:
            x = p * atoms_in_structure[g_i].to(p.dtype)
        else:
            x = p / self.threshold
        inside = x < 1.0
        x = torch.where(inside, x, torch.zeros_like(x))  # keeps the unused branch finite
        return torch.where(inside, polynomial_envelope(x, 6.0), torch.zeros_like(x))
