"""Run the real `lmp` of the PyPI wheel (and its MPICH `mpirun`) with pair_style so3krates."""

import re
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest

from so3k.lammps import lmp_command, lmp_environment, thermo_table

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NKTV2P = 1.6021765e6  # LAMMPS units metal: pressure (bar) = virial (eV) / volume (Å^3) * NKTV2P


@pytest.fixture(scope="session")
def plugin(plugin_built):
    return plugin_built


def run_lammps(folder: Path, deck: str, ranks: int = 1, command=None, check: bool = True, variables=()):
    """Write `deck` to folder/in.deck and run it; returns the CompletedProcess (stdout + stderr)."""
    (folder / "in.deck").write_text(deck)
    lmp = command or lmp_command(ranks)
    args = [*lmp, "-in", "in.deck", "-log", "log.lammps", *[str(v) for pair in variables for v in ("-var", *pair)]]
    env = lmp_environment()
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return done


def write_structure(atoms, path: Path, type_order) -> None:
    ase.io.write(path, atoms, format="lammps-data", specorder=list(type_order), masses=True, atom_style="atomic")


def read_structure(path: Path, type_order):
    """The structure exactly as LAMMPS reads it (triclinic cells are rotated to LAMMPS's frame)."""
    z_of_type = {k + 1: ase.data.atomic_numbers[symbol] for k, symbol in enumerate(type_order)}
    return ase.io.read(path, format="lammps-data", Z_of_type=z_of_type, atom_style="atomic")


RUN0 = """
units           metal
atom_style      atomic
boundary        {boundary}
newton          on
read_data       structure.data
pair_style      so3krates {style}
pair_coeff      * * {model} {types}
neighbor        0.5 bin
compute         virial all pressure NULL virial
compute         peatom all pe/atom
thermo_style    custom step pe c_virial[1] c_virial[2] c_virial[3] c_virial[4] c_virial[5] c_virial[6] vol
dump            atoms all custom 1 atoms.dump id fx fy fz c_peatom
dump_modify     atoms format float %.17g sort id
run             0
print           "SO3K $(pe:%.17g) $(c_virial[1]:%.17g) $(c_virial[2]:%.17g) $(c_virial[3]:%.17g) $(c_virial[4]:%.17g) $(c_virial[5]:%.17g) $(c_virial[6]:%.17g) $(vol:%.17g)"
"""


def run0(folder: Path, model: Path, atoms, type_order, ranks: int = 1, style: str = "") -> dict:
    """`run 0` of `atoms`: energy, forces, per-atom energies and virial (eV; xx yy zz xy xz yz)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_structure(atoms, folder / "structure.data", type_order)
    boundary = " ".join("p" if p else "s" for p in atoms.pbc)
    deck = RUN0.format(boundary=boundary, style=style, model=model, types=" ".join(type_order))
    done = run_lammps(folder, deck, ranks=ranks)
    values = [float(v) for v in re.search(r"^SO3K (.*)$", done.stdout, re.M).group(1).split()]
    dump = np.loadtxt(folder / "atoms.dump", skiprows=9)
    volume = values[7]
    return {
        "energy": values[0],
        "virial": np.array(values[1:7]) * volume / NKTV2P,
        "forces": dump[:, 1:4],
        "atom_energies": dump[:, 4],
        "stdout": done.stdout,
        "structure": read_structure(folder / "structure.data", type_order),
    }


class Lammps:
    """The helpers above, for tests (conftest modules are not importable under importlib mode)."""

    run = staticmethod(run_lammps)
    run0 = staticmethod(run0)
    thermo = staticmethod(thermo_table)
    write_structure = staticmethod(write_structure)
    read_structure = staticmethod(read_structure)
    bin = BIN
    root = ROOT


@pytest.fixture
def lmp(plugin):
    return Lammps
