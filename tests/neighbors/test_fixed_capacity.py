"""The fixed-capacity pair list (CUDA graphs): the ordinary pairs within the cutoff, padding
beyond it, and an overflow that cannot pass unnoticed; eager and scripted."""

import numpy as np
import pytest
import torch

from so3k.neighbors import neighbor_list
from so3k.neighbors.fixed_capacity import fixed_capacity_pairs

SCRIPTED = torch.jit.script(fixed_capacity_pairs)


def within(positions, cutoff, pairs, box):
    i, j, offsets = pairs
    d = torch.linalg.norm(positions[j] - positions[i] + (offsets @ box if box is not None else 0.0), dim=1)
    keep = d < cutoff
    return set(zip(i[keep].tolist(), j[keep].tolist(), map(tuple, offsets[keep].tolist())))


@pytest.mark.parametrize("search", [fixed_capacity_pairs, SCRIPTED], ids=["eager", "scripted"])
@pytest.mark.parametrize("periodic", [False, True])
def test_the_pairs_within_the_cutoff_are_the_neighbour_list(search, periodic):
    rng = np.random.default_rng(1)
    box = torch.tensor([[7.0, 0.0, 0.0], [2.5, 6.8, 0.0], [-1.9, 2.4, 6.9]], dtype=torch.float64) if periodic else None
    positions = torch.tensor(rng.uniform(-2.0, 9.0, size=(60, 3)))  # some outside the box
    cutoff = 3.0
    i, j, offsets, overflow = search(positions, cutoff, 40, box)
    assert not bool(overflow)
    assert i.shape == (60 * 40,) and torch.equal(torch.bincount(i), torch.full((60,), 40))
    assert torch.equal(offsets, torch.round(offsets)) and not bool((i == j).any() & (offsets == 0).all(1).any())
    expected = set(zip(*[t.tolist() if t.dim() == 1 else map(tuple, t.tolist()) for t in neighbor_list(positions, cutoff, box, None)]))
    assert within(positions, cutoff, (i, j, offsets), box) == expected


@pytest.mark.parametrize("search", [fixed_capacity_pairs, SCRIPTED], ids=["eager", "scripted"])
def test_more_neighbours_than_slots_is_flagged(search):
    positions = torch.tensor(np.random.default_rng(2).uniform(0.0, 4.0, size=(30, 3)))
    assert not bool(search(positions, 3.0, 29, None)[3])
    assert bool(search(positions, 3.0, 5, None)[3])
    frozen = torch.jit.freeze(torch.jit.script(Search()).eval())  # as TorchForce runs it
    assert bool(frozen(positions))


class Search(torch.nn.Module):
    def forward(self, positions):
        return fixed_capacity_pairs(positions, 3.0, 5, None)[3]
