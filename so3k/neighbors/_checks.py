"""Input validation for the neighbour lists (TorchScript-scriptable).

Every check raises :class:`NeighborListError` with a message that names the failed check.
In eager mode that is a ``NeighborListError`` (a ``ValueError``); inside a scripted function
TorchScript re-raises it as ``torch.jit.Error`` whose message contains
``NeighborListError: <message>``.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from so3k.errors import So3kError


class NeighborListError(So3kError, ValueError):
    """Invalid input to :func:`neighbor_list` / :func:`batched_neighbor_list`."""


def _shape_str(t: Tensor) -> str:
    dims: List[str] = []
    for s in t.shape:
        dims.append(str(s))
    return "(" + ", ".join(dims) + ")"


def _check_cutoff(cutoff: float) -> None:
    # `not (a and b)` also catches NaN.
    if not (cutoff > 0.0 and cutoff < float("inf")):
        raise NeighborListError(
            "cutoff must be a finite number > 0, got " + str(cutoff)
        )


def _check_positions(positions: Tensor) -> None:
    if positions.dim() != 2 or positions.size(1) != 3:
        raise NeighborListError(
            "positions must have shape (N, 3), got " + _shape_str(positions)
        )
    if positions.dtype != torch.float32 and positions.dtype != torch.float64:
        raise NeighborListError("positions must be float32 or float64")
    if positions.numel() > 0 and not bool(torch.isfinite(positions).all()):
        raise NeighborListError(
            "positions must be finite: found NaN or inf in positions"
        )


def check_inputs(
    positions: Tensor, cutoff: float, cell: Optional[Tensor], pbc: Optional[Tensor]
) -> Tuple[Optional[Tensor], List[bool]]:
    """Validate the inputs of one structure and resolve the periodicity.

    Returns ``(cell64, periodic)``: ``periodic`` is a list of three bools; ``cell64`` is the
    cell in float64 when some direction is periodic (it is then guaranteed full-rank), else
    None (the cell plays no role without periodicity: all offsets are zero).

    ``pbc=None`` means all False if ``cell`` is None or all zeros, else all True.
    """
    _check_cutoff(cutoff)
    _check_positions(positions)
    cell_is_zero = True
    if cell is not None:
        if cell.dim() != 2 or cell.size(0) != 3 or cell.size(1) != 3:
            raise NeighborListError("cell must have shape (3, 3), got " + _shape_str(cell))
        if not cell.is_floating_point():
            raise NeighborListError("cell must be a floating-point tensor")
        if not bool(torch.isfinite(cell).all()):
            raise NeighborListError("cell must be finite: found NaN or inf in cell")
        cell_is_zero = not bool((cell != 0).any())
    periodic: List[bool] = [False, False, False]
    if pbc is None:
        if not cell_is_zero:
            periodic = [True, True, True]
    else:
        if pbc.numel() != 3:
            raise NeighborListError("pbc must have shape (3,), got " + _shape_str(pbc))
        flat = pbc.reshape(3)
        for k in range(3):
            periodic[k] = bool(flat[k] != 0)
    if not (periodic[0] or periodic[1] or periodic[2]):
        return None, periodic
    pbc_str = "[" + str(periodic[0]) + ", " + str(periodic[1]) + ", " + str(periodic[2]) + "]"
    if cell is None:
        raise NeighborListError(
            "pbc=" + pbc_str + " is periodic in some direction but no cell was given"
        )
    cell64 = cell.detach().to(device=positions.device, dtype=torch.float64)
    norms = torch.linalg.vector_norm(cell64, dim=1)
    scale = float(norms.prod())
    volume = abs(float(torch.linalg.det(cell64)))
    if not (scale > 0.0 and volume > 1e-10 * scale):
        raise NeighborListError(
            "a full-rank cell (non-zero volume) is needed when any direction is periodic: "
            + "pbc=" + pbc_str + " but the cell volume is " + str(volume)
            + " (give all three lattice vectors, e.g. a non-zero vacuum vector "
            + "in non-periodic directions)"
        )
    return cell64, periodic
