"""The OpenMM side: a TorchScript module with OpenMM-Torch's calling convention, and a helper
that turns an exported file into a TorchForce for a given system.

TorchForce contract (openmmtorch 1.5): forward(positions[nm]) or, for periodic systems,
forward(positions[nm], box[nm]); energy in kJ/mol, or (energy, forces[kJ/mol/nm]) when the
force is told setOutputsForces(True). Positions are those of every particle of the System,
float32 or float64, never wrapped. Units are converted here and nowhere else.
"""

import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from so3k import keys
from so3k.capabilities import check_supported
from so3k.errors import ExportError
from so3k.forces import ForceField
from so3k.geometry import squared_distances
from so3k.model import So3krates
from so3k.neighbors import neighbor_list
from so3k.neighbors.fixed_capacity import fixed_capacity_pairs
from so3k.species import species_index
from so3k.units import ANGSTROM_TO_NM, EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

from .metadata import build_metadata, load_module, save_module
from .plugins import import_openmmtorch

UNITS = {"positions": "nm", "box": "nm", "energy": "kJ/mol", "forces": "kJ/mol/nm"}
# What create_force sets on a loaded module for its System; everything else is fixed at export.
PER_SYSTEM = ["species", "atoms", "neighbour_slots", "min_distance"]
MIN_DISTANCE = 0.5  # Å: closer atoms stop the simulation (overlap, or a blown-up run); as the ASE calculator


class OpenMMPotential(nn.Module):
    """E(positions[nm], box[nm]) in kJ/mol for the ML atoms of an OpenMM System.

    `species` (one entry per ML atom) and `atoms` (indices of the ML atoms in the System; empty
    means all particles) are buffers, set for a system by `create_force`.
    """

    def __init__(self, model: So3krates):
        super().__init__()
        self.force_field = ForceField(model)
        self.cutoff = float(model.cutoff)
        self.length_scale = float(NM_TO_ANGSTROM)
        self.energy_scale = float(EV_TO_KJ_PER_MOL)
        self.register_buffer("species", torch.zeros(0, dtype=torch.long))
        self.register_buffer("atoms", torch.zeros(0, dtype=torch.long))
        # CUDA-graph mode: a pair list of fixed size (so3k.neighbors.fixed_capacity) with as many
        # slots per atom as this buffer has entries (its shape, not its values, so no host read);
        # empty means the ordinary neighbour list.
        self.register_buffer("neighbour_slots", torch.zeros(0))
        self.register_buffer("min_distance", torch.tensor(MIN_DISTANCE, dtype=torch.float64))

    def evaluate(self, positions: Tensor, box: Optional[Tensor], compute_forces: bool) -> Dict[str, Tensor]:
        """ForceField's outputs (eV, Å) for the ML atoms, from all System positions (nm)."""
        r = positions * self.length_scale
        if self.atoms.numel() > 0:
            r = r.index_select(0, self.atoms)
        if r.shape[0] != self.species.shape[0]:
            raise RuntimeError("the number of ML atoms does not match the species set by create_force")
        cell = r.new_zeros((1, 3, 3)) if box is None else (box.to(r.dtype) * self.length_scale)[None]
        capacity = self.neighbour_slots.shape[0]
        overflow = torch.zeros((), dtype=torch.bool, device=r.device)
        if capacity > 0:
            idx_i, idx_j, offsets, overflow = fixed_capacity_pairs(r, self.cutoff, capacity, None if box is None else cell[0])
        else:
            # an OpenMM box is periodic in all three directions (pbc None: all True with a cell)
            idx_i, idx_j, offsets = neighbor_list(r, self.cutoff, None if box is None else cell[0], None)
        batch = torch.zeros(r.shape[0], dtype=torch.long, device=r.device)
        # the neighbour list already reads back to the host, so the distance check may too; the
        # fixed-capacity path must not, and flags close atoms on the device instead
        min_distance = float(self.min_distance) if capacity == 0 else 0.0
        out = self.force_field(r, self.species, idx_i, idx_j, offsets, cell, batch, 1, compute_forces=compute_forces,
                               min_distance=min_distance)
        if capacity > 0:  # more neighbours than slots, or atoms too close: NaN energy and forces, and OpenMM stops
            d2 = squared_distances(r, idx_i, idx_j, offsets.to(r.dtype) @ cell[0])
            too_close = (d2 < (self.min_distance * self.min_distance).to(d2.dtype)).any()
            poison = torch.where(overflow | too_close, float("nan"), 0.0).to(out[keys.ENERGY].dtype)
            for key in list(out.keys()):
                out[key] = out[key] + poison
            # times the positions, so that OpenMM-Torch's own gradient of the energy is NaN too
            out[keys.ENERGY] = out[keys.ENERGY] + poison * r.sum()
        return out

    def forward(self, positions: Tensor, box: Optional[Tensor] = None) -> Tensor:
        energy = self.evaluate(positions, box, False)[keys.ENERGY][0]
        return (energy * self.energy_scale).to(positions.dtype)


