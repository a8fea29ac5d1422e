"""Reading and writing labelled structures.

Two families of input: anything ASE can read (extended XYZ first), with energies and forces in a
SinglePointCalculator or under configurable ``info``/``arrays`` keys; and MD17/rMD17 ``.npz``
files in either key convention. Units are converted once, here, to Å / eV / eV/Å.
"""

from __future__ import annotations

import io
from pathlib import Path

import ase.io
import numpy as np
from ase.io.formats import string2index

from so3k import keys
from so3k.data.frames import Frames, voigt_to_full
from so3k.data.validate import DataError, check_frames
from so3k.units import energy_to_ev, length_to_angstrom

# MD17/rMD17 npz key conventions: (positions, atomic numbers, energies, forces).
NPZ_CONVENTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("R", "z", "E", "F"),  # MD17 / sGDML
    ("coords", "nuclear_charges", "energies", "forces"),  # rMD17
)
# Both MD17 and rMD17 store energies in kcal/mol and forces in kcal/mol/Å.
NPZ_DEFAULT_ENERGY_UNIT = "kcal/mol"


def read_frames(
    path: str | Path,
    *,
    index: str | int | slice = ":",
    energy_key: str = keys.ENERGY,
    forces_key: str = keys.FORCES,
    stress_key: str = keys.STRESS,
    energy_unit: str | None = None,
    length_unit: str = "Angstrom",
    require_energy: bool = False,
    require_forces: bool = False,
    info_keys: tuple[str, ...] | None = None,
) -> Frames:
    """Read a data file into :class:`Frames` in Å / eV / eV/Å, and check it.

    ``energy_unit`` defaults to eV for ASE formats and kcal/mol for ``.npz``. Energy keys are
    looked up in the file's calculator results, then in ``atoms.info``; forces in the calculator
    results, then in ``atoms.arrays``. Raises :class:`DataError` naming the file, frame and problem.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file")
    if path.is_dir():
        raise DataError(path, "is a directory, not a data file")
    if isinstance(index, str) and not isinstance(_as_index(index), (int, slice)):
        raise DataError(path, f"--index {index!r} is not a frame selection", hint="Use e.g. ':', '::10', '0:500' or '-1'")
    if path.suffix == ".npz":
        frames = _read_npz(path, energy_unit or NPZ_DEFAULT_ENERGY_UNIT, length_unit)
        if index != ":":
            selection = string2index(index) if isinstance(index, str) else index
            frames = frames.subset(np.atleast_1d(np.arange(len(frames))[selection]))
    else:
        frames = _read_ase(path, index, energy_key, forces_key, stress_key, energy_unit or "eV", length_unit, info_keys)
    check_frames(frames, path, require_energy=require_energy, require_forces=require_forces)
    return frames


def _as_index(index: str):
    try:
        return string2index(index)  # returns the string itself for anything it cannot parse
    except ValueError:
        return None


def write_extxyz(frames: Frames, path: str | Path) -> None:
    """Write frames as extended XYZ (compressed if the name ends in .gz, .bz2 or .xz)."""
    ase.io.write(str(path), frames.to_atoms(), format="extxyz")


# -- ASE formats -----------------------------------------------------------------------------
def _read_ase(path, index, energy_key, forces_key, stress_key, energy_unit, length_unit, info_keys) -> Frames:
    try:
        images = _ase_read(path, index)
    except KeyError as err:  # ASE raises KeyError(symbol) for an unknown element symbol
        symbol = err.args[0] if err.args else "?"
        frame = _frame_of_symbol(path, symbol)
        raise DataError(path, f"unknown element symbol {symbol!r}", frame=frame, hint="use element symbols H..Og") from None
    except StopIteration:  # ASE's readers stop this way on a file cut in the middle of a frame, too
        raise DataError(path, "contains no complete frame", hint="Is the file truncated? Check its end") from None
    except ase.io.formats.UnknownFileTypeError as err:
        problem = "contains no frames" if "Empty file" in str(err) else f"is not a format ASE can read ({err})"
        raise DataError(path, problem) from None
    except Exception as err:  # noqa: BLE001 - any parser failure is reported with the file name
        raise DataError(path, f"could not be read ({type(err).__name__}: {err})", hint="Is the file truncated or corrupt?") from None
    if not isinstance(images, list):
        images = [images]
    if not images:
        raise DataError(path, "contains no frames")

    e_scale = energy_to_ev(energy_unit)
    l_scale = length_to_angstrom(length_unit)
    energies, forces, stresses = [], [], []
    for atoms in images:
        results = atoms.calc.results if atoms.calc is not None else {}
        e = results.get(energy_key, atoms.info.get(energy_key))
        f = results.get(forces_key, atoms.arrays.get(forces_key))
        s = results.get(stress_key, atoms.info.get(stress_key))
        energies.append(None if e is None else float(np.asarray(e).reshape(-1)[0]) * e_scale)
        forces.append(None if f is None else np.asarray(f, dtype=np.float64) * (e_scale / l_scale))
        stresses.append(None if s is None else _stress_3x3(s) * (e_scale / l_scale**3))
        if l_scale != 1.0:
            atoms.positions *= l_scale
            atoms.cell *= l_scale
    if info_keys is None:  # keep the numeric per-frame scalars every frame has
        common = set.intersection(*(set(a.info) for a in images))
        info_keys = tuple(sorted(k for k in common if all(_is_scalar(a.info[k]) for a in images)))
    frames = Frames.from_atoms(images, energy=energies, forces=forces, stress=stresses, info_keys=info_keys)
    n_with_energy = sum(e is not None for e in energies)
    if 0 < n_with_energy < len(images):
        first = next(k for k, e in enumerate(energies) if e is None)
        raise DataError(path, f"has no energy under key {energy_key!r}", frame=first, hint="every frame needs one, or none")
    n_with_forces = sum(f is not None for f in forces)
    if 0 < n_with_forces < len(images):
        first = next(k for k, f in enumerate(forces) if f is None)
        raise DataError(path, f"has no forces under key {forces_key!r}", frame=first, hint="every frame needs them, or none")
    return frames


def _ase_read(path: Path, index):
    """ase.io.read, with compressed files decompressed once into memory.

    ASE's extxyz reader seeks back and forth; on an .xz/.gz stream every backward seek
    decompresses from the start again, which makes reading quadratic in the file length.
    """
    if path.suffix not in (".gz", ".xz", ".bz2"):
        return ase.io.read(str(path), index=index)
    fmt = ase.io.formats.filetype(str(path), read=True)
    with ase.io.formats.open_with_compression(str(path)) as fh:
        text = fh.read()
    if not text.strip():
        raise ase.io.formats.UnknownFileTypeError(f"Empty file: {path}")
    return ase.io.read(io.StringIO(text), index=index, format=fmt)


def _is_scalar(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _stress_3x3(s) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    if s.size == 6:
        return voigt_to_full(s)
    if s.size == 9:
        return s.reshape(3, 3)
    raise ValueError(f"stress must have 6 (Voigt) or 9 components, got {s.size}")


def _frame_of_symbol(path: Path, symbol: str) -> int | None:
    """Find the frame of an (ext)XYZ file in which ``symbol`` first appears as a species."""
    try:
        with ase.io.formats.open_with_compression(str(path)) as fh:
            lines = fh.read().splitlines()
    except Exception:  # noqa: BLE001 - best effort: the error is still raised without a frame
        return None
    k, frame = 0, 0
    while k < len(lines):
        try:
            n = int(lines[k].split()[0])
        except (ValueError, IndexError):
            return None
        for line in lines[k + 2 : k + 2 + n]:
            if line.split() and line.split()[0] == symbol:
                return frame
        k += n + 2
        frame += 1
    return None


# -- npz (MD17 / rMD17) -------------------------------------------------------------------------
def _read_npz(path: Path, energy_unit: str, length_unit: str) -> Frames:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise DataError(path, f"is not a readable .npz file ({type(err).__name__}: {err})") from None
    names = set(data.files)
    for pos_key, z_key, e_key, f_key in NPZ_CONVENTIONS:
        if pos_key in names and z_key in names:
            break
    else:
        conv = " or ".join(f"({', '.join(c)})" for c in NPZ_CONVENTIONS)
        raise DataError(path, f"has keys {sorted(names)}, expected {conv}")

    R = np.asarray(data[pos_key], dtype=np.float64)
    if R.ndim == 2:
        R = R[None]
    if R.ndim != 3 or R.shape[-1] != 3:
        raise DataError(path, f"{pos_key!r} has shape {R.shape}, expected (frames, atoms, 3)")
    m, n = R.shape[:2]
    if m == 0:
        raise DataError(path, "contains no frames")
    z = np.asarray(data[z_key]).astype(np.int64)
    if z.ndim == 1:
        if z.shape[0] != n:
            raise DataError(path, f"{z_key!r} has {z.shape[0]} atoms but {pos_key!r} has {n} per frame")
        z = np.broadcast_to(z, (m, n))
    elif z.shape != (m, n):
        raise DataError(path, f"{z_key!r} has shape {z.shape}, expected ({n},) or ({m}, {n})")

    e_scale = energy_to_ev(energy_unit)
    l_scale = length_to_angstrom(length_unit)
    energy = forces = None
    if e_key in names:
        energy = np.asarray(data[e_key], dtype=np.float64).reshape(-1)
        if energy.shape[0] != m:
            raise DataError(path, f"{e_key!r} has {energy.shape[0]} values for {m} frames")
        energy = energy * e_scale
    if f_key in names:
        forces = np.asarray(data[f_key], dtype=np.float64)
        if forces.shape != R.shape:
            raise DataError(path, f"{f_key!r} has shape {forces.shape} but {pos_key!r} has {R.shape}")
        forces = forces.reshape(-1, 3) * (e_scale / l_scale)
    return Frames(
        numbers=z.reshape(-1),
        positions=R.reshape(-1, 3) * l_scale,
        n_atoms=np.full(m, n),
        cell=np.zeros((m, 3, 3)),
        pbc=np.zeros((m, 3), dtype=bool),
        energy=energy,
        forces=forces,
    )

