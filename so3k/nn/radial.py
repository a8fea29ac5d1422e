"""Radial basis functions rbf_ij = (rbf_k(d_ij))_k, K of them, on [0, r_c].

All bases are multiplied by the cutoff phi(d) in the model (as in the NeurIPS code), so they
need not vanish at r_c themselves. Their constants are computed in the dtype of the input on
every call (a few dozen numbers), so a float64 model uses float64 constants, never float32
ones rounded and cast.
"""

import math

import torch
from torch import Tensor, nn


class PhysNetBasis(nn.Module):
    """rbf_k(d) = exp(-beta (exp(-d) - mu_k)^2), mu_k = linspace(exp(-r_c), 1, K),
    beta = ((2/K)(1 - exp(-r_c)))^-2  (Unke & Meuwly, PhysNet)."""

    def __init__(self, num_radial: int, cutoff: float):
        super().__init__()
        self.num_radial = int(num_radial)
        self.start = math.exp(-cutoff)
        self.beta = float(((2.0 / num_radial) * (1.0 - self.start)) ** -2)

    def forward(self, d_ij: Tensor) -> Tensor:
        mu = torch.linspace(self.start, 1.0, self.num_radial, dtype=d_ij.dtype, device=d_ij.device)
        return torch.exp(-self.beta * (torch.exp(-d_ij)[:, None] - mu) ** 2)


class GaussianBasis(nn.Module):
    """rbf_k(d) = exp(-(d - mu_k)^2 / (2 sigma^2)), mu_k = linspace(0, r_c, K), sigma = r_c / K."""

    def __init__(self, num_radial: int, cutoff: float):
        super().__init__()
        self.num_radial = int(num_radial)
        self.cutoff = float(cutoff)
        self.gamma = float(0.5 / (cutoff / num_radial) ** 2)

    def forward(self, d_ij: Tensor) -> Tensor:
        mu = torch.linspace(0.0, self.cutoff, self.num_radial, dtype=d_ij.dtype, device=d_ij.device)
        return torch.exp(-self.gamma * (d_ij[:, None] - mu) ** 2)


class BernsteinBasis(nn.Module):
    """Bernstein polynomials of degree K-1 in x = exp(-gamma d) (Unke et al., SpookyNet):
    rbf_k = binom(K-1, k) x^k (1-x)^(K-1-k), evaluated in log space for stability."""

    def __init__(self, num_radial: int, cutoff: float, gamma: float = 0.5):
        super().__init__()
        self.num_radial = int(num_radial)
        self.n = float(num_radial - 1)
        self.gamma = float(gamma)

    def forward(self, d_ij: Tensor) -> Tensor:
        k = torch.arange(self.num_radial, dtype=d_ij.dtype, device=d_ij.device)
        log_binom = math.lgamma(self.n + 1.0) - torch.lgamma(k + 1.0) - torch.lgamma(self.n - k + 1.0)
        # x in (0, 1] for d >= 0; clamp keeps log(1 - x) finite at d = 0 (padding pairs).
        x = torch.exp(-self.gamma * d_ij)[:, None]
        log_x = -self.gamma * d_ij[:, None]
        log_1mx = torch.log(torch.clamp(1.0 - x, min=1e-30))
        return torch.exp(log_binom + k * log_x + (self.n - k) * log_1mx)


RADIAL_BASES = ("physnet", "gaussian", "bernstein")


def make_radial_basis(name: str, num_radial: int, cutoff: float) -> nn.Module:
    if name == "physnet":
        return PhysNetBasis(num_radial, cutoff)
    if name == "gaussian":
        return GaussianBasis(num_radial, cutoff)
    if name == "bernstein":
        return BernsteinBasis(num_radial, cutoff)
    raise ValueError(f"unknown radial basis {name!r}; choose one of {', '.join(RADIAL_BASES)}")
