"""The one force/stress wrapper: energies, forces, virial and stress of a So3krates model by
autograd. Training, the ASE calculator, the OpenMM module and the LAMMPS module all call
ForceField; engine modules add only their units, input layout and metadata.

Stress uses the strain derivative: positions and cell are deformed by (1 + eps) with a
symmetric strain eps at zero, so that stress = (1/V) dE/deps and virial W = -dE/deps (ASE's
convention: positive stress under tension, pressure = -trace(stress)/3). Pair shifts are
rebuilt from integer cell offsets and the deformed cell (so3k.geometry), which is what makes
the derivative exact for small periodic cells where atoms see their own images.
"""

from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from . import keys
from .geometry import check_min_distance, pair_shifts, strained
from .model import So3krates
from .nn.ops import scatter_sum


class ForceField(nn.Module):
    """Energy, per-atom energies, forces and (optionally) virial/stress of a So3krates model."""

    def __init__(self, model: So3krates):
        super().__init__()
        self.model = model

    def forward(
        self,
        positions: Tensor,
        species: Tensor,
        idx_i: Tensor,
        idx_j: Tensor,
        offsets: Tensor,
        cell: Tensor,
        batch: Tensor,
        num_graphs: int,
        compute_stress: bool = False,
        compute_forces: bool = True,
        n_local: int = -1,
        min_distance: float = 0.0,
        compute_virial: bool = False,
        n_owned: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        """positions (N,3) Å; species (N,) int64 (so3k.species); idx_i/idx_j (P,) int64 pairs;
        offsets (P,3) integer cell offsets of neighbour j (zeros without a cell); cell (B,3,3)
        rows = lattice vectors (zeros for molecules); batch (N,) int64 structure of each atom;
        num_graphs B. Inputs are taken in any float dtype, outputs are in the model's.

        Returns (keys.*):
          energy (B,) eV and energies (N,) eV per atom, always;
          forces (N,3) eV/Å with compute_forces (default). Without forces or stress, nothing is
            differentiated and the energy keeps its graph: OpenMM-Torch differentiates it itself;
          virial (B,3,3) eV with compute_stress, and stress (B,3,3) eV/Å^3 when every cell has a
            volume.
        min_distance > 0 (Å): a ValueError names two atoms closer than that (the engines' guard
        against overlapping atoms and blown-up runs; it reads one number back to the host).
        n_local >= 0 (ghost shells under domain decomposition, B = 1): the energy is that of the
        first n_local atoms only, energies has those n_local entries, and forces act on all atoms.
        n_owned, a 0-dim int64 tensor (compiled exports, B = 1), does the same without pruning pairs,
        so that every shape stays static: energies then has all N entries, zero beyond n_owned.
        compute_virial: the virial without the stress (no data-dependent branch on the volume).
        When the model is in training mode, the gradients stay attached (force loss); in eval mode
        the outputs are detached.
        """
        dtype = self.model.expand.dtype
        if positions.dtype != dtype:
            # centre each structure in the input's precision before the cast (to float32): its accuracy
            # would otherwise depend on the distance from the origin (a uniform shift changes no pair)
            if num_graphs == 1:
                centre = positions.detach().mean(0, keepdim=True)
            else:
                counts = torch.zeros(num_graphs, dtype=positions.dtype, device=positions.device).index_add_(
                    0, batch, torch.ones_like(positions[:, 0]))
                centre = (scatter_sum(positions.detach(), batch, num_graphs) / counts[:, None]).index_select(0, batch)
            positions = (positions - centre).to(dtype)
        cell = cell.to(dtype)
        offsets = offsets.to(dtype)
        if (compute_forces or compute_stress) and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        inputs: List[Tensor] = [positions]
        compute_virial = compute_virial or compute_stress
        if compute_virial:
            strain = torch.zeros((num_graphs, 3, 3), dtype=dtype, device=positions.device).requires_grad_(True)
            inputs.append(strain)
            positions_d, cell_d = strained(positions, cell, strain, batch)
        else:
            positions_d, cell_d = positions, cell
        if num_graphs == 1:  # every engine step: one (P,3)x(3,3) matmul, no per-pair gather of cells
            shifts = pair_shifts(offsets, cell_d[0])
        else:
            shifts = pair_shifts(offsets, cell_d, batch.index_select(0, idx_i))
        if min_distance > 0:
            check_min_distance(positions_d, idx_i, idx_j, shifts, min_distance)
        e_i = self.model.atomic_energies(positions_d, species, idx_i, idx_j, shifts, batch, n_local)
        if n_owned is not None:
            e_i = e_i * (torch.arange(e_i.shape[0], device=e_i.device) < n_owned).to(e_i.dtype)
        if n_local >= 0:
            e_i = e_i[:n_local]
            energy = e_i.sum().reshape(1)
        elif num_graphs == 1:  # a sum, not a scatter: fewer kernels, and inductor's CPU scatter into one row fails
            energy = e_i.sum().reshape(1)
        else:
            energy = scatter_sum(e_i, batch, num_graphs)
        out: Dict[str, Tensor] = {keys.ENERGY: energy, keys.ENERGIES: e_i}
        if not (compute_forces or compute_virial):
            return out

        grads = torch.autograd.grad([energy.sum()], inputs, create_graph=self.model.training, allow_unused=True)
        if compute_forces:
            out[keys.FORCES] = -or_zeros(grads[0], positions)
        if compute_virial:
            out[keys.VIRIAL] = -or_zeros(grads[1], inputs[1])
        if compute_stress:
            volume = torch.abs(torch.linalg.det(cell))
            if bool((volume > 0).all()):
                out[keys.STRESS] = -out[keys.VIRIAL] / volume[:, None, None]
        if not self.model.training:
            for key in list(out.keys()):
                out[key] = out[key].detach()
        return out


def or_zeros(grad: Optional[Tensor], like: Tensor) -> Tensor:
    # An input the energy does not depend on (no pairs at all) has no gradient: it is zero.
    if grad is None:
        return torch.zeros_like(like)
    return grad
