"""Reference electronic-structure calculators for the generators."""

from __future__ import annotations

import os

from ase import Atoms
from ase.calculators.calculator import all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm.auto import tqdm

from so3k.errors import InputError, MissingDependencyError

# tblite and PySCF use OpenMP; one thread per process avoids oversubscribing small machines.
os.environ.setdefault("OMP_NUM_THREADS", "1")

XTB_METHODS = ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB")


def xtb_calculator(method: str = "GFN2-xTB", charge: int = 0, multiplicity: int = 1, accuracy: float = 0.01):
    """A tblite calculator that computes every call from scratch, with tight SCF convergence.

    tblite normally starts each SCF from the previous wavefunction. Starting from the same
    guess every time makes a label independent of the trajectory's history, so a resumed run
    reproduces an uninterrupted one bit for bit (the cost is ~20% per call). ``accuracy=0.01``
    makes the forces the gradient of the energy to ~1e-6 eV/Å; tblite's default (1.0) leaves
    errors up to 1e-4 eV/Å on long cumulenes, for ~20% less time.
    """
    if method not in XTB_METHODS:
        raise InputError(f"unknown xTB method {method!r}; use one of {', '.join(XTB_METHODS)}")
    try:
        from tblite.ase import TBLite
    except ImportError as err:
        raise MissingDependencyError("the xTB generators need tblite: pip install 'so3k[data]'") from err

    class StatelessTBLite(TBLite):
        def calculate(self, atoms=None, properties=None, system_changes=all_changes):
            super().calculate(atoms, properties, all_changes)

    return StatelessTBLite(method=method, charge=charge, multiplicity=multiplicity, accuracy=accuracy, verbosity=0)


def label(atoms: Atoms, calc, info: dict, stress: bool = False) -> Atoms | None:
    """``atoms`` with the reference energy and forces (and stress) frozen into a
    SinglePointCalculator and ``info`` added; None, with a message, if the calculation fails."""
    atoms.calc = calc
    try:
        results = dict(energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        if stress:
            results["stress"] = atoms.get_stress()
    except Exception as err:  # noqa: BLE001 - tblite raises plain exceptions for SCF failures
        tqdm.write(f"skipped {info}: reference calculation failed ({err})")
        return None
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info.update(info)
    return atoms
