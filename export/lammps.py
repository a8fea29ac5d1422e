"""The TorchScript module behind `pair_style so3krates` (deploy/lammps/).

Contract (format 1, metadata `contract`), all in LAMMPS `units metal` (Å, eV), float64 in and
out whatever the model's dtype:

    forward(positions (N,3), species (N,) int64, n_local: int)
        -> energy (1,), forces (N,3), atom_energies (n_local,)
    single_domain(positions (n,3), species (n,), cell (3,3), pbc (3,) bool)
        -> energy (1,), forces (n,3), atom_energies (n,), virial (6,)

`forward` is the ghost-shell path for domain decomposition. `positions` are the owned atoms
(first n_local) followed by the ghost atoms LAMMPS keeps within the ghost cutoff, which must be
the model's receptive field (metadata `ghost_cutoff`): an atom's energy depends on atoms up to
that far. The module builds its own pair list over all N atoms (ghosts are explicit periodic
images, so no cell is needed), runs each layer only where its result can still reach an owned
atom's energy (So3krates.atomic_energies with n_local), returns the energy of the OWNED atoms
only with forces on ALL atoms; with `newton on`, LAMMPS sends the ghost forces back to their
owners, and the virial is sum_i r_i f_i over owned and ghost atoms.

`single_domain` is the path for one MPI rank: the owned atoms and the box, with periodic images
taken from the cell, exactly as the ASE calculator does; no ghost shell is evaluated, and the
virial (xx, yy, zz, xy, xz, yz; sum r f convention, -dE/d strain) comes from the strain
derivative.
"""

from pathlib import Path
from typing import Tuple, Union

import torch
from torch import Tensor, nn

from ..forces import or_zeros, strained
from ..model import So3krates
from ..neighbors import neighbor_list
from .metadata import build_metadata, save_module

UNITS = {"style": "metal", "positions": "Angstrom", "energy": "eV", "forces": "eV/Angstrom", "virial": "eV"}
CONTRACT = "positions,species,n_local;single_domain:positions,species,cell,pbc"


class LAMMPSPotential(nn.Module):
    def __init__(self, model: So3krates):
        super().__init__()
        self.model = model
        self.cutoff = float(model.cutoff)

    def forward(self, positions: Tensor, species: Tensor, n_local: int) -> Tuple[Tensor, Tensor, Tensor]:
        dtype = self.model.expand.dtype
        r = positions.detach().to(dtype).requires_grad_(True)
        idx_i, idx_j, offsets = neighbor_list(r, self.cutoff, None, None)
        e_i = self.model.atomic_energies(r, species, idx_i, idx_j, offsets, None, n_local)
        energy = e_i[:n_local].sum()
        grad = or_zeros(torch.autograd.grad([energy], [r], allow_unused=True)[0], r)
        out = positions.dtype
        return energy.detach().reshape(1).to(out), (-grad).to(out), e_i[:n_local].detach().to(out)

    @torch.jit.export
    def single_domain(self, positions: Tensor, species: Tensor, cell: Tensor, pbc: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        dtype = self.model.expand.dtype
        r = positions.detach().to(dtype).requires_grad_(True)
        h = cell.detach().to(dtype)
        idx_i, idx_j, offsets = neighbor_list(r, self.cutoff, h, pbc)
        strain = torch.zeros((1, 3, 3), dtype=dtype, device=r.device).requires_grad_(True)
        batch = torch.zeros(r.shape[0], dtype=torch.long, device=r.device)
        r_d, h_d = strained(r, h[None], strain, batch)
        shifts = offsets @ h_d[0]
        e_i = self.model.atomic_energies(r_d, species, idx_i, idx_j, shifts, None, -1)
        energy = e_i.sum()
        grads = torch.autograd.grad([energy], [r, strain], allow_unused=True)
        w = -or_zeros(grads[1], strain)[0]
        virial = torch.stack([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])
        out = positions.dtype
        forces = -or_zeros(grads[0], r)
        return energy.detach().reshape(1).to(out), forces.to(out), e_i.detach().to(out), virial.detach().to(out)


def export_lammps(model: So3krates, path: Union[str, Path], dtype: torch.dtype) -> Path:
    model = model.to(dtype).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    module = torch.jit.freeze(torch.jit.script(LAMMPSPotential(model).eval()), preserved_attrs=["single_domain"])
    meta = build_metadata(
        model, "lammps", dtype, UNITS, ghost_cutoff=model.config.receptive_field, contract=CONTRACT
    )
    return save_module(module, path, meta)
