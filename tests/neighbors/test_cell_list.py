"""so3k.neighbors.neighbor_list against ase.neighborlist.neighbor_list('ijS') (exact sets)."""

import itertools

import numpy as np
import pytest
import torch

from so3k.neighbors import neighbor_list
from so3k.neighbors._binning import bin_geometry, stencil_counts


def skewed_cell(rng, lo=4.0, hi=12.0):
    """A random triclinic cell (rows = lattice vectors), rotated, far from degenerate."""
    while True:
        lengths = rng.uniform(lo, hi, 3)
        cell = np.diag(lengths) + rng.uniform(-0.6, 0.6, (3, 3)) * lengths[:, None]
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        cell = cell @ q
        if abs(np.linalg.det(cell)) > 0.3 * np.prod(np.linalg.norm(cell, axis=1)):
            return cell


def both(scripted):
    return [neighbor_list, scripted[0]]


@pytest.mark.parametrize("seed", range(10))
def test_periodic_cubic(seed, helpers, scripted):
    rng = np.random.default_rng(seed)
    length = rng.uniform(4.0, 12.0)
    cell = np.eye(3) * length
    positions = rng.uniform(0.0, 1.0, (rng.integers(1, 80), 3)) @ cell
    cutoff = rng.uniform(1.5, 6.0)
    for fn in both(scripted):
        helpers.check_against_ase(fn, positions, cutoff, cell, (True, True, True))


@pytest.mark.parametrize("seed", range(12))
def test_periodic_triclinic_atoms_outside_cell(seed, helpers, scripted):
    """Fractional coordinates in [-1.3, 2.7): offsets refer to the unwrapped positions."""
    rng = np.random.default_rng(100 + seed)
    cell = skewed_cell(rng)
    positions = rng.uniform(-1.3, 2.7, (rng.integers(1, 80), 3)) @ cell
    cutoff = rng.uniform(1.5, 7.0)
    for fn in both(scripted):
        helpers.check_against_ase(fn, positions, cutoff, cell, (True, True, True))


@pytest.mark.parametrize("pbc", list(itertools.product([False, True], repeat=3)))
@pytest.mark.parametrize("seed", range(3))
def test_partially_periodic(pbc, seed, helpers, scripted):
    rng = np.random.default_rng(200 + seed)
    cell = skewed_cell(rng, 3.0, 9.0)
    positions = rng.uniform(-1.3, 2.7, (rng.integers(2, 90), 3)) @ cell
    cutoff = rng.uniform(2.0, 6.0)
    for fn in both(scripted):
        helpers.check_against_ase(fn, positions, cutoff, cell, pbc)


@pytest.mark.parametrize(
    "lengths, n_atoms, cutoff, pbc",
    [
        ((2.0, 2.0, 2.0), 1, 5.0, (True, True, True)),  # one atom, many of its own images
        ((2.0, 2.0, 2.0), 4, 5.0, (True, True, True)),
        ((1.5, 2.5, 9.0), 3, 4.5, (True, True, True)),  # small in two directions only
        ((9.0, 9.0, 1.2), 5, 4.0, (True, True, True)),  # thin in one direction
        ((2.0, 2.0, 2.0), 3, 5.0, (True, True, False)),  # thin slab, non-periodic z
        ((1.0, 8.0, 8.0), 6, 3.3, (True, False, False)),  # wire
        ((3.0, 3.0, 3.0), 2, 10.0, (True, True, True)),  # very large cutoff
    ],
)
@pytest.mark.parametrize("seed", range(3))
def test_cells_smaller_than_cutoff(lengths, n_atoms, cutoff, pbc, seed, helpers, scripted):
    rng = np.random.default_rng(300 + seed)
    cell = np.diag(lengths) + rng.uniform(-0.2, 0.2, (3, 3)) * np.array(lengths)[:, None]
    positions = rng.uniform(-1.3, 2.7, (n_atoms, 3)) @ cell
    for fn in both(scripted):
        n_pairs = helpers.check_against_ase(fn, positions, cutoff, cell, pbc)
    if n_atoms == 1 and all(pbc):
        assert n_pairs > 6  # the atom's own images


@pytest.mark.parametrize("seed", range(10))
def test_molecules(seed, helpers, scripted):
    """No cell (None or zeros): small ones use all pairs, large ones the cell list."""
    rng = np.random.default_rng(400 + seed)
    n_atoms = [1, 2, 21, 64, 65, 150, 300][seed % 7]
    positions = rng.normal(0.0, 0.6 * n_atoms ** (1 / 3) + 0.5, (n_atoms, 3)) + rng.uniform(-50, 50, 3)
    cutoff = rng.uniform(1.5, 6.0)
    for fn in both(scripted):
        helpers.check_against_ase(fn, positions, cutoff, None, (False, False, False))
        helpers.check_against_ase(fn, positions, cutoff, np.zeros((3, 3)), (False, False, False))
        helpers.check_against_ase(fn, positions, cutoff, None, (False, False, False), pass_pbc=False)


