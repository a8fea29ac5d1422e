"""Frames: a set of labelled structures stored as flat, concatenated numpy arrays.

Atoms of all frames are concatenated (N atoms in total over M frames); ``ptr`` gives each
frame's slice. This keeps a data set of any size as a handful of arrays instead of a list of
Python objects, and converts to and from ``ase.Atoms`` at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols


@dataclass
class Frames:
    """Labelled structures in Å / eV / eV/Å.

    ``energy``, ``forces`` and ``stress`` are None when the source has none of them.
    ``info`` holds extra per-frame scalars (e.g. the cumulene dihedral), each an (M,) array.
    """

    numbers: np.ndarray  # (N,) int64
    positions: np.ndarray  # (N, 3) float64, Å
    n_atoms: np.ndarray  # (M,) int64
    cell: np.ndarray  # (M, 3, 3) float64, Å
    pbc: np.ndarray  # (M, 3) bool
    energy: np.ndarray | None = None  # (M,) eV
    forces: np.ndarray | None = None  # (N, 3) eV/Å
    stress: np.ndarray | None = None  # (M, 3, 3) eV/Å³
    info: dict[str, np.ndarray] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """SHA-256 over the structures and labels: tells whether a file changed between two reads."""
        import hashlib

        digest = hashlib.sha256()
        for array in (self.numbers, self.positions, self.n_atoms, self.cell, self.pbc, self.energy, self.forces, self.stress):
            digest.update(b"-" if array is None else np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def __post_init__(self) -> None:
        self.numbers = np.asarray(self.numbers, dtype=np.int64)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.n_atoms = np.asarray(self.n_atoms, dtype=np.int64)
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(-1, 3, 3)
        self.pbc = np.asarray(self.pbc, dtype=bool).reshape(-1, 3)
        if self.energy is not None:
            self.energy = np.asarray(self.energy, dtype=np.float64).reshape(-1)
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64).reshape(-1, 3)
        if self.stress is not None:
            self.stress = np.asarray(self.stress, dtype=np.float64).reshape(-1, 3, 3)
        m, n = len(self.n_atoms), int(self.n_atoms.sum())
        shapes = {
            "numbers": (self.numbers.shape[0], n),
            "positions": (self.positions.shape[0], n),
            "cell": (self.cell.shape[0], m),
            "pbc": (self.pbc.shape[0], m),
        }
        if self.energy is not None:
            shapes["energy"] = (self.energy.shape[0], m)
        if self.forces is not None:
            shapes["forces"] = (self.forces.shape[0], n)
        if self.stress is not None:
            shapes["stress"] = (self.stress.shape[0], m)
        for name, value in self.info.items():
            shapes[f"info[{name}]"] = (np.shape(value)[0], m)
        bad = {k: v for k, v in shapes.items() if v[0] != v[1]}
        if bad:
            detail = ", ".join(f"{k} has {got} rows, expected {want}" for k, (got, want) in bad.items())
            raise ValueError(f"inconsistent Frames arrays: {detail}")

    # -- shape ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def ptr(self) -> np.ndarray:
        """(M+1,) offsets: frame k owns atoms ptr[k]:ptr[k+1]."""
        return np.concatenate([[0], np.cumsum(self.n_atoms)])

    @property
    def frame_index(self) -> np.ndarray:
        """(N,) the frame each atom belongs to."""
        return np.repeat(np.arange(len(self)), self.n_atoms)

    @property
    def elements(self) -> list[str]:
        """Element symbols present, ordered by atomic number."""
        return [chemical_symbols[z] for z in np.unique(self.numbers)]

    @property
    def periodic(self) -> bool:
        return bool(self.pbc.any())

    # -- selection -----------------------------------------------------------------------
    def subset(self, indices: Sequence[int] | np.ndarray) -> "Frames":
        """A new Frames with the given frames, in the given order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        ptr = self.ptr
        atom_idx = (
            np.concatenate([np.arange(ptr[k], ptr[k + 1]) for k in idx])
            if idx.size
            else np.zeros(0, dtype=np.int64)
        )
        return Frames(
            numbers=self.numbers[atom_idx],
            positions=self.positions[atom_idx],
            n_atoms=self.n_atoms[idx],
            cell=self.cell[idx],
            pbc=self.pbc[idx],
            energy=None if self.energy is None else self.energy[idx],
            forces=None if self.forces is None else self.forces[atom_idx],
            stress=None if self.stress is None else self.stress[idx],
            info={k: np.asarray(v)[idx] for k, v in self.info.items()},
        )

    # -- conversion ----------------------------------------------------------------------
    def atoms(self, k: int, ptr: np.ndarray | None = None) -> Atoms:
        """Frame ``k`` as ``ase.Atoms`` with its labels in a SinglePointCalculator.

        Pass ``ptr`` (``self.ptr``) when converting many frames: computing it is O(M).
        """
        ptr = self.ptr if ptr is None else ptr
        a, b = ptr[k], ptr[k + 1]
        atoms = Atoms(
            numbers=self.numbers[a:b],
            positions=self.positions[a:b],
            cell=self.cell[k],
            pbc=self.pbc[k],
        )
        results = {}
        if self.energy is not None:
            results["energy"] = float(self.energy[k])
        if self.forces is not None:
            results["forces"] = self.forces[a:b].copy()
        if self.stress is not None:
            results["stress"] = _full_to_voigt(self.stress[k])
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        for name, value in self.info.items():
            atoms.info[name] = np.asarray(value)[k].item()
        return atoms

    def to_atoms(self) -> list[Atoms]:
        ptr = self.ptr
        return [self.atoms(k, ptr) for k in range(len(self))]

    @classmethod
    def from_atoms(
        cls,
        frames: Iterable[Atoms],
        *,
        energy: Sequence[float | None] | None = None,
        forces: Sequence[np.ndarray | None] | None = None,
        stress: Sequence[np.ndarray | None] | None = None,
        info_keys: Sequence[str] = (),
    ) -> "Frames":
        """Build Frames from ``ase.Atoms``; labels are passed explicitly, one entry per frame.

        A label is kept only when every frame has it (None anywhere drops it for all).
        """
        frames = list(frames)
        if not frames:
            raise ValueError("no frames given")

        def stack(values, cat):
            if values is None or any(v is None for v in values):
                return None
            return cat(values)

        return cls(
            numbers=np.concatenate([a.numbers for a in frames]),
            positions=np.concatenate([a.positions for a in frames]),
            n_atoms=np.array([len(a) for a in frames]),
            cell=np.stack([np.asarray(a.cell[:]) for a in frames]),
            pbc=np.stack([a.pbc for a in frames]),
            energy=stack(energy, np.array),
            forces=stack(forces, np.concatenate),
            stress=stack(stress, np.stack),
            info={k: np.array([a.info.get(k, np.nan) for a in frames]) for k in info_keys},
        )

    @classmethod
    def concatenate(cls, parts: Sequence["Frames"]) -> "Frames":
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate")

        def cat(name):
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else np.concatenate(values)

        common = set.intersection(*(set(p.info) for p in parts))
        return cls(
            numbers=cat("numbers"),
            positions=cat("positions"),
            n_atoms=cat("n_atoms"),
            cell=cat("cell"),
            pbc=cat("pbc"),
            energy=cat("energy"),
            forces=cat("forces"),
            stress=cat("stress"),
            info={k: np.concatenate([p.info[k] for p in parts]) for k in sorted(common)},
        )


def voigt_to_full(voigt: np.ndarray) -> np.ndarray:
    """ASE's Voigt order (xx, yy, zz, yz, xz, xy) to a symmetric 3x3 tensor."""
    xx, yy, zz, yz, xz, xy = np.asarray(voigt, dtype=np.float64)
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def _full_to_voigt(t: np.ndarray) -> np.ndarray:
    return np.array([t[0, 0], t[1, 1], t[2, 2], t[1, 2], t[0, 2], t[0, 1]])
