"""One So3krates layer: feature attention and SPHC attention read the same input (x, chi),
then the interaction block mixes the updated x and chi (paper Fig. 2)."""

from typing import List, Tuple

from torch import Tensor, nn

from .attention import FeatureAttention, SphcAttention
from .filter import SphericalFilter
from .interaction import Exchange, SelfMix
from .nonlocal_attention import SphcNeighbourhood
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
        nonlocal_attention: str = "off",
        nonlocal_threshold: float = 0.05,
    ):
        super().__init__()
        self.nonlocal_attention = nonlocal_attention != "off"
        self.neighbourhood = SphcNeighbourhood(nonlocal_attention if self.nonlocal_attention else "fixed", nonlocal_threshold)
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
        rbf_g: Tensor,
        sph_g: Tensor,
        phi_g: Tensor,
        g_i: Tensor,
        g_j: Tensor,
        atoms_in_structure: Tensor,
    ) -> Tuple[Tensor, Tensor]:
        """x (N, F), chi (N, M), rbf_ij (P, K) (already times phi), sph_ij (P, M), phi_ij (P,).

        The SPHC attention runs over the pairs g (rbf_g, sph_g, phi_g, g_i, g_j): the local pairs
        again for a local model, all pairs of each structure for a non-local one, which then
        weights them by phi(d) + psi (SphcNeighbourhood)."""
        s_ij = self.invariant(chi[idx_j] - chi[idx_i])
        dx = self.feature_attention(x, self.feature_filter(rbf_ij, s_ij), phi_ij, idx_i, idx_j)
        if self.nonlocal_attention:
            s_g = self.invariant(chi[g_j] - chi[g_i])
            weight_g = phi_g + self.neighbourhood(chi, g_i, g_j, atoms_in_structure)
        else:
            s_g = s_ij
            weight_g = phi_g
        dchi = self.sphc_attention(x, self.sphc_filter(rbf_g, s_g), weight_g, sph_g, expand, g_i, g_j)
        return self.interaction(x + dx, chi + dchi, expand)
