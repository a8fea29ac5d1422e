"""Built-in starting geometries (GFN2-xTB minima); README.md says how each was made."""

from __future__ import annotations

from pathlib import Path

import ase.io
from ase import Atoms

from so3k.errors import MissingFileError

_HERE = Path(__file__).parent
BUILTIN = ("aspirin", "ethanol", "malonaldehyde", "uracil")


def load_molecule(name_or_path: str | Path) -> Atoms:
    """A built-in molecule by name, or any single structure file ASE can read."""
    if str(name_or_path) in BUILTIN:
        return ase.io.read(_HERE / f"{name_or_path}.xyz")
    path = Path(name_or_path)
    if not path.exists():
        raise MissingFileError(
            f"{name_or_path!r} is neither a built-in molecule ({', '.join(BUILTIN)}) nor an existing file"
        )
    atoms = ase.io.read(path)
    if len(atoms) == 0:
        raise ValueError(f"{path} holds no atoms")
    return atoms
