"""Periodic liquid water: classical TIP3P sampling, GFN1-xTB labels with stress.

A cubic box of rigid TIP3P molecules at the requested density is equilibrated with Langevin
dynamics; every ``stride`` steps a snapshot is rattled and relabelled with periodic xTB (energy,
forces, stress). TIP3P water is rigid, so its snapshots never stretch an O-H bond or open the
H-O-H angle: the Gaussian rattle of every atom is what samples those coordinates, which a force
field trained on the set must know.

One generator drives the placement and the MD; after each frame its state, the positions and the
momenta are saved, and the rattle of frame k uses its own generator seeded by (seed, k), so a
resumed run reproduces an uninterrupted one byte for byte.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.tip3p import TIP3P, angleHOH, rOH
from ase.constraints import FixBondLengths
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta
from tqdm.auto import tqdm

from so3k import keys
from so3k.data.generate.reference import XTB_METHODS, label, xtb_calculator
from so3k.data.generate.sink import FrameSink, add_output_options, run_generator
from so3k.errors import InputError

WATER_MASS = float(Atoms("OH2").get_masses().sum())  # amu
R_HH = 2 * rOH * np.sin(np.radians(angleHOH) / 2)  # Å, H-H distance of rigid TIP3P water
TIP3P_WIDTH = 1.0  # Å, width of TIP3P's smooth cutoff
TIP3P_MARGIN = 0.2  # Å, TIP3P's cutoff is this much below half the box (minimum image)
MIN_CUTOFF = 2.5  # Å, smallest TIP3P cutoff allowed: first-shell O-O contacts are at ≈2.8 Å


def box_length(n_molecules: int, density: float) -> float:
    """Edge (Å) of the cubic box holding ``n_molecules`` waters at ``density`` g/cm³."""
    grams = n_molecules * WATER_MASS / units._Nav
    return (grams / density * 1e24) ** (1 / 3)


def tip3p_cutoff(n_molecules: int, density: float) -> float:
    """TIP3P's O-O cutoff (Å): below half the box, so that each pair is counted once."""
    return box_length(n_molecules, density) / 2 - TIP3P_MARGIN