def test_sparse_molecule_caps_the_bins(helpers, scripted):
    """Atoms spread over ~1000 Å (plus two dense clumps): bins are capped, result still exact."""
    rng = np.random.default_rng(7)
    positions = np.concatenate(
        [rng.uniform(-500, 500, (200, 3)), rng.normal(0, 1.5, (60, 3)), rng.normal(400, 1.5, (60, 3))]
    )
    for fn in both(scripted):
        assert helpers.check_against_ase(fn, positions, 4.0) > 0
    _, _, nbins, _ = bin_geometry(torch.as_tensor(positions), None, [False] * 3, 4.0, 2, 2 * len(positions))
    assert np.prod(nbins) <= 2 * len(positions)


def test_sparse_periodic_box_caps_the_bins(helpers):
    rng = np.random.default_rng(8)
    cell = np.diag([150.0, 120.0, 140.0])  # (ASE itself is slow for much larger sparse boxes)
    positions = np.concatenate([rng.uniform(0, 1, (30, 3)) @ cell, rng.normal(100, 1.0, (30, 3))])
    assert helpers.check_against_ase(neighbor_list, positions, 5.0, cell, (True, True, True)) > 0
    pos_t, cell_t = torch.as_tensor(positions), torch.as_tensor(cell)
    _, _, nbins, _ = bin_geometry(pos_t, cell_t, [True] * 3, 5.0, 2, 2 * len(positions))
    assert np.prod(nbins) <= 2 * len(positions)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "cell, pbc",
    [(None, None), (None, [False] * 3), (torch.eye(3) * 5, [True] * 3), (torch.eye(3) * 5, [True, False, True])],
)
def test_empty_input(dtype, cell, pbc, scripted):
    positions = torch.zeros(0, 3, dtype=dtype)
    pbc_t = None if pbc is None else torch.tensor(pbc)
    cell_t = None if cell is None else cell.to(dtype)
    for fn in both(scripted):
        idx_i, idx_j, offsets = fn(positions, 5.0, cell_t, pbc_t)
        assert idx_i.shape == (0,) and idx_j.shape == (0,) and offsets.shape == (0, 3)
        assert idx_i.dtype == idx_j.dtype == torch.int64 and offsets.dtype == dtype


def test_single_atom(helpers, scripted):
    for fn in both(scripted):
        assert helpers.check_against_ase(fn, [[0.3, -0.2, 1.0]], 5.0) == 0
        assert helpers.check_against_ase(fn, [[0.3, -0.2, 1.0]], 5.0, np.eye(3) * 10, (True,) * 3) == 0
        # 3 Å cube, cutoff 5: images at 3 and 3√2 Å (3√3 > 5) -> 6 + 12
        assert helpers.check_against_ase(fn, [[0.3, -0.2, 1.0]], 5.0, np.eye(3) * 3, (True,) * 3) == 18
        assert helpers.check_against_ase(fn, [[0.3, -0.2, 1.0]], 5.0, np.eye(3) * 3, (True, False, True)) == 8


def test_distance_equal_to_cutoff_is_excluded(helpers, scripted):
    """ASE keeps d < cutoff (strict): pairs at exactly the cutoff are dropped, like ASE."""
    cell = np.eye(3) * 2.0  # integer geometry: all distances are computed exactly
    positions = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-2.0, 4.0, 6.0]]
    for fn in both(scripted):
        n_excl = helpers.check_against_ase(fn, positions, 4.0, cell, (True,) * 3)
        n_incl = helpers.check_against_ase(fn, positions, 4.0 + 1e-9, cell, (True,) * 3)
        assert n_incl > n_excl
        assert helpers.check_against_ase(fn, [[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]], 5.0) == 0
        assert helpers.check_against_ase(fn, [[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]], 5.0 + 1e-12) == 2


def test_atoms_on_cell_faces(helpers, scripted):
    """Fractional coordinates exactly 0, 1, -1, 2 (wrapping edge cases)."""
    cell = np.array([[4.0, 0.0, 0.0], [1.0, 4.0, 0.0], [0.5, -1.0, 4.0]])
    frac = np.array([[0, 0, 0], [1, 0, 0], [0, -1, 1], [2, 1, -1], [0.5, 1, 0], [1, 1, 1]], dtype=float)
    for fn in both(scripted):
        helpers.check_against_ase(fn, frac @ cell, 4.3, cell, (True,) * 3)
        helpers.check_against_ase(fn, frac @ cell, 4.3, cell, (True, False, True))


