"""MD17-style sampling: Langevin molecular dynamics of one molecule with xTB energies and forces.

Recipe: relax the molecule (BFGS), draw Maxwell-Boltzmann velocities at the target temperature,
equilibrate with a Langevin thermostat, then keep one frame every ``stride`` steps. One seeded
generator drives the velocities and the thermostat noise, and the xTB calculator computes every
call from scratch, so after each frame the step index, positions, momenta and generator state are
all a resumed run needs to continue bit for bit.

The thermostat runs with ``fixcm=False`` and no centre-of-mass constraint. ASE's ``fixcm=True``
removes the net random kick by giving every atom an equal share of momentum (not of velocity),
which overheats light atoms in a small molecule (ethanol at a nominal 500 K: hydrogens ≈ 730 K, heavy atoms
≈ 470 K). ``FixCom`` would be correct but is not needed: without it every one of the 3N degrees of
freedom is thermostatted, so each element's kinetic temperature should equal the target, and the
molecule's slow Brownian drift (a few Å per run) is invisible to translation-invariant models.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols
from tqdm.auto import tqdm

from so3k import keys
from so3k.data.generate.reference import XTB_METHODS, xtb_calculator
from so3k.data.generate.sink import FrameSink, add_output_options, run_generator
from so3k.data.molecules import BUILTIN, load_molecule
from so3k.errors import InputError


def kinetic_temperature(masses, momenta, numbers) -> dict[str, float]:
    """Kinetic temperature (K) of all atoms, of each element and of the non-hydrogen ("heavy") atoms.

    ``momenta`` has shape (N, 3) or (M, N, 3) (averaged over the M frames); masses in amu,
    momenta in ASE units. Every atom counts 3 degrees of freedom, which is right for dynamics
    without constraints (a fixed centre of mass would remove 3 of the 3N).
    """
    masses = np.asarray(masses, dtype=float)
    numbers = np.asarray(numbers)
    p = np.asarray(momenta, dtype=float).reshape(-1, len(masses), 3)
    ekin = (p**2).sum(axis=2).mean(axis=0) / (2 * masses)  # mean kinetic energy per atom (eV)

    def temperature(mask) -> float:
        return float(2 * ekin[mask].sum() / (3 * mask.sum() * units.kB))

    out = {"all": temperature(np.ones(len(numbers), bool))}
    for z in np.unique(numbers):
        out[chemical_symbols[z]] = temperature(numbers == z)
    if (numbers != 1).any():
        out["heavy"] = temperature(numbers != 1)
    return out


@dataclass
class MDConfig:
    """Langevin MD of one molecule; units K, fs, 1/fs and eV/Å."""

    molecule: str  # built-in name or structure file
    method: str = "GFN2-xTB"
    charge: int = 0
    multiplicity: int = 1
    temperature: float = 500.0
    timestep: float = 0.5
    friction: float = 0.01
    equilibration_steps: int = 1000
    stride: int = 10
    n_frames: int = 1000
    fmax: float = 0.01  # pre-optimisation; 0 starts from the geometry as given
    seed: int = 0

    def __post_init__(self) -> None:
        self.molecule = str(self.molecule)  # a Path would not survive the JSON state file
        if self.molecule not in BUILTIN and not Path(self.molecule).is_file():
            raise InputError(f"molecule must be one of {', '.join(BUILTIN)} or an existing structure file, got {self.molecule!r}")
        if self.method not in XTB_METHODS:
            raise InputError(f"method must be one of {', '.join(XTB_METHODS)}, got {self.method!r}")
        if self.multiplicity < 1:
            raise InputError(f"multiplicity must be >= 1 (1 = singlet), got {self.multiplicity}")
        if self.temperature <= 0:
            raise InputError(f"temperature must be > 0 K, got {self.temperature}")
        if self.timestep <= 0:
            raise InputError(f"timestep must be > 0 fs (0.5 fs resolves X-H vibrations), got {self.timestep}")
        if self.friction <= 0:
            raise InputError(f"friction must be > 0 per fs (e.g. 0.01), got {self.friction}")
        if self.equilibration_steps < 0:
            raise InputError(f"equilibration_steps must be >= 0, got {self.equilibration_steps}")
        if self.stride < 1:
            raise InputError(f"stride must be >= 1 step between frames, got {self.stride}")
        if self.n_frames < 1:
            raise InputError(f"n_frames must be >= 1, got {self.n_frames}")
        if self.fmax < 0:
            raise InputError(f"fmax must be >= 0 eV/Å (0 skips the pre-optimisation), got {self.fmax}")


def generate_md(config: MDConfig, out: str | Path, *, resume=False, overwrite=False, progress=True, command=None) -> Path:
    """Write ``config.n_frames`` frames of a Langevin trajectory with xTB energies and forces."""
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.optimize import BFGS

    sink = FrameSink(out, asdict(config), resume=resume, overwrite=overwrite)
    if sink.complete:
        return sink.target
    try:
        atoms = load_molecule(config.molecule)
        atoms.calc = xtb_calculator(config.method, config.charge, config.multiplicity)
        rng = np.random.default_rng(config.seed)
        state = sink.extra
        if state:  # continue after the last written frame
            atoms.positions = state["positions"]
            atoms.set_momenta(state["momenta"])
            rng.bit_generator.state = state["rng"]
            step = state["step"]
            p2_sum = np.array(state["p2_sum"])
        else:
            if config.fmax > 0 and not BFGS(atoms, logfile=None).run(fmax=config.fmax, steps=1000):
                # MD still samples a thermal ensemble, only the equilibration has more to do.
                warnings.warn(f"pre-optimisation of {config.molecule} did not reach fmax={config.fmax} eV/Å in 1000 steps")
            thermalize_momenta(atoms, config.temperature, rng=rng)  # Maxwell-Boltzmann
            Stationary(atoms)
            p2_sum = np.zeros((len(atoms), 3))
        dyn = Langevin(
            atoms,
            timestep=config.timestep * units.fs,
            temperature_K=config.temperature,
            friction=config.friction / units.fs,
            fixcm=False,  # see the module docstring
            rng=rng,
        )
        if not state:
            for _ in tqdm(range(config.equilibration_steps), disable=not progress, desc="equilibration", unit="step", leave=False):
                dyn.step()
            step = config.equilibration_steps
        with tqdm(total=config.n_frames, initial=sink.n_frames, disable=not progress, desc="md", unit="frame") as bar:
            for _ in range(sink.n_frames, config.n_frames):
                for _ in range(config.stride):
                    dyn.step()
                step += config.stride
                momenta = atoms.get_momenta()
                p2_sum += momenta**2
                # The integrator has just computed energy and forces here: these calls return them.
                frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
                frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
                frame.info.update({keys.MD_STEP: step, keys.METHOD: config.method})
                extra = dict(
                    step=step,
                    positions=atoms.positions.tolist(),
                    momenta=momenta.tolist(),
                    rng=rng.bit_generator.state,
                    p2_sum=p2_sum.tolist(),
                )
                sink.append(frame, extra)
                bar.update()
    finally:
        sink.close()
    # Root-mean-square momenta give exactly the mean kinetic energy per atom over the frames.
    measured = kinetic_temperature(atoms.get_masses(), np.sqrt(p2_sum / config.n_frames), atoms.numbers)
    measured = {k: round(v, 1) for k, v in measured.items()}
    summary = ", ".join(f"{k} {v:.0f} K" for k, v in measured.items())
    print(f"kinetic temperature over {config.n_frames} frames (target {config.temperature:g} K): {summary}")
    return sink.finish(
        {
            "command": command or "(Python API)",
            "method": config.method,
            "temperature_K_target": config.temperature,
            "temperature_K_measured": measured,
        }
    )


def add_parser(subparsers) -> None:
    d = {f.name: f.default for f in fields(MDConfig)}
    p = subparsers.add_parser("md", help="MD17-style set: Langevin MD of one molecule with xTB labels")
    p.add_argument("--molecule", required=True, help=f"built-in ({', '.join(BUILTIN)}) or a structure file")
    p.add_argument("--method", default=d["method"], choices=XTB_METHODS, help="reference method (default GFN2-xTB)")
    p.add_argument("--charge", type=int, default=d["charge"], help="total charge (default 0)")
    p.add_argument("--multiplicity", type=int, default=d["multiplicity"], help="spin multiplicity (default 1)")
    p.add_argument("--temperature", type=float, default=d["temperature"], help="thermostat temperature, K (default 500)")
    p.add_argument("--timestep", type=float, default=d["timestep"], help="fs (default 0.5)")
    p.add_argument("--friction", type=float, default=d["friction"], help="Langevin friction, 1/fs (default 0.01)")
    p.add_argument("--equilibration", dest="equilibration_steps", type=int, default=d["equilibration_steps"], help="steps before the first frame (default 1000)")
    p.add_argument("--stride", type=int, default=d["stride"], help="steps between frames (default 10)")
    p.add_argument("--frames", dest="n_frames", type=int, default=d["n_frames"], help="number of frames (default 1000)")
    p.add_argument("--fmax", type=float, default=d["fmax"], help="pre-optimisation threshold, eV/Å; 0 skips it (default 0.01)")
    add_output_options(p, "md.extxyz")
    p.set_defaults(func=partial(run_generator, MDConfig, generate_md))
