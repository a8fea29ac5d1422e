"""The OpenMM side: a TorchScript module with OpenMM-Torch's calling convention, and a helper
that turns an exported file into a TorchForce for a given system.

TorchForce contract (openmmtorch 1.5): forward(positions[nm]) or, for periodic systems,
forward(positions[nm], box[nm]); energy in kJ/mol, or (energy, forces[kJ/mol/nm]) when the
force is told setOutputsForces(True). Positions are those of every particle of the System,
float32 or float64, never wrapped. Units are converted here and nowhere else.
"""

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..model import So3krates
from ..neighbors import neighbor_list
from ..units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM
from .metadata import ExportError, build_metadata, load_module, save_module

UNITS = {"positions": "nm", "box": "nm", "energy": "kJ/mol", "forces": "kJ/mol/nm"}


def minimum_image_shifts(d: Tensor, box: Tensor) -> Tensor:
    """Shifts that bring pair vectors d (P, 3) to their minimum image in an OpenMM box (rows a,
    b, c in reduced triclinic form), reducing along c, then b, then a, as OpenMM does. Exact
    when the cutoff is at most half the smallest box width (checked by create_force)."""
    shift = -torch.round((d[:, 2] / box[2, 2]))[:, None] * box[2]
    shift = shift - torch.round((d[:, 1] + shift[:, 1]) / box[1, 1])[:, None] * box[1]
    shift = shift - torch.round((d[:, 0] + shift[:, 0]) / box[0, 0])[:, None] * box[0]
    return shift


class OpenMMPotential(nn.Module):
    """E(positions[nm], box[nm]) in kJ/mol for the ML atoms of an OpenMM System.

    `species` (one entry per ML atom) and `atoms` (indices of the ML atoms in the System; empty
    means all particles) are buffers, set for a system by `create_force`.
    """

    def __init__(self, model: So3krates):
        super().__init__()
        self.model = model
        self.cutoff = float(model.cutoff)
        self.length_scale = float(NM_TO_ANGSTROM)
        self.energy_scale = float(EV_TO_KJ_PER_MOL)
        self.register_buffer("species", torch.zeros(0, dtype=torch.long))
        self.register_buffer("atoms", torch.zeros(0, dtype=torch.long))
        self.register_buffer("pbc", torch.ones(3, dtype=torch.bool))
        # Static-pair mode (for CUDA graphs): all ordered pairs of ML atoms, fixed at force
        # creation; pairs beyond the cutoff get weight 0 in the model, so no pair list is built
        # and nothing in forward depends on the data for its shape or needs the host.
        self.register_buffer("pair_i", torch.zeros(0, dtype=torch.long))
        self.register_buffer("pair_j", torch.zeros(0, dtype=torch.long))

    def energy_ev(self, positions: Tensor, box: Optional[Tensor]) -> Tensor:
        """Energy (eV) of the ML atoms from all System positions (nm)."""
        dtype = self.model.expand.dtype
        r = positions.to(dtype) * self.length_scale
        if self.atoms.numel() > 0:
            r = r[self.atoms]
        if r.shape[0] != self.species.shape[0]:
            raise RuntimeError("the number of ML atoms does not match the species set by create_force")
        if self.pair_i.numel() > 0:
            idx_i, idx_j = self.pair_i, self.pair_j
            shifts = torch.zeros((idx_i.shape[0], 3), dtype=dtype, device=r.device)
            if box is not None:
                shifts = minimum_image_shifts(r[idx_j] - r[idx_i], box.to(dtype) * self.length_scale)
        elif box is not None:
            cell = box.to(dtype) * self.length_scale
            idx_i, idx_j, offsets = neighbor_list(r, self.cutoff, cell, self.pbc)
            shifts = offsets @ cell
        else:
            idx_i, idx_j, offsets = neighbor_list(r, self.cutoff, None, None)
            shifts = offsets
        return self.model.atomic_energies(r, self.species, idx_i, idx_j, shifts, None, -1).sum()

    def forward(self, positions: Tensor, box: Optional[Tensor] = None) -> Tensor:
        return (self.energy_ev(positions, box) * self.energy_scale).to(positions.dtype)


