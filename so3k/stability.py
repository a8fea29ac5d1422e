"""Is an MD trajectory still chemistry? The first frame at which it stopped being so.

A run fails at the first frame with
  - a non-finite position or temperature ("nan");
  - a bond of the starting structure stretched beyond `stretch` x its starting length ("bond broken");
  - two atoms not bonded at the start closer than their covalent bond length ("bond formed");
  - a temperature above `max_temperature` K ("temperature").
Bonds are pairs closer than 1.2 x the sum of their covalent radii in the starting structure
(ase.neighborlist.natural_cutoffs); periodic cells use the minimum image. Hydrogen bonds (about
1.8 Å for O...H) stay far from the formation bound (0.97 Å for O-H).
"""

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.geometry import get_distances

BOND_FACTOR = 1.2  # a starting pair closer than this x (r_i + r_j) is a bond
STRETCH = 1.5  # a bond longer than this x its starting length is broken


@dataclass(frozen=True)
class Failure:
    frame: int  # index into the frames given
    kind: str  # nan | bond broken | bond formed | temperature
    detail: str  # which atoms or what temperature, readable

    def __str__(self) -> str:
        return f"frame {self.frame}: {self.kind} ({self.detail})"


class BondCheck:
    """The bonds of a starting structure, and the checks of later frames against them."""

    def __init__(self, start: Atoms, stretch: float = STRETCH, max_temperature: Optional[float] = None,
                 equilibrium: Optional[np.ndarray] = None):
        """equilibrium: the length of each bond to measure stretch against, in the order of
        `bond_lengths` (e.g. its mean over a reference MD); default, its length in `start`."""
        if stretch <= 1.0:
            raise ValueError(f"stretch must be > 1 (a factor on the starting bond length), got {stretch}")
        self.cell, self.pbc = np.array(start.cell), start.pbc.copy()
        self.symbols = start.get_chemical_symbols()
        radii = covalent_radii[start.numbers]
        self.contact = radii[:, None] + radii[None, :]  # covalent bond lengths (Å)
        d = self.distances(start.positions)
        n = len(start)
        bonded = (d < BOND_FACTOR * self.contact) & ~np.eye(n, dtype=bool)
        self.i, self.j = np.nonzero(np.triu(bonded))
        self.length = d[self.i, self.j]
        self.reference = "starting"
        if equilibrium is not None:
            equilibrium = np.asarray(equilibrium, dtype=float)
            if equilibrium.shape != self.length.shape:
                raise ValueError(f"equilibrium needs one length per bond ({self.length.size}), got shape {equilibrium.shape}")
            self.length, self.reference = equilibrium, "equilibrium"
        self.unbonded = np.triu(~bonded, 1)
        self.stretch = float(stretch)
        self.max_temperature = max_temperature

    def distances(self, positions: np.ndarray) -> np.ndarray:
        periodic = bool(self.pbc.any())
        _, d = get_distances(positions, cell=self.cell if periodic else None, pbc=self.pbc if periodic else None)
        return d

    def atom(self, k: int) -> str:
        return f"{self.symbols[k]}{k}"

    def check(self, frame: int, positions: np.ndarray, temperature: Optional[float] = None) -> Optional[Failure]:
        """The failure of one frame (positions in Å, temperature in K), or None."""
        if not np.all(np.isfinite(positions)) or (temperature is not None and not np.isfinite(temperature)):
            return Failure(frame, "nan", "non-finite positions or temperature")
        d = self.distances(positions)
        ratio = d[self.i, self.j] / self.length
        if ratio.size and ratio.max() > self.stretch:
            k = int(np.argmax(ratio))
            return Failure(frame, "bond broken", f"{self.atom(self.i[k])}-{self.atom(self.j[k])} at {d[self.i[k], self.j[k]]:.2f} Å, "
                                                 f"{ratio[k]:.2f} x its {self.reference} {self.length[k]:.2f} Å")
        close = self.unbonded & (d < self.contact)
        if close.any():
            a, b = (int(v[0]) for v in np.nonzero(close))
            return Failure(frame, "bond formed", f"{self.atom(a)}-{self.atom(b)} at {d[a, b]:.2f} Å, not bonded at the start")
        if temperature is not None and self.max_temperature is not None and temperature > self.max_temperature:
            return Failure(frame, "temperature", f"{temperature:.1f} K, above the bound of {self.max_temperature:.1f} K")
        return None

    def first_failure(self, frames: Iterable[np.ndarray], temperatures: Optional[Sequence[float]] = None) -> Optional[Failure]:
        for k, positions in enumerate(frames):
            failure = self.check(k, np.asarray(positions, dtype=float), None if temperatures is None else float(temperatures[k]))
            if failure is not None:
                return failure
        return None


def first_failure(start: Atoms, frames: Iterable[np.ndarray], temperatures: Optional[Sequence[float]] = None,
                  stretch: float = STRETCH, max_temperature: Optional[float] = None) -> Optional[Failure]:
    """The first failing frame of a trajectory that started from `start` (see the module doc), or None."""
    return BondCheck(start, stretch, max_temperature).first_failure(frames, temperatures)


def bond_lengths(start: Atoms, frames: Iterable[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """(pairs (B, 2), lengths (frames, B) in Å) of the starting structure's bonds over a trajectory."""
    check = BondCheck(start)
    lengths = [check.distances(np.asarray(p, dtype=float))[check.i, check.j] for p in frames]
    return np.stack([check.i, check.j], axis=1), np.array(lengths)
