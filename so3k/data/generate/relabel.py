"""Relabel the frames of an existing file with molecular DFT (PySCF).

The default, PBE/def2-SVP with density fitting, is the level of rMD17. The frames relabelled are
``start, start + every, start + 2 every, ...`` of the input, at most ``n_frames`` of them: a
strided subset of an MD trajectory is both deterministic and decorrelated. A frame whose SCF does
not converge is reported and skipped, never written. The position in that list is saved after
every frame, written or skipped, so a resumed run neither repeats nor retries any of them.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm.auto import tqdm

from so3k import keys
from so3k.data.generate.sink import FrameSink, add_output_options, run_generator
from so3k.data.io import read_frames
from so3k.errors import InputError
from so3k.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV


@dataclass
class RelabelConfig:
    """Which frames of ``input`` to relabel, and the DFT settings."""

    input: str
    xc: str = "PBE"
    basis: str = "def2-SVP"
    charge: int = 0
    multiplicity: int = 1  # 2S+1; unrestricted Kohn-Sham when > 1
    density_fit: bool = True
    conv_tol: float = 1e-9  # Hartree, SCF energy convergence
    max_cycle: int = 100  # SCF iterations before a frame counts as not converged
    grid_level: int = 3  # PySCF's integration grid level, 0 (coarse) to 9 (fine)
    start: int = 0  # first input frame
    every: int = 1  # stride through the input frames
    n_frames: int | None = None  # at most this many frames; None: all of them
    seed: int = 0  # unused: the selection is deterministic; kept so every generator takes --seed

    def __post_init__(self) -> None:
        self.input = str(self.input)
        if self.multiplicity < 1:
            raise InputError(f"multiplicity must be >= 1 (1 for a closed shell), got {self.multiplicity}")
        if self.conv_tol <= 0 or self.max_cycle < 1:
            raise InputError(f"conv_tol must be > 0 and max_cycle >= 1, got {self.conv_tol} and {self.max_cycle}")
        if not 0 <= self.grid_level <= 9:
            raise InputError(f"grid_level must be within 0..9 (PySCF default 3), got {self.grid_level}")
        if self.start < 0 or self.every < 1:
            raise InputError(f"start must be >= 0 and every >= 1, got {self.start} and {self.every}")
        if self.n_frames is not None and self.n_frames < 1:
            raise InputError(f"n_frames must be >= 1 (or None for all), got {self.n_frames}")

    @property
    def method(self) -> str:
        return f"{self.xc}/{self.basis}"


def _atom_list(atoms: Atoms) -> list[tuple[str, tuple[float, ...]]]:
    return [(symbol, tuple(p)) for symbol, p in zip(atoms.get_chemical_symbols(), atoms.positions.tolist())]


def dft_energy_forces(atoms: Atoms, config: RelabelConfig) -> tuple[float, np.ndarray] | None:
    """PySCF energy (eV) and forces (eV/Å) of a molecule, or None if the SCF did not converge."""
    from pyscf import dft, gto, lib

    lib.num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    mol = gto.M(
        atom=_atom_list(atoms),
        unit="Angstrom",
        basis=config.basis,
        charge=config.charge,
        spin=config.multiplicity - 1,
        verbose=0,
    )
    mf = (dft.RKS if config.multiplicity == 1 else dft.UKS)(mol)
    if config.density_fit:
        mf = mf.density_fit()
    mf.xc = config.xc
    mf.grids.level = config.grid_level
    mf.conv_tol = config.conv_tol
    mf.max_cycle = config.max_cycle
    mf.verbose = 0
    energy = mf.kernel()
    if not mf.converged:
        return None
    grad = mf.nuc_grad_method()
    # The grid moves with the atoms; without its response forces are off by ~5 meV/Å.
    grad.grid_response = True
    gradient = grad.kernel()
    return float(energy) * HARTREE_TO_EV, -np.asarray(gradient) * (HARTREE_TO_EV / BOHR_TO_ANGSTROM)


def _check_electrons(atoms: Atoms, config: RelabelConfig, index: int) -> None:
    electrons = int(atoms.numbers.sum()) - config.charge
    if electrons < 1 or (electrons - (config.multiplicity - 1)) % 2:
        raise InputError(
            f"frame {index} ({atoms.get_chemical_formula()}) has {electrons} electrons at charge {config.charge}, "
            f"which multiplicity {config.multiplicity} does not fit: change --charge or --multiplicity"
        )


def _check_method(atoms: Atoms, config: RelabelConfig) -> None:
    """Fail before the run starts if PySCF does not know the basis or the functional."""
    from pyscf import dft, gto

    try:
        with warnings.catch_warnings():  # PySCF adds an install hint for unknown bases; the error says enough
            warnings.simplefilter("ignore")
            gto.M(atom=_atom_list(atoms), basis=config.basis, charge=config.charge, spin=config.multiplicity - 1, verbose=0)
    except Exception as err:  # noqa: BLE001 - PySCF raises assorted types for unknown bases
        raise InputError(f"PySCF cannot use basis {config.basis!r} for {atoms.get_chemical_formula()}: {err}") from None
    try:
        dft.libxc.parse_xc(config.xc)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"PySCF does not know the functional {config.xc!r}: {err}") from None


def selected_indices(n_input: int, config: RelabelConfig) -> list[int]:
    """The input frames to relabel: ``start::every``, at most ``n_frames`` of them."""
    return list(range(config.start, n_input, config.every))[: config.n_frames]


def generate_relabel(config: RelabelConfig, out: str | Path, *, resume=False, overwrite=False, progress=True, command=None) -> Path:
    """Write the selected frames of ``config.input`` with DFT energies and forces."""
    frames = read_frames(config.input)
    if frames.periodic:
        raise InputError(f"{config.input} has periodic frames; relabel runs molecular DFT only (no cell, no pbc)")
    indices = selected_indices(len(frames), config)
    if not indices:
        raise InputError(f"no frames selected: {config.input} has {len(frames)} frames, --start is {config.start}")
    for k in indices:
        _check_electrons(frames.atoms(k), config, k)
    _check_method(frames.atoms(indices[0]), config)

    sink = FrameSink(out, asdict(config), resume=resume, overwrite=overwrite)
    if sink.complete:
        return sink.target
    position = sink.extra.get("next", 0)
    not_converged = sink.extra.get("not_converged", [])
    try:
        with tqdm(total=len(indices), initial=position, disable=not progress, desc="relabel", unit="frame") as bar:
            for j in range(position, len(indices)):
                source = indices[j]
                atoms = frames.atoms(source)
                atoms.calc = None
                result = dft_energy_forces(atoms, config)
                if result is None:
                    tqdm.write(f"skipped frame {source}: {config.method} SCF not converged in {config.max_cycle} cycles")
                    not_converged.append(source)
                    sink.skip({"next": j + 1, "not_converged": not_converged})  # not retried on resume
                else:
                    atoms.calc = SinglePointCalculator(atoms, energy=result[0], forces=result[1])
                    atoms.info.update({keys.SOURCE_INDEX: source, keys.METHOD: config.method})
                    sink.append(atoms, {"next": j + 1, "not_converged": not_converged})
                bar.update()
    finally:
        sink.close()
    if not_converged:
        print(f"{len(not_converged)} of {len(indices)} frames skipped (SCF not converged): {not_converged}")
    return sink.finish(
        {
            "command": command or "(Python API)",
            "method": config.method,
            "source_frames": len(indices),
            "not_converged_source_indices": not_converged,
        }
    )


def add_parser(subparsers) -> None:
    d = RelabelConfig
    p = subparsers.add_parser("relabel", help="recompute energies/forces of a file's frames with PySCF DFT (default PBE/def2-SVP)")
    p.add_argument("input", help="any ASE-readable file or MD17 .npz; molecules only (no periodic cell)")
    p.add_argument("--xc", default=d.xc, help=f"exchange-correlation functional (default {d.xc})")
    p.add_argument("--basis", default=d.basis, help=f"basis set (default {d.basis})")
    p.add_argument("--charge", type=int, default=d.charge, help="total charge (default 0)")
    p.add_argument("--multiplicity", type=int, default=d.multiplicity, help="spin multiplicity 2S+1; > 1 uses UKS (default 1)")
    p.add_argument("--no-density-fit", dest="density_fit", action="store_false", help="exact Coulomb/exchange integrals (slower)")
    p.add_argument("--conv-tol", type=float, default=d.conv_tol, help=f"SCF energy tolerance, Hartree (default {d.conv_tol:g})")
    p.add_argument("--max-cycle", type=int, default=d.max_cycle, help=f"SCF iterations before a frame is skipped (default {d.max_cycle})")
    p.add_argument("--grid-level", type=int, default=d.grid_level, help=f"integration grid level 0-9 (default {d.grid_level})")
    p.add_argument("--start", type=int, default=d.start, help="first input frame (default 0)")
    p.add_argument("--every", type=int, default=d.every, help="relabel every K-th input frame from --start (default 1)")
    p.add_argument("--frames", dest="n_frames", type=int, default=None, help="relabel at most N frames (default: all selected)")
    add_output_options(p, "relabelled.extxyz")
    p.set_defaults(func=partial(run_generator, RelabelConfig, generate_relabel))