@pytest.mark.parametrize("seed", range(4))
def test_float32(seed, helpers, scripted):
    """float32 works: same pairs as ASE (float64) except possibly within rounding of the cutoff."""
    rng = np.random.default_rng(500 + seed)
    cell = skewed_cell(rng)
    positions = rng.uniform(-1.3, 2.7, (rng.integers(20, 120), 3)) @ cell
    cutoff = float(rng.uniform(2.0, 6.0))
    ref, ref_d = helpers.ase_reference(positions, cutoff, cell, (True, True, True))
    for fn in both(scripted):
        pos32, cell32 = torch.tensor(positions, dtype=torch.float32), torch.tensor(cell, dtype=torch.float32)
        idx_i, idx_j, offsets = fn(pos32, cutoff, cell32, torch.tensor([True] * 3))
        assert offsets.dtype == torch.float32
        got = helpers.as_triples(idx_i, idx_j, offsets)
        assert len(set(got)) == len(got)
        for i, j, s in set(got) ^ set(ref):
            d = np.linalg.norm(positions[j] - positions[i] + np.array(s) @ cell)
            assert abs(d - cutoff) < 1e-4
        assert len(set(got) ^ set(ref)) <= 2


@pytest.mark.parametrize("seed", range(3))
def test_scripted_equals_eager(seed, scripted):
    rng = np.random.default_rng(600 + seed)
    cell = torch.tensor(skewed_cell(rng, 3.0, 10.0))
    positions = torch.tensor(rng.uniform(-1.3, 2.7, (200, 3))) @ cell
    cases = [(cell, torch.tensor([True] * 3)), (cell, torch.tensor([True, False, True])), (None, None)]
    for dtype in (torch.float32, torch.float64):
        for cell_c, pbc in cases:
            cell_d = None if cell_c is None else cell_c.to(dtype)
            eager = neighbor_list(positions.to(dtype), 4.5, cell_d, pbc)
            script = scripted[0](positions.to(dtype), 4.5, cell_d, pbc)
            for a, b in zip(eager, script):
                assert a.dtype == b.dtype and torch.equal(a, b)


def test_pairs_come_in_mirror_pairs():
    rng = np.random.default_rng(9)
    cell = torch.tensor(skewed_cell(rng, 3.0, 6.0))
    positions = torch.tensor(rng.uniform(-1, 2, (40, 3))) @ cell
    idx_i, idx_j, offsets = neighbor_list(positions, 5.0, cell, torch.tensor([True, True, False]))
    fwd = set(zip(idx_i.tolist(), idx_j.tolist(), map(tuple, offsets.long().tolist())))
    rev = set(zip(idx_j.tolist(), idx_i.tolist(), map(tuple, (-offsets).long().tolist())))
    assert fwd == rev and len(fwd) == len(idx_i)


def water_box(n_molecules, seed=0):
    """Random water at 1 g/cm³ in a cubic box (positions as float64 tensor, cell)."""
    rng = np.random.default_rng(seed)
    length = (n_molecules * 18.015 / 0.60221) ** (1 / 3)
    k = int(np.ceil(n_molecules ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n_molecules]
    oxygen = (grid + 0.5) * (length / k) + rng.normal(0, 0.3, (n_molecules, 3))
    h1 = oxygen + 0.96 * rng.normal(size=(n_molecules, 3)) / np.sqrt(3)
    h2 = oxygen + 0.96 * rng.normal(size=(n_molecules, 3)) / np.sqrt(3)
    positions = np.stack([oxygen, h1, h2], 1).reshape(-1, 3)
    return positions, np.eye(3) * length


def test_water_box_agrees_with_ase(helpers):
    positions, cell = water_box(512)
    n_pairs = helpers.check_against_ase(neighbor_list, positions, 5.0, cell, (True,) * 3)
    assert 45 < n_pairs / len(positions) < 65


def test_cost_is_linear_in_the_number_of_atoms():
    """Candidates examined per atom do not grow with N, and a 12,288-atom box runs (no timing)."""
    per_atom = []
    for n_molecules in (512, 4096):
        positions, cell = water_box(n_molecules, seed=1)
        pos_t, cell_t = torch.as_tensor(positions), torch.as_tensor(cell)
        bin3, _, nbins, reach = bin_geometry(pos_t, cell_t, [True] * 3, 5.0, 2, 2 * len(positions))
        bin_id = bin3[:, 0] + nbins[0] * (bin3[:, 1] + nbins[1] * bin3[:, 2])
        counts = torch.bincount(bin_id, minlength=int(np.prod(nbins)))
        per_atom.append(float(stencil_counts(counts, nbins, reach, [True] * 3)[bin_id].double().mean()))
        idx_i, _, _ = neighbor_list(pos_t, 5.0, cell_t, torch.tensor([True] * 3))
        assert 45 < len(idx_i) / len(positions) < 65
    assert per_atom[1] < 1.2 * per_atom[0]
    assert per_atom[1] < 12 * 55  # a few times the neighbours inside the 5 Å sphere
