"""batched_neighbor_list, default pbc semantics, and refusal of bad input (eager and scripted)."""

import warnings

import numpy as np
import pytest
import torch

from so3k.neighbors import NeighborListError, batched_neighbor_list, neighbor_list


def structures(seed):
    """A mix: periodic triclinic, slab, small cell, molecule (cell zeros), empty, single atom."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in ["bulk", "slab", "tiny", "molecule", "empty", "single"]:
        cell = np.diag(rng.uniform(5.0, 9.0, 3)) + rng.uniform(-1.0, 1.0, (3, 3))
        pbc = [True, True, True]
        n_atoms = int(rng.integers(10, 60))
        if kind == "slab":
            pbc = [True, True, False]
        elif kind == "tiny":
            cell, n_atoms = np.diag([2.0, 2.5, 3.0]), 3
        elif kind == "molecule":
            cell, pbc = np.zeros((3, 3)), [False, False, False]
        elif kind == "empty":
            n_atoms = 0
        elif kind == "single":
            n_atoms = 1
        positions = rng.uniform(-0.5, 1.5, (n_atoms, 3)) @ (cell if cell.any() else np.eye(3) * 6.0)
        out.append((torch.tensor(positions), torch.tensor(cell), torch.tensor(pbc)))
    order = rng.permutation(len(out))
    return [out[k] for k in order]


def triples(i, j, s):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, s.long().tolist())))


@pytest.mark.parametrize("seed", range(3))
def test_batched_equals_per_structure_calls(seed, scripted):
    items = structures(seed)
    positions = torch.cat([p for p, _, _ in items])
    batch = torch.cat([torch.full((len(p),), g, dtype=torch.int64) for g, (p, _, _) in enumerate(items)])
    cell = torch.stack([c for _, c, _ in items])
    pbc = torch.stack([b for _, _, b in items])
    expected, start = [], 0
    for p, c, b in items:
        i, j, s = neighbor_list(p, 4.0, c, b)
        expected += triples(i + start, j + start, s)
        start += len(p)
    for fn in (batched_neighbor_list, scripted[1]):
        idx_i, idx_j, offsets = fn(positions, 4.0, batch, len(items), cell, pbc)
        assert offsets.dtype == torch.float64
        assert triples(idx_i, idx_j, offsets) == sorted(expected)
        assert torch.equal(batch[idx_i], batch[idx_j])  # never across structures
        # pair vectors with each structure's own cell
        vec = positions[idx_j] - positions[idx_i] + torch.bmm(offsets[:, None, :], cell[batch[idx_i]]).squeeze(1)
        assert bool((vec.norm(dim=1) < 4.0).all())


def test_batched_molecules_without_cell(scripted):
    rng = np.random.default_rng(1)
    positions = torch.tensor(rng.normal(0, 2.0, (30, 3)))
    batch = torch.tensor([0] * 10 + [2] * 20)  # structure 1 is empty
    for fn in (batched_neighbor_list, scripted[1]):
        idx_i, idx_j, offsets = fn(positions, 3.0, batch, 3)
        i0, j0, _ = neighbor_list(positions[:10], 3.0)
        i2, j2, _ = neighbor_list(positions[10:], 3.0)
        assert sorted(zip(idx_i.tolist(), idx_j.tolist())) == sorted(
            list(zip(i0.tolist(), j0.tolist())) + list(zip((i2 + 10).tolist(), (j2 + 10).tolist()))
        )
        assert not offsets.any()
    for fn in (batched_neighbor_list, scripted[1]):
        idx_i, _, offsets = fn(torch.zeros(0, 3), 3.0, torch.zeros(0, dtype=torch.int64), 0)
        assert idx_i.shape == (0,) and offsets.shape == (0, 3) and offsets.dtype == torch.float32


def test_default_pbc():
    rng = np.random.default_rng(2)
    cell = torch.eye(3, dtype=torch.float64) * 3.0
    positions = torch.tensor(rng.uniform(0, 3, (4, 3)))
    periodic = triples(*neighbor_list(positions, 4.0, cell, torch.tensor([True] * 3)))
    assert triples(*neighbor_list(positions, 4.0, cell)) == periodic  # cell given -> periodic
    molecule = triples(*neighbor_list(positions, 4.0, None, torch.tensor([False] * 3)))
    assert triples(*neighbor_list(positions, 4.0)) == molecule
    assert triples(*neighbor_list(positions, 4.0, torch.zeros(3, 3, dtype=torch.float64))) == molecule
    assert len(periodic) > len(molecule)


def test_mixed_dtypes_and_grad():
    """A float32 cell with float64 positions; positions and cell that require grad."""
    rng = np.random.default_rng(3)
    cell = (torch.eye(3) * 6.0).requires_grad_()
    positions = torch.tensor(rng.uniform(0, 6, (30, 3)), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        i, j, s = neighbor_list(positions, 4.0, cell)
    ref = neighbor_list(positions.detach(), 4.0, cell.detach().double())
    assert s.dtype == torch.float64 and not s.requires_grad
    assert triples(i, j, s) == triples(*ref)


BAD_INPUTS = [
    ("cutoff", dict(cutoff=0.0), "cutoff must be a finite number > 0"),
    ("cutoff", dict(cutoff=-1.0), "cutoff must be a finite number > 0"),
    ("cutoff", dict(cutoff=float("nan")), "cutoff must be a finite number > 0"),
    ("cutoff", dict(cutoff=float("inf")), "cutoff must be a finite number > 0"),
    ("positions", dict(positions=torch.zeros(5, 2)), r"positions must have shape \(N, 3\), got \(5, 2\)"),
    ("positions", dict(positions=torch.zeros(6)), r"positions must have shape \(N, 3\), got \(6\)"),
    ("positions", dict(positions=torch.zeros(4, 3, dtype=torch.int64)), "positions must be float32 or float64"),
    ("nan", dict(positions=torch.tensor([[0.0, 0.0, 0.0], [float("nan"), 1.0, 0.0]])), "positions must be finite"),
    ("inf", dict(positions=torch.tensor([[0.0, 0.0, float("inf")], [0.0, 1.0, 0.0]])), "positions must be finite"),
    ("cell", dict(cell=torch.eye(2)), r"cell must have shape \(3, 3\)"),
    ("cell", dict(cell=torch.tensor([[1.0, 0, 0], [0, float("nan"), 0], [0, 0, 1]])), "cell must be finite"),
    ("pbc", dict(cell=torch.eye(3) * 5, pbc=torch.tensor([True, False])), r"pbc must have shape \(3,\)"),
    ("no cell", dict(pbc=torch.tensor([True, False, False])), "periodic in some direction but no cell"),
    (
        "degenerate",
        dict(cell=torch.diag(torch.tensor([5.0, 5.0, 0.0])), pbc=torch.tensor([True, True, False])),
        "a full-rank cell",
    ),
    (
        "degenerate",
        dict(cell=torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [5.0, 5.0, 0]]), pbc=torch.tensor([True] * 3)),
        "a full-rank cell",
    ),
    ("degenerate", dict(cell=torch.zeros(3, 3), pbc=torch.tensor([True, True, True])), "a full-rank cell"),
]


@pytest.mark.parametrize("name, change, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_with_a_clear_message(name, change, message, scripted):
    args = dict(positions=torch.zeros(4, 3), cutoff=5.0, cell=None, pbc=None)
    args.update(change)
    call = (args["positions"], args["cutoff"], args["cell"], args["pbc"])
    with pytest.raises(NeighborListError, match=message):
        neighbor_list(*call)
    assert issubclass(NeighborListError, ValueError)
    with pytest.raises(torch.jit.Error, match="NeighborListError: .*" + message):
        scripted[0](*call)


@pytest.mark.parametrize(
    "batch, num_graphs, cell, message",
    [
        (torch.tensor([0, 1, 0, 1]), 2, None, "batch must be sorted"),
        (torch.tensor([0, 0, 1, 2]), 2, None, r"batch values must lie in 0 \.\. num_graphs-1"),
        (torch.tensor([0, 0, 1]), 2, None, r"batch must have shape \(N,\)"),
        (torch.tensor([0, 0, 1, 1]), 2, torch.eye(3), r"cell must have shape \(num_graphs, 3, 3\)"),
        (torch.tensor([0, 0, 1, 1]), -1, None, "num_graphs must be >= 0"),
    ],
)
def test_batched_bad_input(batch, num_graphs, cell, message, scripted):
    positions = torch.rand(4, 3)
    for fn, error in ((batched_neighbor_list, NeighborListError), (scripted[1], torch.jit.Error)):
        with pytest.raises(error, match=message):
            fn(positions, 3.0, batch, num_graphs, cell)
