"""From ASE structures to the explicit tensors of the model: where pair lists are built for
Python-side use (calculator, tests, training batches) and structures are checked first."""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from ase import Atoms
from torch import Tensor

from .errors import StructureError
from .geometry import pair_shifts, pair_vectors
from .neighbors import neighbor_list
from .species import species_index


@dataclass
class Graph:
    """A batch of structures as tensors (shapes: N atoms, P pairs, B structures)."""

    positions: Tensor  # (N, 3) Å
    species: Tensor  # (N,) int64 index into the model's elements
    idx_i: Tensor  # (P,) int64 centre atom
    idx_j: Tensor  # (P,) int64 neighbour atom
    offsets: Tensor  # (P, 3) integer cell offsets of j, in the float dtype
    cell: Tensor  # (B, 3, 3) rows = lattice vectors (zeros if not periodic)
    pbc: Tensor  # (B, 3) bool
    batch: Tensor  # (N,) int64 structure of each atom
    num_graphs: int

    def inputs(self) -> Dict[str, Union[Tensor, int]]:
        """Keyword arguments for ForceField.forward."""
        return dict(
            positions=self.positions, species=self.species, idx_i=self.idx_i, idx_j=self.idx_j,
            offsets=self.offsets, cell=self.cell, batch=self.batch, num_graphs=self.num_graphs,
        )

    def shifts(self) -> Tensor:
        """(P, 3) Cartesian shift of each pair (Å)."""
        return pair_shifts(self.offsets, self.cell, self.batch.index_select(0, self.idx_i))


def check_structure(atoms: Atoms, elements: Sequence[str], index: Optional[int] = None) -> Tensor:
    """Refuse what would give meaningless energies, saying what is wrong and what to do; the
    atoms' species (N,) for a model of `elements` if all is well."""
    where = "" if index is None else f" (structure {index})"
    if len(atoms) == 0:
        raise StructureError(f"empty structure{where}: a model needs at least one atom")
    positions = atoms.get_positions()
    if not np.isfinite(positions).all():
        bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
        raise StructureError(f"non-finite (NaN or inf) positions{where} for atom(s) {bad[:10].tolist()}")
    species = species_index(atoms.numbers, elements, where)
    if atoms.pbc.any():
        lengths = np.linalg.norm(atoms.cell.array, axis=1)
        if (lengths[atoms.pbc] == 0).any() or abs(np.linalg.det(atoms.cell.complete())) < 1e-12:
            raise StructureError(
                f"periodic structure{where} with a zero-volume cell: give every periodic direction a cell "
                "vector (atoms.cell) or set atoms.pbc = False"
            )
    return species


def build_graph(
    structures: Sequence[Atoms],
    elements: Sequence[str],
    cutoff: float,
    dtype: torch.dtype = torch.float64,
    device: Union[str, torch.device] = "cpu",
    min_distance: float = 0.5,
) -> Graph:
    """Pair lists (cutoff in Å) and species for a list of structures; validates each one
    (overlapping atoms are found on the pair list: any pair closer than min_distance Å)."""
    parts: Dict[str, List[Tensor]] = {k: [] for k in ("positions", "species", "idx_i", "idx_j", "offsets", "cell", "pbc", "batch")}
    start = 0
    for b, atoms in enumerate(structures):
        species = check_structure(atoms, elements, index=b if len(structures) > 1 else None)
        # centred in float64 first: float32 would otherwise lose accuracy with the absolute position
        # (1e4 Å from the origin leaves ~1e-3 Å); a uniform shift changes no pair, energy or force
        xyz = atoms.get_positions()
        positions = torch.tensor(xyz - xyz.mean(axis=0), dtype=dtype, device=device)
        pbc = torch.tensor(atoms.pbc, dtype=torch.bool, device=device)
        # A slab may leave its non-periodic vector zero; complete() fills it in, which changes no pair.
        cell = np.asarray(atoms.cell.complete() if atoms.pbc.any() else atoms.cell.array, dtype=float)
        cell = torch.tensor(cell, dtype=dtype, device=device)
        idx_i, idx_j, offsets = neighbor_list(positions, cutoff, cell if bool(pbc.any()) else None, pbc)
        if min_distance > 0 and idx_i.numel() > 0:
            r_ij = pair_vectors(positions, idx_i, idx_j, pair_shifts(offsets, cell))
            d_ij = torch.linalg.norm(r_ij, dim=1)
            k = int(torch.argmin(d_ij))
            if float(d_ij[k]) < min_distance:
                where = "" if len(structures) == 1 else f" in structure {b}"
                raise StructureError(
                    f"atoms {int(idx_i[k])} and {int(idx_j[k])}{where} are {float(d_ij[k]):.3f} Å apart, closer than "
                    f"{min_distance} Å: overlapping atoms (check units: positions must be in Å)"
                )
        parts["positions"].append(positions)
        parts["species"].append(species.to(device))
        parts["idx_i"].append(idx_i + start)
        parts["idx_j"].append(idx_j + start)
        parts["offsets"].append(offsets)
        parts["cell"].append(cell)
        parts["pbc"].append(pbc)
        parts["batch"].append(torch.full((len(atoms),), b, dtype=torch.long, device=device))
        start += len(atoms)
    return Graph(
        positions=torch.cat(parts["positions"]),
        species=torch.cat(parts["species"]),
        idx_i=torch.cat(parts["idx_i"]),
        idx_j=torch.cat(parts["idx_j"]),
        offsets=torch.cat(parts["offsets"]),
        cell=torch.stack(parts["cell"]),
        pbc=torch.stack(parts["pbc"]),
        batch=torch.cat(parts["batch"]),
        num_graphs=len(structures),
    )
