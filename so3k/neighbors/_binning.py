"""Spatial binning for the cell list (TorchScript-scriptable helpers).

Atoms are binned in fractional coordinates of the cell: bins are slabs between lattice
planes, so that a bin's width *in distance* along direction k is ``h_k / n_k`` with
``h_k = 1 / |row k of inv(cell).T|`` the spacing of the lattice planes.  For a fully
non-periodic system the "cell" is the identity (Cartesian bins over the bounding box).
"""

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor


def bin_geometry(
    positions: Tensor,
    cell64: Optional[Tensor],
    periodic: List[bool],
    search: float,
    bins_per_cutoff: int,
    max_bins: int,
) -> Tuple[Tensor, Tensor, List[int], List[int]]:
    """Bin the atoms.

    Args:
        positions: (N, 3), N >= 1.
        cell64: (3, 3) float64 full-rank cell, or None when no direction is periodic.
        periodic: three bools.
        search: search radius (the cutoff plus a tiny safety margin).
        bins_per_cutoff: target number of bins per ``search`` length (1 or 2 are sensible).
        max_bins: upper bound on the total number of bins (memory bound for sparse systems).

    Returns:
        ``bin3`` (N, 3) int64 bin coordinates, ``wrap`` (N, 3) int64 lattice shift that was
        subtracted from each atom to wrap it into the primary cell (zero in non-periodic
        directions), ``nbins`` per direction, ``reach`` (stencil half-width) per direction.
    """
    pos64 = positions.to(torch.float64)
    if cell64 is None:
        frac = pos64
        spacing: List[float] = [1.0, 1.0, 1.0]
    else:
        inv = torch.linalg.inv(cell64)
        frac = pos64 @ inv
        recip_norm = torch.linalg.vector_norm(inv, dim=0)  # |b_k|, b_k = column k of inv
        spacing = [1.0 / float(recip_norm[0]), 1.0 / float(recip_norm[1]),
                   1.0 / float(recip_norm[2])]

    wrap = torch.zeros_like(frac)
    lo: List[float] = [0.0, 0.0, 0.0]
    span: List[float] = [1.0, 1.0, 1.0]  # fractional extent that the bins cover
    length: List[float] = [0.0, 0.0, 0.0]  # that extent in distance units
    for k in range(3):
        if periodic[k]:
            wrap[:, k] = torch.floor(frac[:, k])
            length[k] = spacing[k]
        else:
            fmin = float(frac[:, k].min())
            fmax = float(frac[:, k].max())
            lo[k] = fmin
            span[k] = fmax - fmin
            length[k] = span[k] * spacing[k]

    nbins: List[int] = [1, 1, 1]
    for k in range(3):
        target = length[k] * bins_per_cutoff / search
        nbins[k] = max(1, int(math.floor(min(target, 1e6))))
    while nbins[0] * nbins[1] * nbins[2] > max_bins:
        kmax = 0
        for k in range(1, 3):
            if nbins[k] > nbins[kmax]:
                kmax = k
        nbins[kmax] = max(1, nbins[kmax] // 2)

    reach: List[int] = [0, 0, 0]
    cols: List[Tensor] = []
    for k in range(3):
        n = nbins[k]
        if periodic[k]:
            f = frac[:, k] - wrap[:, k]
            width = length[k] / n
            # width >= search / bins_per_cutoff, so this is <= bins_per_cutoff; the factor
            # keeps float rounding of search / width from adding a whole ring of bins.
            reach[k] = max(1, int(math.ceil(search / width * (1.0 - 1e-12))))
        else:
            f = frac[:, k] - lo[k]
            if span[k] > 0.0:
                f = f / span[k]
            if n > 1:
                width = length[k] / n
                reach[k] = min(n - 1, max(1, int(math.ceil(search / width * (1.0 - 1e-12)))))
        cols.append(torch.floor(f * n).to(torch.int64).clamp(0, n - 1))
    bin3 = torch.stack(cols, dim=1)
    return bin3, wrap.to(torch.int64), nbins, reach


def axis_table(n: int, reach: int, periodic: bool, stride: int, invalid: int,
               device: torch.device) -> Tuple[Tensor, Tensor]:
    """Neighbour bins along one axis: for bin b and offset d in -reach..reach.

    Returns ``target`` (n, 2*reach+1) int64, the neighbour bin times ``stride`` (``invalid``
    where a non-periodic axis runs out of bins), and ``image`` (n, 2*reach+1) int64, the
    lattice image of the neighbour bin (floor division; zero for a non-periodic axis).
    """
    raw = (torch.arange(n, dtype=torch.int64, device=device).unsqueeze(1)
           + torch.arange(-reach, reach + 1, dtype=torch.int64, device=device).unsqueeze(0))
    if periodic:
        image = torch.div(raw, n, rounding_mode="floor")
        return (raw - image * n) * stride, image
    inside = (raw >= 0) & (raw < n)
    return torch.where(inside, raw * stride, invalid), torch.zeros_like(raw)


def stencil_counts(counts: Tensor, nbins: List[int], reach: List[int],
                   periodic: List[bool]) -> Tensor:
    """For every bin, the number of atoms in its stencil (box sum over the bin grid)."""
    acc = counts.view(nbins[2], nbins[1], nbins[0])
    for k in range(3):
        dim = 2 - k  # axis x is the fastest-varying dimension
        n = nbins[k]
        total = torch.zeros_like(acc)
        for d in range(-reach[k], reach[k] + 1):
            if periodic[k]:
                # total[b] += acc[(b + d) mod n]
                total += torch.roll(acc, -d, dim)
            elif abs(d) < n:
                length = n - abs(d)
                total.narrow(dim, max(0, -d), length).add_(acc.narrow(dim, max(0, d), length))
        acc = total
    return acc.reshape(-1)
