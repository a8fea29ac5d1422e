"""Checks that a data set is usable, with errors that name the file, the frame and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from so3k.data.frames import Frames
from so3k.errors import So3kError

MAX_ATOMIC_NUMBER = len(chemical_symbols) - 1  # 118


class DataError(So3kError, ValueError):
    """A data file cannot be used as it is; the message says where and what to do."""

    def __init__(self, source: str | Path, problem: str, frame: int | None = None, hint: str = ""):
        where = f"{source}" + (f": frame {frame}" if frame is not None else "")
        message = f"{where}: {problem}"
        if hint:
            message += f". {hint}"
        super().__init__(message)
        self.source = str(source)
        self.frame = frame
        self.problem = problem


def check_frames(
    frames: Frames,
    source: str | Path,
    *,
    require_energy: bool = False,
    require_forces: bool = False,
) -> None:
    """Raise DataError for the first problem found in ``frames`` (``source`` names the file)."""
    if len(frames) == 0:
        raise DataError(source, "contains no frames", hint="check the file and the index you read")
    empty = np.flatnonzero(frames.n_atoms == 0)
    if empty.size:
        raise DataError(source, "has no atoms", frame=int(empty[0]))

    bad_z = (frames.numbers < 1) | (frames.numbers > MAX_ATOMIC_NUMBER)
    if bad_z.any():
        atom = int(np.flatnonzero(bad_z)[0])
        raise DataError(
            source,
            f"unknown element (atomic number {int(frames.numbers[atom])}) at atom "
            f"{atom - int(frames.ptr[frames.frame_index[atom]])}",
            frame=int(frames.frame_index[atom]),
            hint="atomic numbers must be 1..118",
        )

    if require_energy and frames.energy is None:
        raise DataError(source, "has no energies", hint="name the energy key (--energy-key) or train on forces only")
    if require_forces and frames.forces is None:
        raise DataError(source, "has no forces", hint="name the forces key (--forces-key) or train on energies only")

    _check_finite(source, "positions", frames.positions, frames.frame_index)
    _check_finite(source, "cell", frames.cell.reshape(len(frames), 9), np.arange(len(frames)))
    if frames.energy is not None:
        _check_finite(source, "energy", frames.energy, np.arange(len(frames)))
    if frames.forces is not None:
        _check_finite(source, "forces", frames.forces, frames.frame_index)
    if frames.stress is not None:
        _check_finite(source, "stress", frames.stress.reshape(len(frames), 9), np.arange(len(frames)))

    periodic_flat = frames.pbc & (np.abs(np.linalg.det(frames.cell))[:, None] < 1e-9)
    if periodic_flat.any():
        k = int(np.flatnonzero(periodic_flat.any(axis=1))[0])
        raise DataError(source, "is periodic but its cell has zero volume", frame=k, hint="give the cell (Lattice=...) or set pbc to False")


def _check_finite(source, name: str, values: np.ndarray, frame_of_row: np.ndarray) -> None:
    ok = np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise DataError(source, f"{name} contain NaN or inf", frame=int(frame_of_row[row]), hint="remove or recompute that frame")
