"""Shared helpers for the neighbour-list tests: ASE reference and set comparison."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

from so3k.neighbors import batched_neighbor_list, neighbor_list


def ase_reference(positions, cutoff, cell=None, pbc=(False, False, False)):
    """ASE's (i, j, S) as a sorted list of tuples, and {triple: distance}."""
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    atoms = Atoms(positions=np.asarray(positions, dtype=np.float64).reshape(-1, 3), cell=cell, pbc=pbc)
    i, j, S, d = ase_neighbor_list("ijSd", atoms, cutoff)
    triples = [(a, b, tuple(s)) for a, b, s in zip(i.tolist(), j.tolist(), S.tolist())]
    return sorted(triples), dict(zip(triples, d.tolist()))


def as_triples(idx_i, idx_j, offsets):
    """Our output as a list of (i, j, S) tuples (unsorted, duplicates kept)."""
    shifts = offsets.detach().cpu().double().numpy()
    assert np.array_equal(shifts, np.round(shifts)), "offsets must be integer-valued"
    return [(a, b, tuple(s)) for a, b, s in zip(idx_i.tolist(), idx_j.tolist(), shifts.astype(np.int64).tolist())]


def distances(positions, cell, idx_i, idx_j, offsets):
    cell = torch.zeros(3, 3, dtype=positions.dtype) if cell is None else cell.to(positions.dtype)
    vec = positions[idx_j] - positions[idx_i] + offsets @ cell
    return vec.norm(dim=1)


def check_against_ase(fn, positions, cutoff, cell=None, pbc=(False, False, False), pass_pbc=True):
    """Run `fn` (neighbor_list, eager or scripted) in float64 and compare exactly with ASE.

    Returns the number of pairs."""
    pos_t = torch.as_tensor(np.asarray(positions, dtype=np.float64).reshape(-1, 3))
    cell_t = None if cell is None else torch.as_tensor(np.asarray(cell, dtype=np.float64))
    pbc_t = torch.tensor(list(pbc), dtype=torch.bool) if pass_pbc else None
    idx_i, idx_j, offsets = fn(pos_t, cutoff, cell_t, pbc_t)
    assert idx_i.dtype == torch.int64 and idx_j.dtype == torch.int64
    assert offsets.dtype == torch.float64 and offsets.shape == (idx_i.shape[0], 3)
    got = as_triples(idx_i, idx_j, offsets)
    assert len(set(got)) == len(got), "a pair appears twice"
    ref, ref_d = ase_reference(positions, cutoff, cell, pbc)
    assert sorted(got) == ref
    if got:
        d = distances(pos_t, cell_t, idx_i, idx_j, offsets).numpy()
        np.testing.assert_allclose(d, [ref_d[t] for t in got], rtol=0, atol=1e-12)
        assert d.max() < cutoff
    return len(ref)


@pytest.fixture(scope="session")
def scripted():
    """(neighbor_list, batched_neighbor_list) compiled with torch.jit.script."""
    return torch.jit.script(neighbor_list), torch.jit.script(batched_neighbor_list)


@pytest.fixture
def helpers():
    """check_against_ase, ase_reference, as_triples, distances."""
    return SimpleNamespace(
        check_against_ase=check_against_ase, ase_reference=ase_reference, as_triples=as_triples, distances=distances
    )
