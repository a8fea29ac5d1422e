"""Interaction (exchange) blocks: the only place where invariant features x and SPHCs chi
exchange information inside an atom.

SelfMix (NeurIPS 2022):
    chi_nl^l3 = sum_{l1<l2} c_{l3 l1 l2} CG(chi^l1 x chi^l2 -> l3)
    [a1, a2, b1, b2] = Linear([x, |chi^l|]),   a3 = Linear(|chi_nl^l|)
    x   <- (x + a1 + a2 * a3) / sqrt(3)
    chi <- chi + b1^l chi^l + b2^l chi_nl^l
Only couplings with l1 + l2 + l3 even are built: the odd ones change sign under reflection,
and a model that keeps them (the authors' default) is not reflection invariant.

Exchange (2024):  [c_x, c_chi] = Linear([x, inv(chi)]);  x <- x + c_x;  chi^l <- chi^l + c_chi^l chi^l.
"""

import math
from typing import List, Tuple

import torch
from torch import Tensor, nn

from .clebsch_gordan import allowed_couplings, clebsch_gordan
from .sphc import SphcInvariant

INTERACTIONS = ("selfmix", "exchange")


def coupling_tensors(degrees: List[int]) -> Tensor:
    """(C, M, M, M) stack: for each allowed (l1, l2, l3) its CG block placed at the SPHC slices."""
    offsets = {}
    start = 0
    for l in degrees:
        offsets[l] = start
        start += 2 * l + 1
    couplings = allowed_couplings(degrees)
    stack = torch.zeros(len(couplings), start, start, start, dtype=torch.float64)
    for c, (l1, l2, l3) in enumerate(couplings):
        a, b, o = offsets[l1], offsets[l2], offsets[l3]
        stack[c, a : a + 2 * l1 + 1, b : b + 2 * l2 + 1, o : o + 2 * l3 + 1] = clebsch_gordan(l1, l2, l3)
    return stack


class SelfMix(nn.Module):
    def __init__(self, features: int, degrees: List[int], invariant: str):
        super().__init__()
        num_degrees = len(degrees)
        self.features = features
        self.num_degrees = num_degrees
        self.invariant = SphcInvariant(degrees, invariant)
        cg = coupling_tensors(degrees)
        if cg.shape[0] == 0:
            raise ValueError(
                f"SelfMix needs at least one parity-allowed coupling l1 < l2 -> l3 among degrees {degrees}; "
                "use at least two degrees (e.g. [1, 2]) or the 'exchange' interaction"
            )
        # float64, derived from the degrees (not saved), cast per call: exact in float64 models.
        self.register_buffer("cg", cg, persistent=False)
        self.coefficients = nn.Parameter(0.1 * torch.randn(cg.shape[0]))
        self.mix = nn.Linear(features + num_degrees, 2 * features + 2 * num_degrees)
        self.gate = nn.Linear(num_degrees, features)
        self.inv_sqrt3 = 1.0 / math.sqrt(3.0)

    def forward(self, x: Tensor, chi: Tensor, expand: Tensor) -> Tuple[Tensor, Tensor]:
        """x (N, F), chi (N, M), expand (|L|, M) -> updated (x, chi)."""
        n, m = chi.shape
        weights = (self.coefficients @ self.cg.to(chi.dtype).reshape(self.cg.shape[0], -1)).reshape(m * m, m)
        chi_nl = (chi[:, :, None] * chi[:, None, :]).reshape(n, m * m) @ weights
        a1, a2, b1, b2 = torch.split(
            self.mix(torch.cat([x, self.invariant(chi)], dim=-1)),
            [self.features, self.features, self.num_degrees, self.num_degrees],
            dim=-1,
        )
        a3 = self.gate(self.invariant(chi_nl))
        x = (x + a1 + a2 * a3) * self.inv_sqrt3
        chi = chi + (b1 @ expand) * chi + (b2 @ expand) * chi_nl
        return x, chi


class Exchange(nn.Module):
    def __init__(self, features: int, degrees: List[int], invariant: str):
        super().__init__()
        self.features = features
        self.num_degrees = len(degrees)
        self.invariant = SphcInvariant(degrees, invariant)
        self.mix = nn.Linear(features + self.num_degrees, features + self.num_degrees)

    def forward(self, x: Tensor, chi: Tensor, expand: Tensor) -> Tuple[Tensor, Tensor]:
        c_x, c_chi = torch.split(
            self.mix(torch.cat([x, self.invariant(chi)], dim=-1)), [self.features, self.num_degrees], dim=-1
        )
        return x + c_x, chi + (c_chi @ expand) * chi