class OpenMMPotentialWithForces(OpenMMPotential):
    """As OpenMMPotential, returning (energy, forces) for TorchForce.setOutputsForces(True)."""

    def forward(self, positions: Tensor, box: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:  # type: ignore[override]
        out = self.evaluate(positions.detach(), box, True)
        # eV/Å -> kJ/mol/nm; particles outside the ML region get zero
        forces = out[keys.FORCES] * (self.energy_scale * self.length_scale)
        if self.atoms.numel() > 0:
            forces = torch.zeros(positions.shape, dtype=forces.dtype, device=forces.device).index_copy(0, self.atoms, forces)
        return (out[keys.ENERGY][0] * self.energy_scale).to(positions.dtype), forces.to(positions.dtype)


def export_openmm(model: So3krates, path: Union[str, Path], outputs_forces: bool = False) -> Path:
    """Script and save a model prepared for inference (so3k.checkpoint.inference_model)."""
    cls = OpenMMPotentialWithForces if outputs_forces else OpenMMPotential
    # Scripted, not frozen: TorchForce moves the module to its device (module.to(cuda)) and then
    # freezes it itself, and .to() cannot move the constants a frozen module has baked into its
    # graph (pytorch#57569), so a frozen export would fail on the CUDA platform.
    module = torch.jit.script(cls(model).eval())
    meta = build_metadata(model, "openmm", UNITS, outputs_forces=outputs_forces)
    return save_module(module, path, meta)


def topology_from_symbols(symbols: Sequence[str], residue_name: str = "MOL"):
    """An openmm.app.Topology of one residue holding the given elements (names C1, H2, ...)."""
    from openmm import app

    topology = app.Topology()
    residue = topology.addResidue(residue_name, topology.addChain())
    for k, symbol in enumerate(symbols):
        topology.addAtom(f"{symbol}{k + 1}", app.Element.getBySymbol(symbol), residue)
    return topology


def is_periodic(topology_or_atomic_numbers: Any, periodic: Optional[bool]) -> bool:
    """periodic as given, or else whether the topology has a box."""
    if periodic is not None:
        return bool(periodic)
    return hasattr(topology_or_atomic_numbers, "getPeriodicBoxVectors") and (
        topology_or_atomic_numbers.getPeriodicBoxVectors() is not None
    )


def ml_atoms(numbers: Sequence[int], atoms: Optional[Sequence[int]]) -> list:
    """The atomic numbers of the ML atoms (all particles when atoms is None), checking the indices."""
    if atoms is None:
        ml_numbers = list(numbers)
    else:
        bad = [a for a in atoms if not 0 <= int(a) < len(numbers)]
        if bad or len(set(int(a) for a in atoms)) != len(atoms):
            raise ExportError(f"atoms must be distinct indices in 0..{len(numbers) - 1}; got {bad or 'duplicates'}")
        ml_numbers = [numbers[int(a)] for a in atoms]
    if not ml_numbers:
        raise ExportError("no ML atoms: give a topology with atoms or a non-empty atoms= list")
    return ml_numbers


def atomic_numbers(system: Any) -> list:
    if hasattr(system, "atoms") and callable(system.atoms):  # an openmm.app.Topology
        numbers = []
        for atom in system.atoms():
            if atom.element is None:
                raise ExportError(f"atom {atom.index} ({atom.name}) of the topology has no element; the model needs one for every ML atom")
            numbers.append(atom.element.atomic_number)
        return numbers
    return [int(z) for z in system]


def default_max_neighbours(cutoff: float) -> int:
    """Neighbour slots per atom for a cutoff (Å): 1.5x the atoms within it at liquid water's
    density, 0.1 atoms/Å^3 (dense organic and inorganic matter is at or below it)."""
    return int(math.ceil(1.5 * 0.1 * 4.0 / 3.0 * math.pi * cutoff**3 / 8.0)) * 8


def create_force(
    model_path: Union[str, Path],
    topology_or_atomic_numbers: Any,
    atoms: Optional[Sequence[int]] = None,
    periodic: Optional[bool] = None,
    cuda_graphs: bool = False,
    max_neighbours: Optional[int] = None,
    box_width: Optional[float] = None,
    min_distance: float = MIN_DISTANCE,
    backend: str = "torch",
    device: Optional[str] = None,
):
    """An openmmtorch.TorchForce evaluating the exported model on the System's ML atoms, or with
    backend="python" an openmm.PythonForce running a compiled package (.pt2, `so3k export
    --format aoti`) on `device` (default: the one it was compiled for); see openmm_python.py.

    topology_or_atomic_numbers: an openmm.app.Topology or the atomic numbers of all particles.
    atoms: indices of the ML atoms (default all). periodic: default from the topology's box.
    cuda_graphs: build the pair list inside the model with a fixed number of slots per atom
    (max_neighbours, default default_max_neighbours(cutoff)), so that forward has fixed shapes
    and never waits for the host, and set the force's useCUDAGraphs property (read by the CUDA
    platform). The search compares all pairs of ML atoms (O(N^2) elementwise, on the device);
    the model works on N * max_neighbours pairs. An atom with more neighbours within the cutoff
    makes the energy and forces NaN (found on the device, without a host read), which stops the
    simulation ("Particle coordinate is NaN"). Periodic systems use the minimum image,
    which needs a box at least twice the cutoff wide: give the smallest box width in nm as
    box_width, or a topology with a box.
    min_distance (Å): two ML atoms closer than this stop the simulation with an error naming them
    (with cuda_graphs: NaN energy and forces); 0 turns the check off.
    """
    if backend not in ("torch", "python"):
        raise ExportError(f"backend must be 'torch' (TorchForce) or 'python' (PythonForce with a .pt2 package), got {backend!r}")
    if backend == "python":
        if cuda_graphs:
            raise ExportError("cuda_graphs is a TorchForce option; the python backend runs the compiled package as it is")
        from .openmm_python import python_force

        return python_force(model_path, topology_or_atomic_numbers, atoms, periodic, min_distance, device)
    if Path(model_path).suffix == ".pt2":
        raise ExportError(f"{model_path} is a compiled package: use create_force(..., backend='python'), or a TorchScript export")
    if device is not None:
        raise ExportError("device is for backend='python'; TorchForce runs on the Context's platform")
    openmmtorch = import_openmmtorch()  # works whatever was imported first

    module, meta = load_module(model_path, "openmm")
    numbers = atomic_numbers(topology_or_atomic_numbers)
    periodic = is_periodic(topology_or_atomic_numbers, periodic)
    check_supported(bool(meta.get("nonlocal_attention")), periodic=bool(periodic),
                    remedy=f"{model_path} is such a model: use it without a periodic box, or export a local model")
    ml_numbers = ml_atoms(numbers, atoms)
    module.species = species_index(ml_numbers, meta["elements"], where=f" (model {model_path})")
    module.atoms = torch.tensor([int(a) for a in atoms] if atoms is not None else [], dtype=torch.long)
    module.min_distance = torch.tensor(float(min_distance), dtype=torch.float64)
    if cuda_graphs:
        if "neighbour_slots" not in dict(module.named_buffers(recurse=False)):
            raise ExportError(f"{model_path} was exported by an older so3k, without the fixed-size pair list: export it again")
        if periodic:
            if box_width is None and hasattr(topology_or_atomic_numbers, "getPeriodicBoxVectors"):
                vectors = topology_or_atomic_numbers.getPeriodicBoxVectors()
                if vectors is not None:
                    box_width = min(vectors[k][k].value_in_unit(vectors[k][k].unit) for k in range(3))
            if box_width is None:
                raise ExportError("cuda_graphs with a periodic system needs box_width (nm) or a topology with a box")
            min_width = 2 * meta["cutoff"] * ANGSTROM_TO_NM
            if min_width > box_width:
                raise ExportError(
                    f"cuda_graphs uses the minimum image, which needs a box at least twice the cutoff wide "
                    f"({min_width:.2f} nm); this box is {box_width:.2f} nm: use cuda_graphs=False"
                )
        slots = max_neighbours or default_max_neighbours(meta["cutoff"])
        if slots < 1:
            raise ExportError(f"max_neighbours must be at least 1, got {slots}")
        module.neighbour_slots = torch.zeros(min(slots, max(len(ml_numbers) - 1, 1)))
    force = openmmtorch.TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setOutputsForces(bool(meta.get("outputs_forces", False)))
    if cuda_graphs:
        force.setProperty("useCUDAGraphs", "true")
    return force


def openmm_box(cell: Any) -> Tuple[np.ndarray, np.ndarray]:
    """OpenMM's form of a periodic cell (3, 3) in Å: (box vectors (3, 3) in nm, rotation R).

    OpenMM wants a along x, b in the xy plane and the reduced form a_x >= 2|b_x|, a_x >= 2|c_x|,
    b_y >= 2|c_y| (its minimum image and ours rely on it). The same lattice is rotated into that
    orientation (positions @ R.T follow it) and reduced by lattice-vector sums, which changes
    no periodic image.
    """
    from ase.cell import Cell

    standard, rotation = Cell(np.asarray(cell, dtype=float)).standard_form()
    a, b, c = (row.copy() for row in standard)
    c -= b * round(c[1] / b[1])
    c -= a * round(c[0] / a[0])
    b -= a * round(b[0] / a[0])
    return np.array([a, b, c]) * ANGSTROM_TO_NM, rotation


def system_from_atoms(model_path: Union[str, Path], atoms: Any, **force_options: Any):
    """An openmm.System for an ase.Atoms: element masses, the cell as box vectors (OpenMM's
    reduced form, see openmm_box) when it is periodic in all directions, and the model's force
    on every atom. A cell that must be rotated for OpenMM is refused: rotate the atoms with
    openmm_box's rotation first (positions @ R.T, cell @ R.T), as deploy/openmm/run_md.py does."""
    import openmm

    system = openmm.System()
    for mass in atoms.get_masses():
        system.addParticle(float(mass))
    periodic = bool(atoms.pbc.all())
    if atoms.pbc.any() and not periodic:
        raise ExportError("OpenMM boxes are periodic in all three directions or none; this structure is partly periodic")
    if periodic:
        box, rotation = openmm_box(atoms.cell.array)
        if not np.allclose(rotation, np.eye(3), atol=1e-12):
            raise ExportError(
                "OpenMM needs the first cell vector along x and the second in the xy plane: rotate the structure first "
                "(box, R = so3k.export.openmm.openmm_box(atoms.cell); atoms.positions = atoms.positions @ R.T)"
            )
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    system.addForce(create_force(model_path, atoms.numbers, periodic=periodic, **force_options))
    return system
