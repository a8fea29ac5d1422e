"""Units: so3k works in Å, eV and eV/Å inside; everything else is converted at the boundary.

All conversion factors come from ``ase.units`` (CODATA 2014), so every part of so3k and the
engines agree to the last digit. A factor named ``X_TO_Y`` multiplies a value in X to give Y.
"""

from typing import Final

from ase import units as _u

from .errors import InputError

# energy
KCAL_PER_MOL_TO_EV: Final[float] = _u.kcal / _u.mol  # 0.0433641...
KJ_PER_MOL_TO_EV: Final[float] = _u.kJ / _u.mol  # 0.0103642...
HARTREE_TO_EV: Final[float] = _u.Hartree  # 27.2113...
EV_TO_KJ_PER_MOL: Final[float] = 1.0 / KJ_PER_MOL_TO_EV  # 96.485...

# length
BOHR_TO_ANGSTROM: Final[float] = _u.Bohr  # 0.529177...
NM_TO_ANGSTROM: Final[float] = 10.0
ANGSTROM_TO_NM: Final[float] = 0.1

# others
KB_EV_PER_K: Final[float] = _u.kB  # Boltzmann constant (eV/K)
FS: Final[float] = _u.fs  # one femtosecond in ASE time units

ENERGY_UNITS: Final[dict[str, float]] = {
    "eV": 1.0,
    "meV": 1e-3,
    "kcal/mol": KCAL_PER_MOL_TO_EV,
    "kJ/mol": KJ_PER_MOL_TO_EV,
    "Hartree": HARTREE_TO_EV,
}
LENGTH_UNITS: Final[dict[str, float]] = {
    "Angstrom": 1.0,
    "Bohr": BOHR_TO_ANGSTROM,
    "nm": NM_TO_ANGSTROM,
}
_ALIASES: Final[dict[str, str]] = {
    "ev": "eV",
    "mev": "meV",
    "kcal/mol": "kcal/mol",
    "kcal_per_mol": "kcal/mol",
    "kj/mol": "kJ/mol",
    "kj_per_mol": "kJ/mol",
    "hartree": "Hartree",
    "ha": "Hartree",
    "angstrom": "Angstrom",
    "a": "Angstrom",
    "å": "Angstrom",
    "ang": "Angstrom",
    "bohr": "Bohr",
    "nm": "nm",
}


def _lookup(name: str, table: dict[str, float], kind: str) -> float:
    key = _ALIASES.get(name.strip().lower(), name)
    if key not in table:
        raise InputError(f"unknown {kind} unit {name!r}; use one of {', '.join(table)}")
    return table[key]


def energy_to_ev(unit: str) -> float:
    """Factor that converts an energy in ``unit`` to eV."""
    return _lookup(unit, ENERGY_UNITS, "energy")


def length_to_angstrom(unit: str) -> float:
    """Factor that converts a length in ``unit`` to Å."""
    return _lookup(unit, LENGTH_UNITS, "length")
