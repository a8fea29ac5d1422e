"""Candidate-pair generation for the cell list (TorchScript-scriptable).

Atoms are processed in blocks of consecutive atoms holding about ``chunk`` candidate pairs
each, so that the temporaries stay cache-resident and memory is bounded.  Per-candidate work
is 1-D ``index_select`` gathers and elementwise arithmetic (advanced indexing of (P, 3)
tensors and reductions over a length-3 dimension are much slower on CPU).
"""

from typing import List, Tuple

import torch
from torch import Tensor

from ._binning import axis_table, stencil_counts


def exact_keep(positions: Tensor, cell: Tensor, idx_i: Tensor, idx_j: Tensor,
               shift: Tensor, cutoff: float) -> Tensor:
    """ASE's test, evaluated as ASE does: ``sqrt(sum((p[j] - p[i] + S @ cell)**2)) < cutoff``."""
    vec = (positions.index_select(0, idx_j) - positions.index_select(0, idx_i)
           + shift.to(positions.dtype) @ cell)
    dist = torch.sqrt(vec[:, 0] * vec[:, 0] + vec[:, 1] * vec[:, 1] + vec[:, 2] * vec[:, 2])
    return dist < cutoff


def all_pairs(positions: Tensor, cutoff: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Brute force for small non-periodic systems (all shifts zero), ``idx_i`` ascending."""
    n = positions.size(0)
    idx = torch.arange(n, dtype=torch.int64, device=positions.device)
    idx_i = idx.repeat_interleave(n)
    idx_j = idx.repeat(n)
    shift = torch.zeros(n * n, 3, dtype=torch.int64, device=positions.device)
    keep = exact_keep(positions, torch.zeros(3, 3, dtype=positions.dtype, device=positions.device),
                      idx_i, idx_j, shift, cutoff) & (idx_i != idx_j)
    sel = torch.nonzero(keep).squeeze(1)
    return idx_i.index_select(0, sel), idx_j.index_select(0, sel), shift.index_select(0, sel)


def close_pairs(
    positions: Tensor,
    cell: Tensor,
    has_cell: bool,
    bin3: Tensor,
    wrap: Tensor,
    nbins: List[int],
    reach: List[int],
    periodic: List[bool],
    cutoff: float,
    work_dtype: torch.dtype,
    chunk: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    """All (i, j, S) with ``|p[j] - p[i] + S @ cell| < cutoff``, except (i, i, 0).

    Args:
        positions: (N, 3) input positions (unwrapped), N >= 1.
        cell: (3, 3) in the dtype of positions (ignored unless ``has_cell``).
        bin3, wrap, nbins, reach: output of :func:`bin_geometry`.
        periodic: three bools.
        cutoff: the cutoff.
        work_dtype: dtype of the candidate prefilter (float32 is faster; pairs whose
            prefilter distance is within rounding error of the cutoff are re-tested exactly
            in the dtype of ``positions`` by :func:`exact_keep`).
        chunk: target number of candidate pairs per block.

    Returns:
        ``idx_i``, ``idx_j``, and the int64 shifts ``S`` (P, 3) referring to the unwrapped
        input positions.  Each (i, j, S) appears once.  Order: the pairs found from the
        centre atom's half stencil (grouped by ascending ``idx_i``), then their mirrors.
    """
    device = positions.device
    n_atoms = positions.size(0)
    n0, n1, n2 = nbins[0], nbins[1], nbins[2]
    n_bins = n0 * n1 * n2
    bin_id = bin3[:, 0] + n0 * (bin3[:, 1] + n1 * bin3[:, 2])
    order = torch.argsort(bin_id, stable=True)
    rank = torch.empty_like(order).scatter_(
        0, order, torch.arange(n_atoms, dtype=torch.int64, device=device))
    counts = torch.bincount(bin_id, minlength=n_bins)
    starts = torch.cumsum(counts, 0) - counts
    zero = torch.zeros(1, dtype=torch.int64, device=device)
    counts_pad = torch.cat([zero, counts])  # slot 0: "no bin" (non-periodic edge)
    starts_pad = torch.cat([zero, starts])

    # Separable per-axis tables, restricted to the "upper half" of the stencil: offsets
    # lexicographically >= (0, 0, 0) in (dz, dy, dx) order.  Every pair (i, j, S) is found
    # from exactly one of i and j (the other one is its mirror (j, i, -S)); in the atom's
    # own bin (offset 0, image 0) only the atoms sorted after it are taken.
    invalid = -4 * n_bins
    tx, imx = axis_table(n0, reach[0], periodic[0], 1, invalid, device)
    ty, imy = axis_table(n1, reach[1], periodic[1], n0, invalid, device)
    tz, imz = axis_table(n2, reach[2], periodic[2], n0 * n1, invalid, device)
    l0, l1 = tx.size(1), ty.size(1)
    k_zero = (reach[2] * l1 + reach[1]) * l0 + reach[0]  # the offset (0, 0, 0)
    half = torch.arange(k_zero, l0 * l1 * tz.size(1), dtype=torch.int64, device=device)
    hx = torch.remainder(half, l0)
    hy = torch.remainder(torch.div(half, l0, rounding_mode="floor"), l1)
    hz = torch.div(half, l0 * l1, rounding_mode="floor")
    n_half = half.size(0)
    tabs: List[Tensor] = [tx.index_select(1, hx), ty.index_select(1, hy), tz.index_select(1, hz)]
    images: List[Tensor] = [imx.index_select(1, hx), imy.index_select(1, hy),
                            imz.index_select(1, hz)]

    # Bound on |prefilter distance - exact distance| (different rounding paths).
    eps = 1.2e-7 if work_dtype == torch.float32 else 2.3e-16
    cell_size = float(cell.abs().sum()) if has_cell else 0.0
    max_wrap = float(wrap.abs().max())
    scale = (2.0 * float(positions.abs().max()) + cutoff
             + (max(reach) + 2.0 * max_wrap + 2.0) * cell_size)
    delta = 32.0 * eps * scale
    loose2 = (cutoff + delta) * (cutoff + delta)
    sure = max(cutoff - delta, 0.0)
    sure2 = sure * sure

    work_cell = cell.to(work_dtype)
    wrapped = positions.to(work_dtype)
    if has_cell:
        wrapped = (positions - wrap.to(positions.dtype) @ cell).to(work_dtype)
    w_cols: List[Tensor] = []
    p_cols: List[Tensor] = []
    s_tabs: List[List[Tensor]] = []
    sorted_pos = wrapped.index_select(0, order)
    for c in range(3):
        w_cols.append(wrapped[:, c].contiguous())
        p_cols.append(sorted_pos[:, c].contiguous())
        if has_cell:
            # Cartesian component c of the image shift T @ cell, per axis.
            s_tabs.append([images[k].to(work_dtype) * work_cell[k, c] for k in range(3)])
    b_cols: List[Tensor] = [bin3[:, 0].contiguous(), bin3[:, 1].contiguous(),
                            bin3[:, 2].contiguous()]

    # Blocks of consecutive atoms with about `chunk` candidates each (the full stencil
    # holds about twice the candidates of the half stencil).
    per_atom = stencil_counts(counts, nbins, reach, periodic).index_select(0, bin_id)
    cum = torch.cumsum(per_atom, 0)
    n_blocks = max(1, (int(cum[-1]) + 2 * chunk - 1) // (2 * chunk))
    bounds: List[int] = [0]
    if n_blocks > 1:
        marks = torch.arange(1, n_blocks, dtype=torch.int64, device=device) * (2 * chunk)
        cuts: List[int] = torch.jit.annotate(
            List[int], torch.searchsorted(cum, marks, right=True).tolist()
        )
        bounds = bounds + cuts
    bounds.append(n_atoms)

    out_i: List[Tensor] = []
    out_j: List[Tensor] = []
    out_s: List[Tensor] = []
    for blk in range(len(bounds) - 1):
        a0, a1 = bounds[blk], bounds[blk + 1]
        if a1 <= a0:
            continue
        na = a1 - a0
        bins_a: List[Tensor] = [b_cols[0][a0:a1], b_cols[1][a0:a1], b_cols[2][a0:a1]]
        target = (tabs[0].index_select(0, bins_a[0]) + tabs[1].index_select(0, bins_a[1])
                  + tabs[2].index_select(0, bins_a[2])).reshape(-1)
        target = target.clamp_(min=-1).add_(1)
        cnt = counts_pad.index_select(0, target).view(na, n_half)
        slot0 = starts_pad.index_select(0, target).view(na, n_half)
        own_rank = rank[a0:a1]
        own_bin = bin_id[a0:a1]
        cnt[:, 0] = counts.index_select(0, own_bin) + starts.index_select(0, own_bin) - own_rank - 1
        slot0[:, 0] = own_rank + 1
        cnt = cnt.reshape(-1)
        base = slot0.reshape(-1) - (torch.cumsum(cnt, 0) - cnt)
        entry = torch.repeat_interleave(cnt)
        n_cand = entry.size(0)
        if n_cand == 0:
            continue
        slot = base.index_select(0, entry)
        slot += torch.arange(n_cand, dtype=torch.int64, device=device)
        d2 = torch.zeros(n_cand, dtype=work_dtype, device=device)
        for c in range(3):
            # Search centre of each (atom, stencil offset): wrapped_i - T @ cell.
            centre = w_cols[c][a0:a1].view(na, 1)
            if has_cell:
                tab = s_tabs[c]
                centre = centre - (tab[0].index_select(0, bins_a[0])
                                   + tab[1].index_select(0, bins_a[1])
                                   + tab[2].index_select(0, bins_a[2]))
            centre = centre.expand(na, n_half).reshape(-1)
            dc = p_cols[c].index_select(0, slot)
            dc -= centre.index_select(0, entry)
            d2.addcmul_(dc, dc)
        hit = torch.nonzero(d2 < loose2).squeeze(1)
        entry = entry.index_select(0, hit)
        local = torch.div(entry, n_half, rounding_mode="floor")
        k = entry - local * n_half
        idx_i = local + a0
        idx_j = order.index_select(0, slot.index_select(0, hit))
        shift = torch.stack([
            images[c].reshape(-1).index_select(0, bins_a[c].index_select(0, local) * n_half + k)
            for c in range(3)
        ], dim=1)
        if has_cell:
            shift += wrap.index_select(0, idx_i) - wrap.index_select(0, idx_j)
        # Pairs within rounding error of the cutoff: decide with the exact formula.
        band = torch.nonzero(d2.index_select(0, hit) >= sure2).squeeze(1)
        if band.numel() > 0:
            ok = exact_keep(positions, cell, idx_i.index_select(0, band),
                            idx_j.index_select(0, band), shift.index_select(0, band), cutoff)
            drop = band[~ok]
            if drop.numel() > 0:
                keep = torch.ones(idx_i.size(0), dtype=torch.bool, device=device)
                keep[drop] = False
                sel = torch.nonzero(keep).squeeze(1)
                idx_i, idx_j = idx_i.index_select(0, sel), idx_j.index_select(0, sel)
                shift = shift.index_select(0, sel)
        out_i.append(idx_i)
        out_j.append(idx_j)
        out_s.append(shift)
    if len(out_i) == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty, torch.zeros(0, 3, dtype=torch.int64, device=device)
    # Add the mirror pairs: the distance is computed bit-identically, so the ASE test agrees.
    fwd_i, fwd_j, fwd_s = torch.cat(out_i), torch.cat(out_j), torch.cat(out_s)
    return torch.cat([fwd_i, fwd_j]), torch.cat([fwd_j, fwd_i]), torch.cat([fwd_s, -fwd_s])
