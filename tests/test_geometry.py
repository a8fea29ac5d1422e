"""so3k.geometry: shifts from offsets and OpenMM's minimum image, in float64."""

import itertools

import numpy as np
import torch

from so3k.geometry import minimum_image_offsets, pair_shifts, strained


def test_pair_shifts_in_one_cell_and_in_a_batch_of_cells():
    rng = np.random.default_rng(0)
    cells = torch.tensor(rng.normal(size=(2, 3, 3)))
    offsets = torch.tensor(rng.integers(-2, 3, size=(5, 3)), dtype=torch.float64)
    structure = torch.tensor([0, 1, 1, 0, 1])
    expected = torch.stack([offsets[k] @ cells[structure[k]] for k in range(5)])
    torch.testing.assert_close(pair_shifts(offsets, cells, structure), expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(pair_shifts(offsets, cells[1]), offsets @ cells[1], rtol=0, atol=0)


def test_minimum_image_offsets_find_the_nearest_image_in_a_reduced_box():
    box = torch.tensor([[6.6, 0.0, 0.0], [1.9, 6.4, 0.0], [-1.5, 2.2, 6.5]], dtype=torch.float64)
    d = torch.tensor(np.random.default_rng(1).uniform(-12, 12, size=(200, 3)))
    n = minimum_image_offsets(d, box)
    assert torch.equal(n, torch.round(n))
    found = torch.linalg.norm(d + n @ box, dim=1)
    images = torch.tensor(list(itertools.product(range(-4, 5), repeat=3)), dtype=torch.float64)
    nearest = torch.linalg.norm(d[:, None, :] + (images @ box)[None], dim=2).min(dim=1).values
    # OpenMM's reduction is exact for pairs within half the smallest box width
    inside = nearest < 0.5 * 6.4
    assert inside.sum() > 10
    torch.testing.assert_close(found[inside], nearest[inside], rtol=0, atol=1e-12)


def test_strain_deforms_positions_and_cells_by_its_symmetric_part():
    strain = torch.tensor([[[0.0, 0.2, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.1]]], dtype=torch.float64)
    positions = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    cell = torch.eye(3, dtype=torch.float64)[None] * 4.0
    p, c = strained(positions, cell, strain, torch.zeros(1, dtype=torch.long))
    eps = torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.1]], dtype=torch.float64)
    torch.testing.assert_close(p, positions @ (torch.eye(3, dtype=torch.float64) + eps))
    torch.testing.assert_close(c[0], cell[0] @ (torch.eye(3, dtype=torch.float64) + eps))
