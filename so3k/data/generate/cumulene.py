"""Cumulenes H2C=(C=)_{n-2}CH2: the non-local data set and rigid torsion scans.

The relative rotation of the two terminal CH2 planes sets the energy through the conjugated π
system however long the chain is: the minimum is coplanar when the number of double bonds (n-1)
is odd and perpendicular when it is even. A rigid rotation of one end changes no interatomic
distance below 5 Å once n >= 4, so a model whose receptive field does not span the chain cannot
see it. Frames are independent: frame k uses its own generator seeded by (seed, k), so a resumed
run reproduces an uninterrupted one exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms
from tqdm.auto import tqdm

from so3k import keys
from so3k.data.generate.reference import XTB_METHODS, label, xtb_calculator
from so3k.data.generate.sink import FrameSink, add_output_options, run_generator
from so3k.errors import InputError

CC_BOND = 1.30  # Å, starting C=C length before optimisation
CH_BOND = 1.09  # Å
HCH_ANGLE = 117.0  # degrees

# Both parities of the double-bond count on both sides of 16 Å (the end gap of 14 carbons), with
# 11-12, 15-16, 19-20 and 23-24 held out for the scans.
TRAIN_LENGTHS = (3, 4, 5, 6, 7, 8, 9, 10, 13, 14, 17, 18, 21, 22)
SCAN_LENGTHS = tuple(range(3, 25))


def minimum_dihedral(n_carbons: int) -> float:
    """Dihedral between the CH2 planes at the minimum: 90° for an even number of C=C bonds."""
    return 90.0 if (n_carbons - 1) % 2 == 0 else 0.0


def build_cumulene(n_carbons: int, dihedral: float = 0.0) -> Atoms:
    """An idealised cumulene along z: carbons 0..n-1, then the two H of the first and last carbon.

    ``dihedral`` is the angle (degrees) between the two terminal H-C-H planes.
    """
    if n_carbons < 2:
        raise InputError(f"a cumulene needs at least 2 carbons, got {n_carbons}")
    z = np.arange(n_carbons) * CC_BOND
    carbons = np.stack([np.zeros(n_carbons), np.zeros(n_carbons), z], axis=1)
    half = np.radians(HCH_ANGLE / 2)
    # H of the first carbon in the xz plane pointing away (-z); those of the last one rotated.
    h_first = [[s * CH_BOND * np.sin(half), 0.0, -CH_BOND * np.cos(half)] for s in (1, -1)]
    phi = np.radians(dihedral)
    h_last = [
        [s * CH_BOND * np.sin(half) * np.cos(phi), s * CH_BOND * np.sin(half) * np.sin(phi), z[-1] + CH_BOND * np.cos(half)]
        for s in (1, -1)
    ]
    return Atoms(f"C{n_carbons}H4", positions=np.concatenate([carbons, h_first, h_last]))


def rotate_end(atoms: Atoms, angle: float) -> Atoms:
    """Rigidly rotate the last CH2 group's hydrogens by ``angle`` degrees about the C1...Cn axis."""
    n = len(atoms) - 4
    out = atoms.copy()
    axis_origin = atoms.positions[n - 1]
    axis = atoms.positions[n - 1] - atoms.positions[0]
    axis /= np.linalg.norm(axis)
    theta = np.radians(angle)
    for i in (n + 2, n + 3):
        v = atoms.positions[i] - axis_origin
        # Rodrigues' rotation formula
        v_rot = v * np.cos(theta) + np.cross(axis, v) * np.sin(theta) + axis * np.dot(axis, v) * (1 - np.cos(theta))
        out.positions[i] = axis_origin + v_rot
    return out


def measure_dihedral(atoms: Atoms) -> float:
    """Angle between the two terminal CH2 planes, folded into [0°, 90°]."""
    n = len(atoms) - 4
    r = atoms.positions
    axis = r[n - 1] - r[0]
    axis /= np.linalg.norm(axis)

    def hh(i, j):  # H-H vector projected onto the plane perpendicular to the chain
        v = r[j] - r[i]
        v = v - axis * np.dot(axis, v)
        return v / np.linalg.norm(v)

    cos = abs(float(np.dot(hh(n, n + 1), hh(n + 2, n + 3))))
    return float(np.degrees(np.arccos(np.clip(cos, 0.0, 1.0))))


