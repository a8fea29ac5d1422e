"""One So3krates layer: feature attention and SPHC attention read the same input (x, chi),
then the interaction block mixes the updated x and chi (paper Fig. 2)."""

from typing import List, NamedTuple, Tuple

import torch
from torch import Tensor, nn
from torch.nn.functional import silu

from .attention import FeatureAttention, SphcAttention, stack_projections
from .filter import SphericalFilter
from .interaction import Exchange, SelfMix
from .nonlocal_attention import SphcNeighbourhood
from .sphc import SphcInvariant


class PairChunks(NamedTuple):
    """Pair tensors cut into consecutive chunks of at most `chunk` pairs (torch.split views).

    Working chunk by chunk keeps every pair-sized temporary below glibc's 32 MB mmap limit
    (16,384 pairs x 256 hidden x 4 bytes = 16 MB), so the allocator reuses freed memory instead
    of mapping and zero-filling fresh pages on every call (which made large systems 2x slower
    and grew with size), and keeps the temporaries in cache. The messages are summed over the
    chunks, so the result is that of one pass up to float rounding."""

    chunk: int
    rbf: List[Tensor]  # (C, K) radial basis times the cutoff
    sph: List[Tensor]  # (C, M) spherical harmonics of the pair directions
    phi: List[Tensor]  # (C,) cutoff
    i: List[Tensor]  # (C,) centres
    j: List[Tensor]  # (C,) neighbours


def chunk_pairs(chunk: int, rbf: Tensor, sph: Tensor, phi: Tensor, i: Tensor, j: Tensor) -> PairChunks:
    # split, not slicing: the backward of a split is one concatenation, that of each slice a full-size copy
    return PairChunks(chunk, rbf.split(chunk), sph.split(chunk), phi.split(chunk), i.split(chunk), j.split(chunk))


class RadialFirstLayers(NamedTuple):
    """The first radial layers (W_k, b_k) of one or more filters side by side, stacked once per
    layer call so that each pair chunk applies them all in one matmul."""

    weight_t: Tensor  # (K, sum of widths)
    bias: Tensor  # (sum of widths,)
    widths: List[int]


def stack_radial(inputs: List[Tuple[Tensor, Tensor]]) -> RadialFirstLayers:
    weight = torch.cat([w for w, _ in inputs], dim=0)
    return RadialFirstLayers(weight.t(), torch.cat([b for _, b in inputs]), [w.shape[0] for w, _ in inputs])


def radial_hidden(rbf: Tensor, first: RadialFirstLayers) -> List[Tensor]:
    """SiLU(rbf W_k^T + b_k) per filter k: one (C, K) x (K, sum of widths) matmul, split."""
    return silu(torch.addmm(first.bias, rbf, first.weight_t)).split(first.widths, dim=1)


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
        # psi of the non-local SPHC attention; a local layer has none (TorchScript drops the branch)
        self.neighbourhood = SphcNeighbourhood(nonlocal_attention, nonlocal_threshold) if self.nonlocal_attention else None
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

    def radial_inputs(self) -> Tuple[Tuple[Tensor, Tensor], Tuple[Tensor, Tensor]]:
        """First radial layers of the feature and the SPHC filter (see SphericalFilter.radial_input)."""
        return self.feature_filter.radial_input(), self.sphc_filter.radial_input()

    def forward(
        self,
        x: Tensor,
        chi: Tensor,
        pairs: PairChunks,
        sphc_pairs: PairChunks,
        g_i: Tensor,
        g_j: Tensor,
        atoms_in_structure: Tensor,
        expand: Tensor,
        n_centres: int = -1,
    ) -> Tuple[Tensor, Tensor]:
        """x (N, F), chi (N, M); pairs: the local pairs in chunks (rbf already times phi).
        n_centres >= 0 (local models): every centre is among the first n_centres atoms, and only
        their updated rows are returned (the per-layer exchange: the other rows are ghosts, which
        get their owners' rows instead).

        The SPHC attention runs over sphc_pairs: the local pairs again for a local model, all
        pairs of each structure (g_i, g_j, unchunked) for a non-local one, which then weights
        them by phi(d) + psi (SphcNeighbourhood). Pair work is done chunk by chunk, each chunk's
        messages added in place into one (N, .) sum: a new sum per chunk would cost O(N) per
        chunk, O(N^2) per call (see PairChunks)."""
        # the five projections of both attentions in one matmul
        weight, bias = stack_projections(self.feature_attention.projections() + self.sphc_attention.projections())
        q, k, v, q_s, k_s = torch.addmm(bias, x, weight).split(self.features, dim=1)
        feature_input, sphc_input = self.radial_inputs()
        # both filters' first layers in one matmul, unless the SPHC filter reads other pairs
        local_first = stack_radial([feature_input] if self.nonlocal_attention else [feature_input, sphc_input])
        rows = x.shape[0] if n_centres < 0 else n_centres
        dx = x.new_zeros((rows, x.shape[1]))
        dchi = chi.new_zeros((rows, chi.shape[1]))
        for c in range(len(pairs.i)):
            i, j = pairs.i[c], pairs.j[c]
            s_ij = self.invariant(chi.index_select(0, j) - chi.index_select(0, i))
            h = radial_hidden(pairs.rbf[c], local_first)
            if not self.nonlocal_attention:
                w_s = self.sphc_filter(h[1], s_ij)
                dchi.index_add_(0, i, self.sphc_attention(q_s, k_s, w_s, pairs.phi[c], pairs.sph[c], expand, i, j))
            dx.index_add_(0, i, self.feature_attention(q, k, v, self.feature_filter(h[0], s_ij), pairs.phi[c], i, j))
        if self.neighbourhood is not None:
            psi = self.neighbourhood(chi, g_i, g_j, atoms_in_structure).split(sphc_pairs.chunk)
            sphc_first = stack_radial([sphc_input])
            for c in range(len(sphc_pairs.i)):
                i, j = sphc_pairs.i[c], sphc_pairs.j[c]
                s_g = self.invariant(chi.index_select(0, j) - chi.index_select(0, i))
                w_g = self.sphc_filter(radial_hidden(sphc_pairs.rbf[c], sphc_first)[0], s_g)
                dchi.index_add_(0, i, self.sphc_attention(q_s, k_s, w_g, sphc_pairs.phi[c] + psi[c], sphc_pairs.sph[c], expand, i, j))
        return self.interaction(x[:rows] + dx, chi[:rows] + dchi, expand)
