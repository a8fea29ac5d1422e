"""Running the wheel's `lmp` and reading what it prints: one place for the demo, the tests and
the benchmark."""

import re
from typing import Dict, List

import numpy as np

from .build import lmp_executable


def lmp_command(ranks: int = 1) -> List[str]:
    """argv prefix for `lmp` on `ranks` MPI ranks (the MPICH `mpirun` installed beside it)."""
    lmp = lmp_executable()
    if ranks <= 1:
        return [str(lmp)]
    return [str(lmp.parent / "mpirun"), "-np", str(ranks), str(lmp)]


def thermo_table(log: str) -> Dict[str, np.ndarray]:
    """The last thermo block of LAMMPS output as {column: values}."""
    blocks = re.findall(r"^\s*Step\s.*?(?=^Loop time)", log, re.M | re.S)
    if not blocks:
        raise ValueError("no thermo output found in the LAMMPS log")
    lines = blocks[-1].strip().splitlines()
    names = lines[0].split()
    rows = np.array([[float(v) for v in line.split()] for line in lines[1:] if not line.startswith(("WARNING", "For"))])
    return {name: rows[:, k] for k, name in enumerate(names)}


def ms_per_step(log: str) -> float:
    """Wall time per step of the last run, from LAMMPS's `Loop time` line."""
    seconds, steps = re.findall(r"Loop time of ([0-9.e+-]+) on \d+ procs for (\d+) steps", log)[-1]
    return float(seconds) / int(steps) * 1e3


__all__ = ["lmp_command", "thermo_table", "ms_per_step"]