class RigidWater(FixBondLengths):
    """RATTLE constraints O-H, H-H, H-O on consecutive (O, H, H) molecules, vectorised.

    ASE's FixBondLengths loops over bonds in Python with a minimum-image search per bond (≈0.35 s
    per MD step for 32 waters); here each of the three bonds is solved for all molecules at once.
    Molecules are never wrapped into the box, so bond vectors need no minimum image. The bond
    lengths are fixed to TIP3P's, not read from the first geometry, so that a resumed run (whose
    geometry satisfies them only to the tolerance) applies exactly the same constraint.
    """

    BONDS = ((0, 1), (1, 2), (2, 0))

    def __init__(self, n_molecules: int, tolerance: float = 1e-13):
        pairs = [(3 * i + a, 3 * i + b) for i in range(n_molecules) for a, b in self.BONDS]
        super().__init__(pairs, tolerance=tolerance, bondlengths=np.tile([rOH, R_HH, rOH], n_molecules))

    def _iterate(self, atoms, update) -> None:
        old = atoms.positions.reshape(-1, 3, 3)
        masses = atoms.get_masses().reshape(-1, 3)
        for _ in range(self.maxiter):
            converged = True
            for j, (a, b) in enumerate(self.BONDS):
                x = update(old[:, a] - old[:, b], a, b, self.bondlengths[j], masses[:, a], masses[:, b])
                converged &= bool(np.all(np.abs(x) <= self.tolerance))
            if converged:
                return
        raise RuntimeError("RATTLE did not converge: the water MD has blown up (reduce the timestep)")

    def adjust_positions(self, atoms, new):
        new3 = new.reshape(-1, 3, 3)  # a view: updates land in ``new``

        def update(d0, a, b, length, ma, mb):
            d1 = new3[:, a] - new3[:, b]
            x = 0.5 * (length**2 - np.einsum("ij,ij->i", d1, d1)) / np.einsum("ij,ij->i", d0, d1)
            x = np.where(np.abs(x) > self.tolerance, x, 0.0)
            mu = 1 / (1 / ma + 1 / mb)
            new3[:, a] += (x * mu / ma)[:, None] * d0
            new3[:, b] -= (x * mu / mb)[:, None] * d0
            return x

        self._iterate(atoms, update)

    def adjust_momenta(self, atoms, p):
        p3 = p.reshape(-1, 3, 3)

        def update(d, a, b, length, ma, mb):
            dv = p3[:, a] / ma[:, None] - p3[:, b] / mb[:, None]
            x = -np.einsum("ij,ij->i", dv, d) / length**2
            x = np.where(np.abs(x) > self.tolerance, x, 0.0)
            mu = 1 / (1 / ma + 1 / mb)
            p3[:, a] += (x * mu)[:, None] * d
            p3[:, b] -= (x * mu)[:, None] * d
            return x

        self._iterate(atoms, update)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix (from a normalised Gaussian quaternion)."""
    w, x, y, z = (q := rng.normal(size=4)) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _lattice_sites(n: int) -> np.ndarray:
    """At least ``n`` fractional positions on a simple-cubic or fcc lattice, whichever is wider spaced.

    Wide spacing matters: molecules closer than TIP3P's O-O contact distance start the MD
    thousands of kelvin hot.
    """
    m = int(np.ceil(n ** (1 / 3) - 1e-9))  # simple cubic, m per edge: spacing 1/m
    k = int(np.ceil((n / 4) ** (1 / 3) - 1e-9))  # fcc, k cubic cells per edge: spacing 1/(k √2)
    if k * np.sqrt(2) >= m:
        return np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3) / m + 0.5 / m
    cells = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    basis = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    return ((cells + basis).reshape(-1, 3) + 0.25) / k


def water_box(n_molecules: int, density: float, rng: np.random.Generator) -> Atoms:
    """Randomly oriented TIP3P molecules (O, H, H) on random lattice sites of a periodic cubic box."""
    length = box_length(n_molecules, density)
    sites = _lattice_sites(n_molecules)
    sites = sites[np.sort(rng.choice(len(sites), n_molecules, replace=False))] * length
    half = np.radians(angleHOH) / 2
    molecule = np.array([[0, 0, 0], [rOH * np.sin(half), 0, rOH * np.cos(half)], [-rOH * np.sin(half), 0, rOH * np.cos(half)]])
    positions = [s + molecule @ _random_rotation(rng).T for s in sites]
    return Atoms("OH2" * n_molecules, positions=np.concatenate(positions), cell=[length] * 3, pbc=True)


@dataclass
class WaterConfig:
    """TIP3P Langevin sampling of a periodic water box, snapshots rattled and relabelled with xTB."""

    n_molecules: int = 32
    density: float = 1.0  # g/cm³
    temperature: float = 300.0  # K
    timestep: float = 1.0  # fs; RATTLE keeps rigid water stable at 1 fs
    friction: float = 0.01  # 1/fs
    equilibration_steps: int = 2000
    stride: int = 50  # MD steps between frames: 50 fs decorrelates the librations
    n_frames: int = 150
    rattle: float = 0.03  # Å; samples the O-H stretch and H-O-H bend rigid TIP3P leaves out
    method: str = "GFN1-xTB"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_molecules < 2:
            raise InputError(f"n_molecules must be >= 2, got {self.n_molecules}")
        if not 0.3 <= self.density <= 2.0:
            raise InputError(f"density must be within [0.3, 2] g/cm³ (liquid water is 1.0), got {self.density}")
        rc = tip3p_cutoff(self.n_molecules, self.density)
        if rc < MIN_CUTOFF:
            raise InputError(
                f"a box of {self.n_molecules} molecules is too small: TIP3P's cutoff would be {rc:.2f} Å, "
                f"it needs >= {MIN_CUTOFF} Å; use more molecules (>= 8 at 1 g/cm³)"
            )
        for name in ("temperature", "timestep", "friction"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.timestep > 2.0:
            raise InputError(f"timestep must be <= 2 fs for rigid water, got {self.timestep}")
        if self.equilibration_steps < 0:
            raise InputError(f"equilibration_steps must be >= 0, got {self.equilibration_steps}")
        if self.stride < 1 or self.n_frames < 1:
            raise InputError(f"stride and n_frames must be >= 1, got {self.stride} and {self.n_frames}")
        if self.rattle < 0:
            raise InputError(f"rattle must be >= 0 Å, got {self.rattle}")
        if self.method not in XTB_METHODS:
            raise InputError(f"method must be one of {', '.join(XTB_METHODS)}, got {self.method!r}")


def _md(atoms: Atoms, config: WaterConfig, rng: np.random.Generator) -> Langevin:
    n = len(atoms) // 3
    atoms.constraints = [RigidWater(n)]
    atoms.calc = TIP3P(rc=tip3p_cutoff(n, config.density), width=TIP3P_WIDTH)
    # fixcm=True is deprecated and mis-samples small systems; the drift of the centre is harmless.
    friction = config.friction / units.fs
    return Langevin(atoms, config.timestep * units.fs, temperature_K=config.temperature, friction=friction, fixcm=False, rng=rng)


def generate_water(config: WaterConfig, out: str | Path, *, resume=False, overwrite=False, progress=True, command=None) -> Path:
    """Write ``config.n_frames`` rattled TIP3P snapshots of a periodic water box with xTB labels."""
    sink = FrameSink(out, asdict(config), resume=resume, overwrite=overwrite)
    if sink.complete:
        return sink.target
    rng = np.random.default_rng(config.seed)
    atoms = water_box(config.n_molecules, config.density, rng)
    dyn = _md(atoms, config, rng)
    state = sink.extra
    if state:
        # Restore exactly, without applying the constraints again.
        atoms.set_positions(np.array(state["positions"]), apply_constraint=False)
        atoms.set_momenta(np.array(state["momenta"]), apply_constraint=False)
        rng.bit_generator.state = state["rng"]
        step, start = state["step"], state["next"]
    else:
        thermalize_momenta(atoms, config.temperature, rng=rng)
        step, start = 0, 0
    calc = xtb_calculator(config.method)
    skipped = state.get("skipped", [])
    temperatures = state.get("temperatures", [])
    try:
        with tqdm(total=config.n_frames, initial=start, disable=not progress, desc="water", unit="frame") as bar:
            for k in range(start, config.n_frames):
                target = config.equilibration_steps + (k + 1) * config.stride
                for _ in range(target - step):
                    dyn.step()
                step = target
                temperatures.append(round(float(atoms.get_temperature()), 3))
                rattle = np.random.default_rng([config.seed, k]).normal(scale=config.rattle, size=atoms.positions.shape)
                frame = Atoms(numbers=atoms.numbers, positions=atoms.positions + rattle, cell=atoms.cell, pbc=True)
                frame = label(frame, calc, {keys.MD_STEP: step, keys.METHOD: config.method}, stress=True)
                extra = dict(
                    next=k + 1,
                    step=step,
                    positions=atoms.positions.tolist(),
                    momenta=atoms.get_momenta().tolist(),
                    rng=rng.bit_generator.state,
                    skipped=skipped,
                    temperatures=temperatures,
                )
                if frame is None:
                    skipped.append(step)
                    sink.skip(extra)
                else:
                    sink.append(frame, extra)
                bar.update()
    finally:
        sink.close()
    return sink.finish(
        {
            "command": command or "(Python API)",
            "method": config.method,
            "box_length_angstrom": box_length(config.n_molecules, config.density),
            # kinetic temperature of the rigid-water MD at each frame (constraints removed from the dof)
            "md_temperature_mean_K": round(float(np.mean(temperatures)), 1),
            "md_temperature_std_K": round(float(np.std(temperatures)), 1),
            "skipped_md_steps": skipped,
        }
    )


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("water", help="periodic water box: TIP3P Langevin MD, rattled snapshots, xTB energy/forces/stress")
    d = WaterConfig
    p.add_argument("--molecules", dest="n_molecules", type=int, default=d.n_molecules, help=f"water molecules in the box (default {d.n_molecules})")
    p.add_argument("--density", type=float, default=d.density, help=f"g/cm³, sets the cubic box (default {d.density})")
    p.add_argument("--temperature", type=float, default=d.temperature, help=f"K (default {d.temperature:g})")
    p.add_argument("--timestep", type=float, default=d.timestep, help=f"fs (default {d.timestep})")
    p.add_argument("--friction", type=float, default=d.friction, help=f"Langevin friction, 1/fs (default {d.friction})")
    p.add_argument("--equilibration", dest="equilibration_steps", type=int, default=d.equilibration_steps, help="MD steps before the first frame (default 2000)")
    p.add_argument("--stride", type=int, default=d.stride, help=f"MD steps between frames (default {d.stride})")
    p.add_argument("--frames", dest="n_frames", type=int, default=d.n_frames, help=f"number of frames (default {d.n_frames})")
    p.add_argument("--rattle", type=float, default=d.rattle, help=f"Gaussian displacement of every atom, Å (default {d.rattle})")
    p.add_argument("--method", default=d.method, choices=XTB_METHODS, help=f"periodic xTB reference (default {d.method})")
    add_output_options(p, "water.extxyz")
    p.set_defaults(func=partial(run_generator, WaterConfig, generate_water))
