"""Cell-list (binning) neighbour lists in pure torch, scriptable with ``torch.jit.script``.

Conventions are those of ``ase.neighborlist.neighbor_list('ijS', atoms, cutoff)``:
``i`` is the centre, ``j`` the neighbour and ``S`` the integer cell shift of ``j``, so that
``r_ij = positions[j] - positions[i] + S @ cell``; a pair is kept when ``|r_ij| < cutoff``
(strictly, computed as ``sqrt(sum(r_ij**2))`` like ASE); every directed pair appears, and
only the self pair ``i == j, S == 0`` is excluded (atoms do neighbour their own periodic
images).  Positions are never wrapped: ``S`` refers to the positions as given, even for atoms
outside the primary cell.  The order of the pairs is deterministic but unspecified (not
sorted by ``i`` like ASE's); compare as sets.

Cost is linear in N: atoms are sorted into bins of (about) ``cutoff / 2`` width (in
fractional coordinates, so triclinic cells work), each atom is compared with the atoms of
half of the bin stencil around its own bin, and the mirror pairs (j, i, -S) are added.
Candidates are screened in float32 in blocks of ~64k; pairs within rounding error of the
cutoff are re-tested with ASE's formula in the dtype of the positions.  Small molecules
(no periodicity, N <= 64) use all pairs.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ._binning import bin_geometry
from ._pairs import all_pairs, close_pairs
from ._checks import NeighborListError, _check_cutoff, _check_positions, _shape_str, check_inputs

__all__ = ["neighbor_list", "batched_neighbor_list", "NeighborListError"]


def _empty(positions: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    idx = torch.zeros(0, dtype=torch.int64, device=positions.device)
    return idx, idx.clone(), torch.zeros(0, 3, dtype=positions.dtype, device=positions.device)


def neighbor_list(
    positions: Tensor,
    cutoff: float,
    cell: Optional[Tensor] = None,
    pbc: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """All directed pairs closer than ``cutoff`` (ASE ``'ijS'`` conventions).

    Args:
        positions: (N, 3) float32/float64 Cartesian positions in Å (not wrapped).
        cutoff: cutoff radius in Å (> 0); pairs with distance ``< cutoff`` are kept.
        cell: (3, 3) lattice vectors as rows, or None / all zeros for a molecule.
        pbc: (3,) bool. None means all False if ``cell`` is None or all zeros, else all True.
            Any periodic direction requires a full-rank cell.

    Returns:
        ``idx_i`` (P,) int64, ``idx_j`` (P,) int64 and ``offsets`` (P, 3) in the dtype of
        ``positions``, integer-valued cell shifts ``S`` such that
        ``positions[idx_j] - positions[idx_i] + offsets @ cell`` is the pair vector
        (offsets are zero in non-periodic directions).  Pair order is unspecified.

    Raises:
        NeighborListError (a ValueError; ``torch.jit.Error`` when scripted) for a cutoff
        <= 0, positions not (N, 3), non-finite positions or cell, or a periodic direction
        with a degenerate cell.
    """
    cell64, periodic = check_inputs(positions, cutoff, cell, pbc)
    positions = positions.detach()  # the pair list carries no gradient
    n_atoms = positions.size(0)
    if n_atoms == 0:
        return _empty(positions)
    device = positions.device
    dtype = positions.dtype
    if cell64 is None and n_atoms <= 64:
        idx_i, idx_j, shift = all_pairs(positions, cutoff)
        return idx_i, idx_j, shift.to(dtype)
    # The bin stencil covers (true) distances up to cutoff * (1 + 1e-4): a margin for the
    # rounding of the fractional coordinates and of the distances that are finally tested.
    search = cutoff * (1.0 + 1e-4)
    bin3, wrap, nbins, reach = bin_geometry(
        positions, cell64, periodic, search, 2, max(64, 2 * n_atoms)
    )
    cell_t = torch.zeros(3, 3, dtype=dtype, device=device)
    if cell64 is not None:
        cell_t = cell64.to(dtype)
    idx_i, idx_j, shift = close_pairs(
        positions, cell_t, cell64 is not None, bin3, wrap, nbins, reach, periodic, cutoff,
        torch.float32, 65536,
    )
    return idx_i, idx_j, shift.to(dtype)


def batched_neighbor_list(
    positions: Tensor,
    cutoff: float,
    batch: Tensor,
    num_graphs: int,
    cell: Optional[Tensor] = None,
    pbc: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`neighbor_list` for several concatenated structures.

    Args:
        positions: (N, 3) positions of all structures.
        cutoff: cutoff radius in Å.
        batch: (N,) int64 structure index of each atom, sorted, in ``0 .. num_graphs-1``.
        num_graphs: number of structures B (structures may have no atoms).
        cell: (B, 3, 3) cells or None.
        pbc: (B, 3) bool or None (per structure, same default as :func:`neighbor_list`).

    Returns:
        ``idx_i``, ``idx_j`` (global atom indices) and ``offsets``; pairs never connect
        atoms of different structures.
    """
    _check_cutoff(cutoff)
    _check_positions(positions)
    n_atoms = positions.size(0)
    if batch.dim() != 1 or batch.size(0) != n_atoms:
        raise NeighborListError(
            "batch must have shape (N,) matching positions, got " + _shape_str(batch)
        )
    if num_graphs < 0:
        raise NeighborListError("num_graphs must be >= 0, got " + str(num_graphs))
    if n_atoms > 0:
        if int(batch.min()) < 0 or int(batch.max()) >= num_graphs:
            raise NeighborListError("batch values must lie in 0 .. num_graphs-1")
        if n_atoms > 1 and bool((batch[1:] < batch[:-1]).any()):
            raise NeighborListError("batch must be sorted (atoms of a structure contiguous)")
    if cell is not None:
        if cell.dim() != 3 or cell.size(0) != num_graphs or cell.size(1) != 3 or cell.size(2) != 3:
            raise NeighborListError("cell must have shape (num_graphs, 3, 3), got " + _shape_str(cell))
    if pbc is not None:
        if pbc.dim() != 2 or pbc.size(0) != num_graphs or pbc.size(1) != 3:
            raise NeighborListError("pbc must have shape (num_graphs, 3), got " + _shape_str(pbc))
    sizes: List[int] = torch.jit.annotate(
        List[int], torch.bincount(batch.to(torch.int64), minlength=num_graphs).tolist()
    )
    out_i: List[Tensor] = []
    out_j: List[Tensor] = []
    out_s: List[Tensor] = []
    start = 0
    for g in range(num_graphs):
        size = sizes[g]
        cell_g: Optional[Tensor] = None
        if cell is not None:
            cell_g = cell[g]
        pbc_g: Optional[Tensor] = None
        if pbc is not None:
            pbc_g = pbc[g]
        i, j, s = neighbor_list(positions[start:start + size], cutoff, cell_g, pbc_g)
        out_i.append(i + start)
        out_j.append(j + start)
        out_s.append(s)
        start += size
    if len(out_i) == 0:
        return _empty(positions)
    return torch.cat(out_i), torch.cat(out_j), torch.cat(out_s)
