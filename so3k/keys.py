"""Field names used across so3k, one place for all of them.

Each constant names one per-frame or per-atom quantity. Shapes use M frames, N atoms in total
over those frames; the comment after each name gives ``shape | meaning (unit)``.
"""

from typing import Final

POSITIONS: Final[str] = "positions"  # (N, 3) | Cartesian coordinates (Å)
NUMBERS: Final[str] = "numbers"  # (N,) | atomic numbers
N_ATOMS: Final[str] = "n_atoms"  # (M,) | atoms per frame
ENERGY: Final[str] = "energy"  # (M,) | total potential energy (eV)
ENERGIES: Final[str] = "energies"  # (N,) | energy of each atom (eV); ASE's name
FORCES: Final[str] = "forces"  # (N, 3) | forces (eV/Å)
VIRIAL: Final[str] = "virial"  # (M, 3, 3) | virial -dE/d(strain) (eV)
STRESS: Final[str] = "stress"  # (M, 3, 3) | stress tensor, positive under tension as in ASE (eV/Å³)
CELL: Final[str] = "cell"  # (M, 3, 3) | rows are the cell vectors (Å); zero when not periodic
PBC: Final[str] = "pbc"  # (M, 3) | periodicity along each cell vector

# Per-frame metadata written by the generators (ASE ``atoms.info`` keys).
N_CARBONS: Final[str] = "n_carbons"  # () | cumulene chain length
DIHEDRAL: Final[str] = "dihedral"  # () | angle between the two terminal CH2 planes (degrees)
ROTATION: Final[str] = "rotation"  # () | rotation of one terminal CH2 away from the minimum (degrees)
SOURCE_INDEX: Final[str] = "source_index"  # () | index of the frame in the file it was relabelled from
MD_STEP: Final[str] = "md_step"  # () | MD step at which a frame was taken
METHOD: Final[str] = "method"  # () | reference method that produced energy and forces