def optimised_cumulene(n_carbons: int, method: str = "GFN2-xTB", fmax: float = 0.01) -> Atoms:
    """The cumulene relaxed at its minimum dihedral (quiet BFGS)."""
    from ase.optimize import BFGS

    atoms = build_cumulene(n_carbons, minimum_dihedral(n_carbons))
    atoms.calc = xtb_calculator(method)
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=500)
    atoms.calc = None
    return atoms


def _lengths(values) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)
    if not out or min(out) < 3:
        raise InputError(f"chain lengths must be >= 3 carbons, got {list(values)}")
    return out


@dataclass
class CumuleneConfig:
    """Random terminal rotations within [0, max_rotation] of the minimum, plus a Gaussian rattle."""

    n_frames: int = 500
    lengths: tuple[int, ...] = TRAIN_LENGTHS
    max_rotation: float = 70.0  # degrees; closed-shell references fail near 90° (diradical)
    rattle: float = 0.02  # Å
    method: str = "GFN2-xTB"
    fmax: float = 0.01  # eV/Å, relaxation of each chain at its minimum
    seed: int = 0

    def __post_init__(self) -> None:
        self.lengths = _lengths(self.lengths)
        if self.n_frames < 1:
            raise InputError(f"n_frames must be >= 1, got {self.n_frames}")
        if not 0.0 <= self.max_rotation <= 90.0:
            raise InputError(f"max_rotation must be in [0, 90] degrees, got {self.max_rotation}")
        if self.rattle < 0:
            raise InputError(f"rattle must be >= 0 Å, got {self.rattle}")
        if self.method not in XTB_METHODS:
            raise InputError(f"method must be one of {', '.join(XTB_METHODS)}, got {self.method!r}")


@dataclass
class ScanConfig:
    """Rigid rotations of one terminal CH2 from the minimum, 0..max_rotation in n_points steps."""

    lengths: tuple[int, ...] = SCAN_LENGTHS
    max_rotation: float = 90.0
    n_points: int = 19
    method: str = "GFN2-xTB"
    fmax: float = 0.01
    seed: int = 0  # unused by the scan itself; kept so every generator takes --seed

    def __post_init__(self) -> None:
        self.lengths = _lengths(self.lengths)
        if self.n_points < 2:
            raise InputError(f"n_points must be >= 2, got {self.n_points}")
        if not 0.0 < self.max_rotation <= 180.0:
            raise InputError(f"max_rotation must be in (0, 180] degrees, got {self.max_rotation}")
        if self.method not in XTB_METHODS:
            raise InputError(f"method must be one of {', '.join(XTB_METHODS)}, got {self.method!r}")


def _info(n: int, rotation: float) -> dict:
    phi = (minimum_dihedral(n) + rotation) % 180.0
    return {keys.N_CARBONS: n, keys.ROTATION: float(rotation), keys.DIHEDRAL: float(min(phi, 180.0 - phi))}


def generate_cumulene(
    config: CumuleneConfig, out: str | Path, *, resume=False, overwrite=False, progress=True, command=None
) -> Path:
    """Write ``config.n_frames`` randomly rotated, rattled cumulenes with xTB labels."""
    minima = _Minima(config.method, config.fmax)

    def make(k: int) -> tuple[Atoms, int, float]:
        rng = np.random.default_rng([config.seed, k])
        n = int(rng.choice(config.lengths))
        rotation = float(rng.uniform(0.0, config.max_rotation))
        atoms = rotate_end(minima(n), rotation)
        atoms.positions += rng.normal(scale=config.rattle, size=atoms.positions.shape)
        return atoms, n, rotation

    return _write_frames(config, out, config.n_frames, make, "cumulene", resume, overwrite, progress, command)


