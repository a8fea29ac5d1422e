"""OpenMM through openmm.PythonForce (OpenMM >= 8.5.2): a compiled package (.pt2) evaluated by
Python on each force call, beside the TorchForce path of openmm.py.

    force = create_force("model.pt2", topology, backend="python")        # device: the package's

OpenMM hands the computation a State (positions in nm, the box when periodic); the package works
in Å and eV, so units are converted here and nowhere else. Positions and forces cross the host
once per step (the PythonForce contract), so this path suits CPU runs and mid-sized GPU systems;
TorchForce stays the default, and the one with CUDA graphs.
"""

from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch

from so3k import keys
from so3k.capabilities import check_supported
from so3k.neighbors import neighbor_list
from so3k.species import species_index
from so3k.units import ANGSTROM_TO_NM, EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

from .aoti import CompiledForceField


class PythonPotential:
    """The computation of a PythonForce: state -> (energy kJ/mol, forces kJ/mol/nm of every particle).

    Pickles as its arguments (the package is loaded again), so that XmlSerializer can save the force."""

    def __init__(self, path: Union[str, Path], numbers: Sequence[int], atoms: Optional[Sequence[int]], periodic: bool,
                 min_distance: float, device: Optional[str]):
        self.args = (str(path), [int(z) for z in numbers], None if atoms is None else [int(a) for a in atoms], bool(periodic),
                     float(min_distance), device)
        self.compiled = CompiledForceField(path, device)
        self.periodic = bool(periodic)
        self.min_distance = float(min_distance)
        self.n_particles = len(numbers)
        from .openmm import ml_atoms

        self.species = species_index(ml_atoms(numbers, atoms), self.compiled.elements, where=f" (model {path})").to(self.compiled.device)
        self.atoms: Optional[np.ndarray] = None if atoms is None else np.asarray(atoms, dtype=np.int64)

    def __reduce__(self):
        return (PythonPotential, self.args)

    def __call__(self, state: Any):
        from openmm import unit

        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if self.atoms is not None:
            positions = positions[self.atoms]
        c = self.compiled
        r = torch.as_tensor(np.ascontiguousarray(positions) * NM_TO_ANGSTROM, dtype=torch.float64)
        r = (r - r.mean(0)).to(c.device, c.dtype)  # centred in float64: float32 accuracy independent of the origin
        if self.periodic:
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            cell = torch.as_tensor(np.asarray(box) * NM_TO_ANGSTROM, dtype=c.dtype, device=c.device)
            idx_i, idx_j, offsets = neighbor_list(r, c.cutoff, cell, None)
        else:
            cell = torch.zeros((3, 3), dtype=c.dtype, device=c.device)
            idx_i, idx_j, offsets = neighbor_list(r, c.cutoff, None, None)
        out = c(r, self.species, idx_i, idx_j, offsets, cell, min_distance=self.min_distance)
        energy = float(out[keys.ENERGY].sum()) * EV_TO_KJ_PER_MOL
        forces_ml = out[keys.FORCES].detach().double().cpu().numpy() * (EV_TO_KJ_PER_MOL / ANGSTROM_TO_NM)
        if self.atoms is None:
            return energy, forces_ml
        forces = np.zeros((self.n_particles, 3))
        forces[self.atoms] = forces_ml
        return energy, forces


def python_force(path: Union[str, Path], topology_or_atomic_numbers: Any, atoms: Optional[Sequence[int]],
                 periodic: Optional[bool], min_distance: float, device: Optional[str]):
    """An openmm.PythonForce running the package at `path` on the ML atoms (create_force's python backend)."""
    import openmm

    from .openmm import atomic_numbers, is_periodic

    numbers: List[int] = atomic_numbers(topology_or_atomic_numbers)
    periodic = is_periodic(topology_or_atomic_numbers, periodic)
    potential = PythonPotential(path, numbers, atoms, periodic, min_distance, device)
    check_supported(potential.compiled.nonlocal_attention, periodic=periodic,
                    remedy=f"{path} is such a model: use it without a periodic box, or export a local model")
    force = openmm.PythonForce(potential)
    force.setUsesPeriodicBoundaryConditions(periodic)
    return force
