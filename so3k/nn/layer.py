"""One So3krates layer: feature attention and SPHC attention read the same input (x, chi),
then the interaction block mixes the updated x and chi (paper Fig. 2)."""

from typing import List, Tuple

import torch
from torch import Tensor, nn

from .attention import FeatureAttention, SphcAttention, stack_projections
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
        self.features = features
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

    def radial_inputs(self) -> List[Tuple[Tensor, Tensor]]:
        """First radial layers of the feature and the SPHC filter (see SphericalFilter.radial_input)."""
        return [self.feature_filter.radial_input(), self.sphc_filter.radial_input()]

    def forward(
        self,
        x: Tensor,
        chi: Tensor,
        h_ij: Tensor,
        h_g: Tensor,
        sph_ij: Tensor,
        phi_ij: Tensor,
        expand: Tensor,
        idx_i: Tensor,
        idx_j: Tensor,
        sph_g: Tensor,
        phi_g: Tensor,
        g_i: Tensor,
        g_j: Tensor,
        atoms_in_structure: Tensor,
    ) -> Tuple[Tensor, Tensor]:
        """x (N, F), chi (N, M); h_ij (P, hidden) the feature filter's radial hidden activations
        on rbf_ij, h_g (Q, hidden) the SPHC filter's on rbf_g; sph_ij (P, M), phi_ij (P,).

        The SPHC attention runs over the pairs g (h_g, sph_g, phi_g, g_i, g_j): the local pairs
        again for a local model, all pairs of each structure for a non-local one, which then
        weights them by phi(d) + psi (SphcNeighbourhood)."""
        # the five projections of both attentions in one matmul
        weight, bias = stack_projections(self.feature_attention.projections() + self.sphc_attention.projections())
        q, k, v, q_s, k_s = torch.addmm(bias, x, weight).split(self.features, dim=1)
        s_ij = self.invariant(chi.index_select(0, idx_j) - chi.index_select(0, idx_i))
        dx = self.feature_attention(q, k, v, self.feature_filter(h_ij, s_ij), phi_ij, idx_i, idx_j)
        if self.nonlocal_attention:
            s_g = self.invariant(chi.index_select(0, g_j) - chi.index_select(0, g_i))
            weight_g = phi_g + self.neighbourhood(chi, g_i, g_j, atoms_in_structure)
        else:
            s_g = s_ij
            weight_g = phi_g
        dchi = self.sphc_attention(q_s, k_s, self.sphc_filter(h_g, s_g), weight_g, sph_g, expand, g_i, g_j)
        return self.interaction(x + dx, chi + dchi, expand)
