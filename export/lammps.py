"""The LAMMPS side (work in progress for the pair style): a TorchScript module for message
passing under LAMMPS domain decomposition.

Contract (format 1), all in LAMMPS `units metal` (Å, eV):

    forward(positions: (N, 3) float64, species: (N,) int64, n_local: int)
        -> (energy: (1,), forces: (N, 3), atom_energies: (n_local,))

`positions` are the owned atoms (first n_local) followed by the ghost atoms LAMMPS keeps
within the ghost cutoff, which must be the model's receptive field (metadata `ghost_cutoff`:
layers x cutoff, plus one cutoff for the NeurIPS averaged SPHC initialisation): an atom's
energy depends on atoms up to that far. The module builds its own pair list over all N atoms (ghosts are explicit
periodic images, so no cell is needed), evaluates every atom, and returns the energy of the
OWNED atoms only with forces on ALL atoms; with `newton on`, LAMMPS sends the ghost forces back
to their owners, and the virial follows from sum_i r_i f_i over owned and ghost atoms (fdotr).
"""

from pathlib import Path
from typing import Tuple, Union

import torch
from torch import Tensor, nn

from ..model import So3krates
from ..neighbors import neighbor_list
from .metadata import build_metadata, save_module

UNITS = {"style": "metal", "positions": "Angstrom", "energy": "eV", "forces": "eV/Angstrom"}


class LAMMPSPotential(nn.Module):
    def __init__(self, model: So3krates):
        super().__init__()
        self.model = model
        self.cutoff = float(model.cutoff)

    def forward(self, positions: Tensor, species: Tensor, n_local: int) -> Tuple[Tensor, Tensor, Tensor]:
        dtype = self.model.expand.dtype
        r = positions.detach().to(dtype).requires_grad_(True)
        idx_i, idx_j, offsets = neighbor_list(r, self.cutoff, None, None)
        e_i = self.model.atomic_energies(r, species, idx_i, idx_j, offsets)
        energy = e_i[:n_local].sum()
        grads = torch.autograd.grad([energy], [r], allow_unused=True)
        grad = grads[0]
        if grad is None:
            grad = torch.zeros_like(r)
        out = positions.dtype
        return energy.detach().reshape(1).to(out), (-grad).to(out), e_i[:n_local].detach().to(out)


def export_lammps(model: So3krates, path: Union[str, Path], dtype: torch.dtype) -> Path:
    model = model.to(dtype).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    module = torch.jit.freeze(torch.jit.script(LAMMPSPotential(model).eval()))
    meta = build_metadata(
        model, "lammps", dtype, UNITS, ghost_cutoff=model.config.receptive_field, contract="positions,species,n_local"
    )
    return save_module(module, path, meta)
