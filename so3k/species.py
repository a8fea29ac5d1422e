"""Atomic numbers -> model species: the one mapping every front end uses.

A model's species index of an atom is the position of its element in `config.elements` (the
embedding row and the per-element energy shift). The ASE calculator, training batches, the
OpenMM force and the exported files' metadata (`elements`, `atomic_numbers`, which the LAMMPS
plugin reads to map its atom types) all follow it.
"""

from typing import Any, Sequence

import numpy as np
import torch
from ase.data import atomic_numbers as number_of_symbol
from ase.data import chemical_symbols

from .errors import UnknownElementError


def species_index(numbers: Any, elements: Sequence[str], where: str = "") -> torch.Tensor:
    """Species indices (N,) int64 of atoms with atomic numbers `numbers` (N,) for a model
    trained on `elements` (symbols); UnknownElementError names what the model does not know.
    `where` (e.g. " (structure 3)") is added to the message."""
    numbers = np.asarray(numbers.cpu() if isinstance(numbers, torch.Tensor) else numbers, dtype=np.int64).reshape(-1)
    lookup = np.full(len(chemical_symbols), -1, dtype=np.int64)
    for k, symbol in enumerate(elements):
        lookup[number_of_symbol[symbol]] = k
    valid = (numbers >= 1) & (numbers < len(chemical_symbols))
    species = np.where(valid, lookup[np.where(valid, numbers, 0)], -1)
    if (species < 0).any():
        bad = sorted({int(z) for z in numbers[species < 0]})
        names = [chemical_symbols[z] if 1 <= z < len(chemical_symbols) else f"atomic number {z}" for z in bad]
        raise UnknownElementError(
            f"element(s) {names}{where} are not known to this model, which was trained for {list(elements)}; "
            "train a model that includes them"
        )
    return torch.from_numpy(species)