def generate_scan(config: ScanConfig, out: str | Path, *, resume=False, overwrite=False, progress=True, command=None) -> Path:
    """Write rigid torsion scans, one per chain length."""
    minima = _Minima(config.method, config.fmax)
    jobs = [(n, float(r)) for n in config.lengths for r in np.linspace(0.0, config.max_rotation, config.n_points)]

    def make(k: int) -> tuple[Atoms, int, float]:
        n, rotation = jobs[k]
        return rotate_end(minima(n), rotation), n, rotation

    return _write_frames(config, out, len(jobs), make, "scan", resume, overwrite, progress, command)


class _Minima:
    """Relaxed cumulenes by chain length, each relaxed once."""

    def __init__(self, method: str, fmax: float):
        self.method, self.fmax, self.cache = method, fmax, {}

    def __call__(self, n: int) -> Atoms:
        if n not in self.cache:
            self.cache[n] = optimised_cumulene(n, self.method, self.fmax)
        return self.cache[n]


def _write_frames(config, out, n_jobs, make, desc, resume, overwrite, progress, command) -> Path:
    """Label frames ``make(k)`` for k < n_jobs; frames are independent, so resuming is restarting at k."""
    sink = FrameSink(out, asdict(config), resume=resume, overwrite=overwrite)
    if sink.complete:
        return sink.target
    calc = xtb_calculator(config.method)
    start, skipped = sink.extra.get("next", 0), sink.extra.get("skipped", [])
    try:
        with tqdm(total=n_jobs, initial=start, disable=not progress, desc=desc, unit="frame") as bar:
            for k in range(start, n_jobs):
                atoms, n, rotation = make(k)
                frame = label(atoms, calc, {**_info(n, rotation), keys.METHOD: config.method})
                if frame is None:
                    skipped.append({"frame": k, keys.N_CARBONS: n, keys.ROTATION: rotation})
                    sink.skip({"next": k + 1, "skipped": skipped})
                else:
                    sink.append(frame, {"next": k + 1, "skipped": skipped})
                bar.update()
    finally:
        sink.close()
    return sink.finish({"command": command or "(Python API)", "method": config.method, "skipped": skipped})


def _int_list(text: str) -> tuple[int, ...]:
    """'3-10,13,14' -> (3, 4, ..., 10, 13, 14)."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return tuple(out)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("cumulene", help="non-local cumulene set: random terminal rotations, xTB labels")
    p.add_argument("--frames", dest="n_frames", type=int, default=CumuleneConfig.n_frames, help="number of frames (default 500)")
    p.add_argument("--lengths", type=_int_list, default=TRAIN_LENGTHS, help="carbon counts, e.g. 3-10,13,14,17,18,21,22 (default)")
    p.add_argument("--max-rotation", type=float, default=70.0, help="largest rotation from the minimum, degrees (default 70)")
    p.add_argument("--rattle", type=float, default=0.02, help="Gaussian displacement of every atom, Å (default 0.02)")
    p.add_argument("--method", default="GFN2-xTB", choices=XTB_METHODS)
    add_output_options(p, "cumulene.extxyz")
    p.set_defaults(func=partial(run_generator, CumuleneConfig, generate_cumulene))

    s = subparsers.add_parser("scan", help="rigid cumulene torsion scans per chain length, xTB labels")
    s.add_argument("--lengths", type=_int_list, default=SCAN_LENGTHS, help="carbon counts, e.g. 3-24 (default)")
    s.add_argument("--max-rotation", type=float, default=90.0, help="last rotation from the minimum, degrees (default 90)")
    s.add_argument("--points", dest="n_points", type=int, default=19, help="points per scan (default 19: every 5 degrees)")
    s.add_argument("--method", default="GFN2-xTB", choices=XTB_METHODS)
    add_output_options(s, "cumulene-scan.extxyz")
    s.set_defaults(func=partial(run_generator, ScanConfig, generate_scan))