class OpenMMPotentialWithForces(OpenMMPotential):
    """As OpenMMPotential, returning (energy, forces) for TorchForce.setOutputsForces(True)."""

    def forward(self, positions: Tensor, box: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:  # type: ignore[override]
        r = positions.detach().requires_grad_(True)
        energy = self.energy_ev(r, box)
        grads = torch.autograd.grad([energy], [r], allow_unused=True)
        grad = grads[0]
        if grad is None:
            grad = torch.zeros_like(r)
        forces = -grad * self.energy_scale  # the gradient is already per nm: eV/nm -> kJ/mol/nm
        return (energy.detach() * self.energy_scale).to(positions.dtype), forces.to(positions.dtype)


def script_openmm(model: So3krates, outputs_forces: bool) -> torch.jit.ScriptModule:
    cls = OpenMMPotentialWithForces if outputs_forces else OpenMMPotential
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    module = torch.jit.script(cls(model.eval()).eval())
    # Weights become constants; species/atoms/pbc stay settable for each system.
    return torch.jit.freeze(module, preserved_attrs=["species", "atoms", "pbc", "pair_i", "pair_j"])


def export_openmm(model: So3krates, path: Union[str, Path], dtype: torch.dtype, outputs_forces: bool = False) -> Path:
    model = model.to(dtype)
    module = script_openmm(model, outputs_forces)
    meta = build_metadata(model, "openmm", dtype, UNITS, outputs_forces=outputs_forces)
    return save_module(module, path, meta)


def topology_from_symbols(symbols: Sequence[str], residue_name: str = "MOL"):
    """An openmm.app.Topology of one residue holding the given elements (names C1, H2, ...)."""
    from openmm import app

    topology = app.Topology()
    residue = topology.addResidue(residue_name, topology.addChain())
    for k, symbol in enumerate(symbols):
        topology.addAtom(f"{symbol}{k + 1}", app.Element.getBySymbol(symbol), residue)
    return topology


def _atomic_numbers(system: Any) -> list:
    if hasattr(system, "atoms") and callable(system.atoms):  # an openmm.app.Topology
        numbers = []
        for atom in system.atoms():
            if atom.element is None:
                raise ExportError(f"atom {atom.index} ({atom.name}) of the topology has no element; the model needs one for every ML atom")
            numbers.append(atom.element.atomic_number)
        return numbers
    return [int(z) for z in system]


def create_force(
    model_path: Union[str, Path],
    topology_or_atomic_numbers: Any,
    atoms: Optional[Sequence[int]] = None,
    periodic: Optional[bool] = None,
    static_pairs: bool = False,
    box_width: Optional[float] = None,
):
    """An openmmtorch.TorchForce evaluating the exported model on the System's ML atoms.

    topology_or_atomic_numbers: an openmm.app.Topology or the atomic numbers of all particles.
    atoms: indices of the ML atoms (default all). periodic: default from the topology's box.
    static_pairs: use all ordered pairs of ML atoms instead of a neighbour list (O(N^2), for
    ML regions of up to a few hundred atoms): fixed shapes and no host synchronisation, so the
    force can run in a CUDA graph (it also sets the force's useCUDAGraphs property). Periodic
    systems then use the minimum image, which needs a box at least twice the cutoff wide:
    give the smallest box width in nm as box_width (taken from the topology if it has a box).
    """
    import openmmtorch  # after torch (imported above): openmmtorch needs torch's libraries loaded

    module, meta = load_module(model_path, "openmm")
    numbers = _atomic_numbers(topology_or_atomic_numbers)
    if periodic is None:
        periodic = hasattr(topology_or_atomic_numbers, "getPeriodicBoxVectors") and (
            topology_or_atomic_numbers.getPeriodicBoxVectors() is not None
        )
    if periodic and meta.get("nonlocal_attention"):
        raise ExportError(
            f"{model_path} has non-local attention, which is defined for non-periodic systems only: "
            "use it without a periodic box, or export a local model"
        )
    if atoms is not None:
        atoms = [int(a) for a in atoms]
        bad = [a for a in atoms if not 0 <= a < len(numbers)]
        if bad or len(set(atoms)) != len(atoms):
            raise ExportError(f"atoms must be distinct indices in 0..{len(numbers) - 1}; got {bad or 'duplicates'}")
        ml_numbers = [numbers[a] for a in atoms]
    else:
        ml_numbers = numbers
    if not ml_numbers:
        raise ExportError("no ML atoms: give a topology with atoms or a non-empty atoms= list")
    index = {z: k for k, z in enumerate(meta["atomic_numbers"])}
    unknown = sorted({z for z in ml_numbers if z not in index})
    if unknown:
        from ase.data import chemical_symbols

        raise ExportError(
            f"element(s) {[chemical_symbols[z] for z in unknown]} are not known to the model {model_path}, "
            f"which was trained for {meta['elements']}"
        )
    module.species = torch.tensor([index[z] for z in ml_numbers], dtype=torch.long)
    module.atoms = torch.tensor(atoms if atoms is not None else [], dtype=torch.long)
    if static_pairs:
        if periodic:
            if box_width is None and hasattr(topology_or_atomic_numbers, "getPeriodicBoxVectors"):
                vectors = topology_or_atomic_numbers.getPeriodicBoxVectors()
                if vectors is not None:
                    box_width = min(vectors[k][k].value_in_unit(vectors[k][k].unit) for k in range(3))
            if box_width is None:
                raise ExportError("static_pairs with a periodic system needs box_width (nm) or a topology with a box")
            if 2 * meta["cutoff"] / 10 > box_width:
                raise ExportError(
                    f"static_pairs uses the minimum image, which needs a box at least twice the cutoff wide "
                    f"({2 * meta['cutoff'] / 10:.2f} nm); this box is {box_width:.2f} nm: use static_pairs=False"
                )
        n = len(ml_numbers)
        i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        off_diagonal = i != j
        module.pair_i, module.pair_j = i[off_diagonal].contiguous(), j[off_diagonal].contiguous()
    force = openmmtorch.TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setOutputsForces(bool(meta.get("outputs_forces", False)))
    if static_pairs:
        force.setProperty("useCUDAGraphs", "true")  # read by the CUDA platform only
    return force


def system_from_atoms(model_path: Union[str, Path], atoms: Any, **force_options: Any):
    """An openmm.System for an ase.Atoms: element masses, the cell as box vectors when it is
    periodic in all directions, and the model's force on every atom."""
    import openmm

    system = openmm.System()
    for mass in atoms.get_masses():
        system.addParticle(float(mass))
    periodic = bool(atoms.pbc.all())
    if periodic:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) * 0.1 for row in atoms.cell.array])
    system.addForce(create_force(model_path, atoms.numbers, periodic=periodic, **force_options))
    return system


def metadata_of(path: Union[str, Path]) -> Dict[str, Any]:
    return load_module(path, "openmm")[1]
