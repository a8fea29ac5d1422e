"""The two attention blocks of a So3krates layer (paper Eqs. 10-13). Neither uses a softmax:
the cutoff phi_ij multiplies every coefficient, so the sums stay smooth as atoms enter or leave
the cutoff sphere."""

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn


class BlockLinear(nn.Module):
    """A linear map that acts separately on `blocks` equal slices of the feature vector
    (block-diagonal weight): (N, blocks * width) -> (N, blocks * width)."""

    def __init__(self, blocks: int, width: int, bias: bool):
        super().__init__()
        self.blocks = blocks
        self.width = width
        bound = 1.0 / math.sqrt(width)  # nn.Linear's default initialisation, per block
        self.weight = nn.Parameter(torch.empty(blocks, width, width).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(blocks, width).uniform_(-bound, bound)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        # (blocks, n, width) @ (blocks, width, width); an explicit bmm is much faster than
        # einsum once scripted (measured: 10x on the backward pass).
        y = torch.bmm(x.reshape(n, self.blocks, self.width).transpose(0, 1), self.weight).transpose(0, 1)
        bias = self.bias
        if bias is not None:
            y = y + bias
        return y.reshape(n, self.blocks * self.width)

    def dense(self) -> Tuple[Tensor, Optional[Tensor]]:
        """The same map as one (blocks*width, blocks*width) matrix W with y = x @ W + bias, so that
        a layer can apply several projections in one matmul (zeros off the diagonal blocks)."""
        weight = block_diagonal(self.weight)
        bias = self.bias
        size = self.blocks * self.width
        return weight, None if bias is None else bias.reshape(size)


def block_diagonal(blocks: Tensor) -> Tensor:
    """(B, n, m) -> the (B n, B m) matrix with these blocks on its diagonal (one operation)."""
    if torch.jit.is_scripting():
        return torch.block_diag(blocks.unbind(0))
    return torch.block_diag(*blocks.unbind(0))


def stack_projections(maps: List[Tuple[Tensor, Optional[Tensor]]]) -> Tuple[Tensor, Tensor]:
    """Dense maps (W_k, b_k) side by side: x @ W + b gives [x W_1 + b_1, x W_2 + b_2, ...]."""
    weights = [w for w, _ in maps]
    biases: List[Tensor] = []
    for w, b in maps:
        biases.append(torch.zeros(w.shape[1], dtype=w.dtype, device=w.device) if b is None else b)
    return torch.cat(weights, dim=1), torch.cat(biases)


class FeatureAttention(nn.Module):
    """alpha_ij^h = phi_ij <Q_h x_i^h, w_ij^h * K_h x_j^h> / sqrt(d_h);  dx_i = concat_h sum_j alpha_ij^h V_h x_j^h."""

    def __init__(self, features: int, heads: int, bias: bool):
        super().__init__()
        if features % heads:
            raise ValueError(f"features ({features}) must be divisible by the number of heads ({heads})")
        self.heads = heads
        self.head_dim = features // heads
        self.q = BlockLinear(heads, self.head_dim, bias)
        self.k = BlockLinear(heads, self.head_dim, bias)
        self.v = BlockLinear(heads, self.head_dim, bias)
        self.inv_sqrt_dim = 1.0 / math.sqrt(self.head_dim)

    def projections(self) -> List[Tuple[Tensor, Optional[Tensor]]]:
        """Dense (W, b) of Q, K and V, in the order forward takes their products."""
        return [self.q.dense(), self.k.dense(), self.v.dense()]

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, w_ij: Tensor, phi_ij: Tensor, idx_i: Tensor, idx_j: Tensor
    ) -> Tensor:
        """q, k, v (N, F): Q x, K x, V x; w_ij (P, F), phi_ij (P,) -> messages (P, F); the
        update dx_i is their sum over the pairs of centre i."""
        num_pairs = w_ij.shape[0]
        q_i = q.index_select(0, idx_i)  # index_select, not q[idx_i]: its backward is a fast index_add
        k_j = k.index_select(0, idx_j)
        v_j = v.index_select(0, idx_j).reshape(num_pairs, self.heads, self.head_dim)
        alpha = (q_i * w_ij * k_j).reshape(num_pairs, self.heads, self.head_dim).sum(-1)
        alpha = alpha * (phi_ij * self.inv_sqrt_dim)[:, None]
        return (alpha[:, :, None] * v_j).reshape(num_pairs, self.heads * self.head_dim)


class SphcAttention(nn.Module):
    """One head per SPHC degree l, the spherical harmonics as values:
    alpha_ij^l = phi_ij <Q_l x_i^(l), w'_ij^(l) * K_l x_j^(l)> / sqrt(F/|L|);  dchi_i^l = sum_j alpha_ij^l Y^l(u_ij)."""

    def __init__(self, features: int, num_degrees: int, bias: bool):
        super().__init__()
        if features % num_degrees:
            raise ValueError(f"features ({features}) must be divisible by the number of SPHC degrees ({num_degrees})")
        self.num_degrees = num_degrees
        self.head_dim = features // num_degrees
        self.q = BlockLinear(num_degrees, self.head_dim, bias)
        self.k = BlockLinear(num_degrees, self.head_dim, bias)
        self.inv_sqrt_dim = 1.0 / math.sqrt(self.head_dim)

    def projections(self) -> List[Tuple[Tensor, Optional[Tensor]]]:
        """Dense (W, b) of Q and K."""
        return [self.q.dense(), self.k.dense()]

    def forward(
        self, q: Tensor, k: Tensor, w_ij: Tensor, phi_ij: Tensor, sph_ij: Tensor, expand: Tensor, idx_i: Tensor, idx_j: Tensor
    ) -> Tensor:
        """q, k (N, F): Q x, K x; w_ij (P, F), phi_ij (P,) pair weights, sph_ij (P, M), expand (|L|, M) 0/1
        -> messages (P, M); the update dchi_i is their sum over the pairs of centre i."""
        num_pairs = w_ij.shape[0]
        q_i = q.index_select(0, idx_i)
        k_j = k.index_select(0, idx_j)
        alpha = (q_i * w_ij * k_j).reshape(num_pairs, self.num_degrees, self.head_dim).sum(-1)
        alpha = alpha * (phi_ij * self.inv_sqrt_dim)[:, None]
        return (alpha @ expand) * sph_ij
