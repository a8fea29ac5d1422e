"""Spherical filter w_ij = MLP_r(rbf_ij) + MLP_s(s_ij) (paper Eq. 9).

It makes the attention depend on the distance (rbf_ij) and on how different the SPHCs of the
two atoms are (s_ij, one invariant per degree), both rotation invariant.
"""

from torch import Tensor, nn

from .mlp import MLP


class SphericalFilter(nn.Module):
    def __init__(self, num_radial: int, num_degrees: int, features: int, radial_hidden: int, sphc_hidden: int):
        super().__init__()
        self.radial = MLP([num_radial, radial_hidden, features])
        self.sphc = MLP([num_degrees, sphc_hidden, features])

    def forward(self, rbf_ij: Tensor, s_ij: Tensor) -> Tensor:
        """rbf_ij (P, K), s_ij (P, |L|) -> w_ij (P, F)."""
        return self.radial(rbf_ij) + self.sphc(s_ij)
