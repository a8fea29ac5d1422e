"""Forces, virial and stress of a pure energy model, by autograd.

Stress uses the strain derivative: positions and cell are deformed by (1 + eps) with a
symmetric strain eps at zero, so that stress = (1/V) dE/deps and virial W = -dE/deps (ASE's
convention: positive stress under tension, pressure = -trace(stress)/3).
Pair shifts are rebuilt from integer cell offsets and the deformed cell, which is what makes
the derivative exact for small periodic cells where atoms see their own images.
"""

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from . import keys
from .model import So3krates


class ForceField(nn.Module):
    """Energy, forces and (optionally) virial/stress of a So3krates model."""

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
    ) -> Dict[str, Tensor]:
        """positions (N,3) Å, species (N,), idx_i/idx_j (P,), offsets (P,3) integer cell offsets of
        neighbour j (same float dtype as positions), cell (B,3,3) rows = lattice vectors (zeros
        for molecules), batch (N,), num_graphs B.

        Returns energy (B,) eV, forces (N,3) eV/Å and, with compute_stress, virial (B,3,3) eV
        and stress (B,3,3) eV/Å^3. Gradients stay attached in training mode (force loss).
        """
        positions = positions if positions.requires_grad else positions.detach().requires_grad_(True)
        inputs: List[Tensor] = [positions]
        if compute_stress:
            strain = torch.zeros((num_graphs, 3, 3), dtype=positions.dtype, device=positions.device)
            strain.requires_grad_(True)
            inputs.append(strain)
            positions_d, cell_d = strained(positions, cell, strain, batch)
        else:
            positions_d = positions
            cell_d = cell
        shifts = torch.bmm(offsets[:, None, :], cell_d.index_select(0, batch.index_select(0, idx_i))).squeeze(1)
        energy = self.model(positions_d, species, idx_i, idx_j, shifts, batch, num_graphs)

        grads = torch.autograd.grad([energy.sum()], inputs, create_graph=self.training, allow_unused=True)
        out: Dict[str, Tensor] = {keys.ENERGY: energy, keys.FORCES: -or_zeros(grads[0], positions)}
        if compute_stress:
            de_deps = or_zeros(grads[1], inputs[1])
            volume = torch.abs(torch.linalg.det(cell))
            if bool((volume == 0).any()):
                raise ValueError("stress needs a periodic cell with non-zero volume for every structure")
            out[keys.VIRIAL] = -de_deps
            out[keys.STRESS] = de_deps / volume[:, None, None]
        return out


def strained(positions: Tensor, cell: Tensor, strain: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor]:
    """Positions (N,3) and cells (B,3,3) deformed by (1 + eps), eps the symmetric part of
    `strain` (B,3,3); the derivative of the energy at strain = 0 is -virial."""
    eps = 0.5 * (strain + strain.transpose(1, 2))
    positions_d = positions + torch.bmm(positions[:, None, :], eps[batch]).squeeze(1)
    return positions_d, cell + torch.bmm(cell, eps)


def or_zeros(grad: Optional[Tensor], like: Tensor) -> Tensor:
    # An input the energy does not depend on (no pairs at all) has no gradient: it is zero.
    if grad is None:
        return torch.zeros_like(like)
    return grad
