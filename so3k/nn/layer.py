"""One So3krates layer: feature attention and SPHC attention read the same input (x, chi),
then the interaction block mixes the updated x and chi (paper Fig. 2)."""

from typing import List, Tuple

from torch import Tensor, nn

from .attention import FeatureAttention, SphcAttention
from .filter import SphericalFilter
from .interaction import Exchange, SelfMix
from .sphc import SphcInvariant


class So3kratesLayer(nn.Module):
    def __init__(
        self,
        features: int,
        heads: int,
        degrees: List[int],
        num_radial: int,
        radial_hidden: int,
        sphc_hidden: int,
        invariant: str,
        interaction: str,
        attention_bias: bool,
    ):
        super().__init__()
        num_degrees = len(degrees)
        self.invariant = SphcInvariant(degrees, invariant)
        self.feature_filter = SphericalFilter(num_radial, num_degrees, features, radial_hidden, sphc_hidden)
        self.sphc_filter = SphericalFilter(num_radial, num_degrees, features, radial_hidden, sphc_hidden)
        self.feature_attention = FeatureAttention(features, heads, attention_bias)
        self.sphc_attention = SphcAttention(features, num_degrees, attention_bias)
        if interaction == "selfmix":
            self.interaction = SelfMix(features, degrees, invariant)
        elif interaction == "exchange":
            self.interaction = Exchange(features, degrees, invariant)
        else:
            raise ValueError(f"unknown interaction {interaction!r}; choose 'selfmix' or 'exchange'")

    def forward(
        self,
        x: Tensor,
        chi: Tensor,
        rbf_ij: Tensor,
        sph_ij: Tensor,
        phi_ij: Tensor,
        expand: Tensor,
        idx_i: Tensor,
        idx_j: Tensor,
    ) -> Tuple[Tensor, Tensor]:
        """x (N, F), chi (N, M), rbf_ij (P, K) (already times phi), sph_ij (P, M), phi_ij (P,)."""
        s_ij = self.invariant(chi[idx_j] - chi[idx_i])
        dx = self.feature_attention(x, self.feature_filter(rbf_ij, s_ij), phi_ij, idx_i, idx_j)
        dchi = self.sphc_attention(x, self.sphc_filter(rbf_ij, s_ij), phi_ij, sph_ij, expand, idx_i, idx_j)
        return self.interaction(x + dx, chi + dchi, expand)
