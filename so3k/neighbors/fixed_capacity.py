"""A pair list of fixed size, for CUDA graphs: no data-dependent shapes, no host synchronisation.

Every atom gets exactly `capacity` neighbour slots, filled with its nearest atoms (minimum image
in a periodic box). Slots beyond the cutoff carry pairs that the model weights by zero (the
cutoff function, also in the averaged SPHC start), so the model's energy is that of the ordinary
pair list as long as no atom has more than `capacity` neighbours within the cutoff. More would
be silently lost, so that case is flagged on the device without a host read: the caller turns
the energy and forces into NaN with it, and the engine stops ("Particle coordinate is NaN").
(An assert is no option: TorchScript drops torch._assert_async, and a frozen module crashes on
a failing _functional_assert_async.)

The search compares all pairs (O(N^2) elementwise work, no sync, like TorchMD-Net's brute-force
OptimizedDistance); the model then works on N * capacity pairs. Meant for up to a few thousand
atoms per call. Periodic boxes use OpenMM's minimum image: the box must be at least twice the
cutoff wide, in reduced triclinic form.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

from so3k.geometry import minimum_image_offsets


def fixed_capacity_pairs(
    positions: Tensor, cutoff: float, capacity: int, box: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(idx_i, idx_j, offsets, overflow) with N * min(capacity, N - 1) pairs: each atom's nearest
    atoms, offsets (as floats) the integer box offsets of j (zeros without a box), overflow a
    0-dim bool tensor: some atom has more neighbours within the cutoff than the slots."""
    n = positions.shape[0]
    k = min(capacity, n - 1)
    with torch.no_grad():  # only indices and integer offsets come out: nothing to differentiate
        r = positions.detach()
        d = r[None, :, :] - r[:, None, :]  # (N, N, 3): from i to j
        offsets = torch.zeros_like(d)
        if box is not None:
            offsets = minimum_image_offsets(d.reshape(-1, 3), box).reshape(n, n, 3)
            d = d + offsets @ box
        d2 = (d * d).sum(-1)
        eye = torch.eye(n, dtype=torch.bool, device=r.device)
        d2 = torch.where(eye, torch.full_like(d2, float("inf")), d2)
        within = (d2 < cutoff * cutoff).sum(1)
        overflow = (within > k).any()
        idx_j = torch.topk(d2, k, dim=1, largest=False).indices  # (N, k)
        idx_i = torch.arange(n, device=r.device)[:, None].expand(n, k)
        pair_offsets = offsets[idx_i, idx_j]
    return idx_i.reshape(-1), idx_j.reshape(-1), pair_offsets.reshape(-1, 3), overflow

