"""Spherical filter w_ij = MLP_r(rbf_ij) + MLP_s(s_ij) (paper Eq. 9).

It makes the attention depend on the distance (rbf_ij) and on how different the SPHCs of the
two atoms are (s_ij, one invariant per degree), both rotation invariant.
"""

from typing import Tuple

from torch import Tensor, nn

from .mlp import MLP


class SphericalFilter(nn.Module):
    def __init__(self, num_radial: int, num_degrees: int, features: int, radial_hidden: int, sphc_hidden: int):
        super().__init__()
        self.radial = MLP([num_radial, radial_hidden, features])
        self.sphc = MLP([num_degrees, sphc_hidden, features])

    def radial_input(self) -> Tuple[Tensor, Tensor]:
        """(weight, bias) of the radial MLP's first layer. The model applies the first layers of
        all filters to the pair basis in one matmul (they read the same rbf_ij) and passes each
        filter its hidden activations."""
        first = self.radial.net[0]
        return first.weight, first.bias

    def forward(self, h_ij: Tensor, s_ij: Tensor) -> Tensor:
        """h_ij (P, hidden): SiLU of the radial first layer on rbf_ij; s_ij (P, |L|) -> w_ij (P, F)."""
        return self.radial.net[2](h_ij) + self.sphc(s_ij)
