"""Data set statistics and outlier flags (``so3k data stats``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from ase.data import chemical_symbols
from ase.neighborlist import neighbor_list

from so3k.data.frames import Frames

# Flags: a force this large, or atoms this close, usually mean a broken frame or wrong units.
MAX_FORCE_FLAG = 25.0  # eV/Å
MIN_DISTANCE_FLAG = 0.75  # Å
# Energy outliers: residual after per-element reference energies, in robust standard deviations.
ENERGY_OUTLIER_SIGMA = 8.0


@dataclass
class Outlier:
    frame: int
    reason: str


@dataclass
class DatasetStats:
    n_frames: int
    n_atoms_total: int
    atoms_per_frame: tuple[int, int, float]  # min, max, mean
    elements: dict[str, int]  # symbol -> number of atoms over all frames
    periodic: bool
    energy: dict[str, float] | None  # mean, std, min, max (eV)
    energy_per_atom: dict[str, float] | None  # mean, std (eV/atom)
    energy_residual_std: float | None  # std after per-element least-squares references (eV)
    forces: dict[str, float] | None  # component mean/std, |F| mean and max (eV/Å)
    d_min: float  # smallest interatomic distance over all frames (Å)
    outliers: list[Outlier] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self, name: str = "") -> str:
        lines = [f"data set      {name}".rstrip()]
        lo, hi, mean = self.atoms_per_frame
        lines.append(f"frames        {self.n_frames}")
        lines.append(f"atoms/frame   {lo}" + (f"..{hi} (mean {mean:.1f})" if lo != hi else ""))
        lines.append("elements      " + ", ".join(f"{s} {n}" for s, n in self.elements.items()))
        lines.append(f"periodic      {'yes' if self.periodic else 'no'}")
        if self.energy:
            e = self.energy
            lines.append(f"energy (eV)   mean {e['mean']:.4f}  std {e['std']:.4f}  min {e['min']:.4f}  max {e['max']:.4f}")
            pa = self.energy_per_atom
            lines.append(f"energy/atom   mean {pa['mean']:.4f}  std {pa['std']:.4f} eV")
            lines.append(f"energy resid. std {self.energy_residual_std:.4f} eV after per-element reference energies")
        else:
            lines.append("energy        none")
        if self.forces:
            f = self.forces
            lines.append(
                f"forces (eV/Å) component mean {f['mean']:.2e}  std {f['std']:.4f}  |F| mean {f['norm_mean']:.4f}  max {f['norm_max']:.4f}"
            )
        else:
            lines.append("forces        none")
        lines.append(f"d_min (Å)     {self.d_min:.4f}")
        if self.outliers:
            lines.append(f"outliers      {len(self.outliers)} frame(s):")
            lines += [f"  frame {o.frame}: {o.reason}" for o in self.outliers[:20]]
            if len(self.outliers) > 20:
                lines.append(f"  ... and {len(self.outliers) - 20} more")
        else:
            lines.append("outliers      none")
        lines += [f"hint: {h}" for h in self.hints]
        return "\n".join(lines)


def min_distances(frames: Frames) -> np.ndarray:
    """(M,) smallest interatomic distance of each frame, minimum image for periodic frames (Å)."""
    out = np.full(len(frames), np.inf)
    ptr = frames.ptr
    for k in range(len(frames)):
        if frames.n_atoms[k] < 2 and not frames.pbc[k].any():
            continue
        if frames.pbc[k].any():
            atoms = frames.atoms(k)
            for cutoff in (3.0, 8.0):
                d = neighbor_list("d", atoms, cutoff)
                if d.size:
                    out[k] = d.min()
                    break
        else:
            r = frames.positions[ptr[k] : ptr[k + 1]]
            d = np.linalg.norm(r[:, None] - r[None], axis=-1)
            out[k] = d[np.triu_indices(len(r), 1)].min()
    return out


def element_counts(frames: Frames) -> tuple[np.ndarray, np.ndarray]:
    """(M, E) atoms of each element per frame, and the (E,) atomic numbers of the columns."""
    zs = np.unique(frames.numbers)
    col = np.searchsorted(zs, frames.numbers)
    counts = np.zeros((len(frames), zs.size))
    np.add.at(counts, (frames.frame_index, col), 1.0)
    return counts, zs


def energy_residuals(frames: Frames) -> np.ndarray:
    """(M,) energies minus per-element reference energies fitted by least squares (eV).

    Removes what composition alone explains, so frames of different molecules share one scale.
    """
    counts, _ = element_counts(frames)
    ref, *_ = np.linalg.lstsq(counts, frames.energy, rcond=None)
    return frames.energy - counts @ ref


def unit_hints(frames: Frames, dmin: np.ndarray | None = None) -> list[str]:
    """Hints at unit mistakes, too large or too small: forces, energies and distances far from
    what molecules and materials have in eV and Å. They are hints, not errors: relaxed
    structures have small forces, for instance."""
    hints: list[str] = []
    if frames.forces is not None and frames.forces.size:
        median = float(np.median(np.linalg.norm(frames.forces, axis=1)))
        if median > 5.0:
            hints.append(f"median |F| is {median:.1f} eV/Å, unusually large: if the file is in kcal/mol (kcal/mol/Å), "
                         "read it with --energy-unit kcal/mol (data.energy_unit)")
        elif 0 < median < 0.1:
            hints.append(f"median |F| is {median:.3g} eV/Å, unusually small for MD frames: if the file is in eV, do not "
                         "read it as kcal/mol or meV (--energy-unit / data.energy_unit; .npz files default to kcal/mol)")
    if frames.energy is not None and len(frames) > 2 and frames.forces is None:
        spread = float(np.std(energy_residuals(frames)))
        if 0 < spread < 1e-4:
            hints.append(f"the energies vary by {spread * 1e3:.2g} meV after per-element shifts: if they are in eV, do not "
                         "read them as meV (--energy-unit)")
    if dmin is None:
        dmin = min_distances(frames.subset(range(min(len(frames), 50))))
    finite = dmin[np.isfinite(dmin)]
    if finite.size and finite.min() < 0.3:
        hints.append("atoms closer than 0.3 Å: if the positions are in Bohr or nm, pass --length-unit")
    elif finite.size and finite.min() > 2.5:
        hints.append(f"no two atoms are closer than {finite.min():.1f} Å, unusual for bonded matter: if the positions are in "
                     "Å, do not read them as nm or Bohr (--length-unit / data.length_unit)")
    return hints


def compute_stats(frames: Frames) -> DatasetStats:
    n = frames.n_atoms
    zs, counts = np.unique(frames.numbers, return_counts=True)
    outliers: dict[int, list[str]] = {}
    hints: list[str] = []

    energy = energy_per_atom = resid_std = None
    if frames.energy is not None:
        e = frames.energy
        energy = dict(mean=float(e.mean()), std=float(e.std()), min=float(e.min()), max=float(e.max()))
        epa = e / n
        energy_per_atom = dict(mean=float(epa.mean()), std=float(epa.std()))
        resid = energy_residuals(frames)
        resid_std = float(resid.std())
        mad = 1.4826 * np.median(np.abs(resid - np.median(resid)))
        if mad > 0:
            z = np.abs(resid - np.median(resid)) / mad
            for k in np.flatnonzero(z > ENERGY_OUTLIER_SIGMA):
                outliers.setdefault(int(k), []).append(f"energy {z[k]:.0f} robust sigmas from the others")

    forces = None
    if frames.forces is not None:
        f = frames.forces
        norm = np.linalg.norm(f, axis=1)
        forces = dict(mean=float(f.mean()), std=float(f.std()), norm_mean=float(norm.mean()), norm_max=float(norm.max()))
        fmax = np.zeros(len(frames))
        np.maximum.at(fmax, frames.frame_index, norm)
        for k in np.flatnonzero(fmax > MAX_FORCE_FLAG):
            outliers.setdefault(int(k), []).append(f"|F| = {fmax[k]:.1f} eV/Å > {MAX_FORCE_FLAG:g}")

    dmin = min_distances(frames)
    for k in np.flatnonzero(dmin < MIN_DISTANCE_FLAG):
        outliers.setdefault(int(k), []).append(f"d_min = {dmin[k]:.3f} Å < {MIN_DISTANCE_FLAG:g}")
    hints += unit_hints(frames, dmin)

    return DatasetStats(
        n_frames=len(frames),
        n_atoms_total=int(n.sum()),
        atoms_per_frame=(int(n.min()), int(n.max()), float(n.mean())),
        elements={chemical_symbols[z]: int(c) for z, c in zip(zs, counts)},
        periodic=frames.periodic,
        energy=energy,
        energy_per_atom=energy_per_atom,
        energy_residual_std=resid_std,
        forces=forces,
        d_min=float(dmin.min()),
        outliers=[Outlier(k, "; ".join(r)) for k, r in sorted(outliers.items())],
        hints=hints,
    )
