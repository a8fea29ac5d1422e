"""A plain, unoptimised So3krates written from the paper's equations, reading the weights of a
`So3krates` module: the yardstick for the optimised model (shared geometry, one matmul for all
radial first layers and for all projections of a layer, monomial spherical harmonics,
index_select gathers).

Everything here is recomputed per layer, per head and per degree, with the explicit harmonic
polynomials and the filters' MLPs applied to the radial basis as written (Eq. 9).
"""

import math

import torch
from torch import Tensor

from so3k.nn.nonlocal_attention import structure_pairs
from so3k.nn.spherical_harmonics import spherical_harmonics


def reference_energy(model, positions: Tensor, species: Tensor, idx_i: Tensor, idx_j: Tensor, shifts: Tensor) -> Tensor:
    """Total energy of one structure (pairs with real lengths only)."""
    config = model.config
    degrees = list(config.degrees)
    dims = [2 * l + 1 for l in degrees]
    n = positions.shape[0]

    def geometry(i, j, s):
        r = positions[j] - positions[i] + s
        d = r.norm(dim=-1)
        phi = model.cutoff_fn(d)
        return d, phi, model.radial_basis(d) * phi[:, None], spherical_harmonics(r / d[:, None], degrees)

    def per_degree(v):  # (P, M) -> list of (P, 2l+1)
        return list(torch.split(v, dims, dim=-1))

    def invariant(v):
        sq = torch.stack([(b * b).sum(-1) for b in per_degree(v)], dim=-1)
        if config.sphc_invariant == "squared":
            return sq / torch.tensor([math.sqrt(m) for m in dims], dtype=v.dtype)
        return sq.sqrt()

    d_ij, phi_ij, rbf_ij, sph_ij = geometry(idx_i, idx_j, shifts)
    if config.is_nonlocal:
        g_i, g_j = structure_pairs(torch.zeros(n, dtype=torch.long))
        _, phi_g, rbf_g, sph_g = geometry(g_i, g_j, torch.zeros(len(g_i), 3, dtype=positions.dtype))
    else:
        g_i, g_j, phi_g, rbf_g, sph_g = idx_i, idx_j, phi_ij, rbf_ij, sph_ij

    x = model.embedding(species)
    if config.sphc_init == "average":
        chi = torch.zeros(n, sum(dims), dtype=positions.dtype)
        weight = torch.zeros(n, dtype=positions.dtype)
        chi.index_put_((idx_i,), phi_ij[:, None] * sph_ij, accumulate=True)
        weight.index_put_((idx_i,), phi_ij, accumulate=True)
        chi = torch.where(weight[:, None] > 0, chi / weight.clamp(min=1e-300)[:, None], torch.zeros_like(chi))
    else:
        chi = torch.zeros(n, sum(dims), dtype=positions.dtype)

    for layer in model.layers:
        s_ij = invariant(chi[idx_j] - chi[idx_i])
        # feature attention, head by head
        attention = layer.feature_attention
        w_ij = layer.feature_filter.radial(rbf_ij) + layer.feature_filter.sphc(s_ij)
        q, k, v = attention.q(x), attention.k(x), attention.v(x)
        dx = torch.zeros_like(x)
        width = attention.head_dim
        for h in range(attention.heads):
            part = slice(h * width, (h + 1) * width)
            alpha = (q[idx_i, part] * w_ij[:, part] * k[idx_j, part]).sum(-1) * phi_ij / math.sqrt(width)
            dx[:, part] = dx[:, part].index_put((idx_i,), alpha[:, None] * v[idx_j, part], accumulate=True)
        # SPHC attention, degree by degree
        attention = layer.sphc_attention
        if config.is_nonlocal:
            s_g = invariant(chi[g_j] - chi[g_i])
            atoms = torch.full((len(g_i),), n, dtype=torch.long)
            weight_g = phi_g + layer.neighbourhood(chi, g_i, g_j, atoms)
        else:
            s_g, weight_g = s_ij, phi_g
        w_g = layer.sphc_filter.radial(rbf_g) + layer.sphc_filter.sphc(s_g)
        q, k = attention.q(x), attention.k(x)
        width = attention.head_dim
        updates = []
        for l, y in enumerate(per_degree(sph_g)):
            part = slice(l * width, (l + 1) * width)
            alpha = (q[g_i, part] * w_g[:, part] * k[g_j, part]).sum(-1) * weight_g / math.sqrt(width)
            updates.append(torch.zeros(n, y.shape[1], dtype=x.dtype).index_put((g_i,), alpha[:, None] * y, accumulate=True))
        x, chi = layer.interaction(x + dx, chi + torch.cat(updates, dim=-1), model.expand)
    return model.readout(x, species).sum()
