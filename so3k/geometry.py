"""Pair geometry shared by every front end: Cartesian shifts of periodic images, pair vectors,
the strain deformation behind the virial, and the minimum image of OpenMM's boxes.

Pair lists (so3k.neighbors) give integer cell offsets S of the neighbour j; the model wants the
Cartesian shift S @ cell added to r_j - r_i. The shift is rebuilt from the (possibly strained)
cell on every call, so that derivatives with respect to the cell are exact, also for small cells
where atoms see their own images. All functions are TorchScript-scriptable.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor


def pair_shifts(offsets: Tensor, cell: Tensor, pair_structure: Optional[Tensor] = None) -> Tensor:
    """(P, 3) Cartesian shifts (Å) of pairs with integer offsets (P, 3) in one cell (3, 3) or,
    with pair_structure (P,) the structure of each pair, in cells (B, 3, 3); rows of a cell are
    its lattice vectors."""
    if pair_structure is None:
        return offsets @ cell
    return torch.bmm(offsets[:, None, :], cell.index_select(0, pair_structure)).squeeze(1)


def pair_vectors(positions: Tensor, idx_i: Tensor, idx_j: Tensor, shifts: Tensor) -> Tensor:
    """(P, 3) vectors r_j - r_i + shift from each centre i to its neighbour j."""
    return positions.index_select(0, idx_j) - positions.index_select(0, idx_i) + shifts


def strained(positions: Tensor, cell: Tensor, strain: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor]:
    """Positions (N, 3) and cells (B, 3, 3) deformed by (1 + eps), eps the symmetric part of
    `strain` (B, 3, 3); the derivative of the energy at strain = 0 is -virial."""
    eps = 0.5 * (strain + strain.transpose(1, 2))
    positions_d = positions + torch.bmm(positions[:, None, :], eps.index_select(0, batch)).squeeze(1)
    return positions_d, cell + torch.bmm(cell, eps)


def minimum_image_offsets(d: Tensor, box: Tensor) -> Tensor:
    """Integer offsets (P, 3) (as floats) that bring pair vectors d (P, 3) to their minimum image
    in an OpenMM box (rows a, b, c in reduced triclinic form), reducing along c, then b, then a,
    as OpenMM does. Exact when the cutoff is at most half the smallest box width."""
    n_c = -torch.round(d[:, 2] / box[2, 2])
    d = d + n_c[:, None] * box[2]
    n_b = -torch.round(d[:, 1] / box[1, 1])
    d = d + n_b[:, None] * box[1]
    n_a = -torch.round(d[:, 0] / box[0, 0])
    return torch.stack([n_a, n_b, n_c], dim=1)


def squared_distances(positions: Tensor, idx_i: Tensor, idx_j: Tensor, shifts: Tensor) -> Tensor:
    """(P,) squared pair distances, outside autograd (for checks, not for energies)."""
    r_ij = pair_vectors(positions.detach(), idx_i, idx_j, shifts.detach())
    return (r_ij * r_ij).sum(-1)


def check_min_distance(positions: Tensor, idx_i: Tensor, idx_j: Tensor, shifts: Tensor, min_distance: float) -> None:
    """Refuse a structure with two atoms closer than min_distance (Å): overlapping atoms, or a
    simulation that has blown up. Reads one number back to the host."""
    if idx_i.numel() == 0:
        return
    d2 = squared_distances(positions, idx_i, idx_j, shifts)
    if bool(d2.min() < min_distance * min_distance):  # one host read per call; the details only on failure
        k = int(torch.argmin(d2))
        d = float(d2[k]) ** 0.5
        raise ValueError(
            "atoms " + str(int(idx_i[k])) + " and " + str(int(idx_j[k])) + " are " + str(d) + " Å apart, closer than "
            + "min_distance = " + str(min_distance) + " Å: overlapping atoms, or the simulation has blown up (check the "
            + "starting structure and the time step)"
        )
