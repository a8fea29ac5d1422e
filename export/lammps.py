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
images, so no cell is needed) and ForceField's n_local mode returns the energy of the OWNED
atoms only with forces on ALL atoms; with `newton on`, LAMMPS sends the ghost forces back to
their owners, and the virial is sum_i r_i f_i over owned and ghost atoms.

The per-layer exchange path (`halo_*`, the default on several ranks) needs ghosts out to one
cutoff (+ skin) only. The plugin drives the model layer by layer and copies the owners' features
to their ghost images between layers with LAMMPS's forward communication, and sums what the
backward pass puts on ghost features back into their owners with reverse communication:

    halo_start(positions (N,3), species (N,), n_local: int)
        -> idx_i, idx_j (P,) pairs whose centre is owned; rbf (P,K), sph (P,M), phi (P,) their
           geometry (attached to positions); x (N,F), chi (N,M) the first layer's input, exact
           on owned rows (the plugin exchanges them before layer 0)
    halo_layer(t: int, x, chi, rbf, sph, phi, idx_i, idx_j, n_local: int) -> x, chi (n_local rows) after layer t
    halo_readout(x, species, n_local: int) -> atom_energies (n_local,), in the model's dtype

`single_domain` is the path for one MPI rank: the owned atoms and the box, with periodic images
taken from the cell, exactly as the ASE calculator does; no ghost shell is evaluated, and the
virial (xx, yy, zz, xy, xz, yz; sum r f convention, -dE/d strain) comes from the strain
derivative. The C++ plugin keeps copies of CONTRACT and metadata.FORMAT_VERSION; a test pins them.
"""

from pathlib import Path
from typing import Tuple, Union

import torch
from torch import Tensor, nn

from so3k import keys
from so3k.forces import ForceField
from so3k.geometry import check_min_distance
from so3k.model import So3krates
from so3k.neighbors import neighbor_list

from .metadata import build_metadata, save_module

UNITS = {"style": "metal", "positions": "Angstrom", "energy": "eV", "forces": "eV/Angstrom", "virial": "eV"}
CONTRACT = "positions,species,n_local;single_domain:positions,species,cell,pbc;halo:start,layer,readout"
MIN_DISTANCE = 0.5  # Å, as the ASE calculator's default


class LAMMPSPotential(nn.Module):
    def __init__(self, model: So3krates):
        super().__init__()
        self.force_field = ForceField(model)
        self.cutoff = float(model.cutoff)
        # closer atoms stop the run (overlap, or a blown-up simulation); pair_style keyword min_distance
        self.register_buffer("min_distance", torch.tensor(MIN_DISTANCE, dtype=torch.float64))

    def forward(self, positions: Tensor, species: Tensor, n_local: int) -> Tuple[Tensor, Tensor, Tensor]:
        idx_i, idx_j, offsets = neighbor_list(positions, self.cutoff, None, None)
        cell = positions.new_zeros((1, 3, 3))
        batch = torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device)
        out = self.force_field(positions, species, idx_i, idx_j, offsets, cell, batch, 1, n_local=n_local,
                               min_distance=float(self.min_distance))
        dtype = positions.dtype
        return out[keys.ENERGY].to(dtype), out[keys.FORCES].to(dtype), out[keys.ENERGIES].to(dtype)

    @torch.jit.export
    def single_domain(self, positions: Tensor, species: Tensor, cell: Tensor, pbc: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        idx_i, idx_j, offsets = neighbor_list(positions, self.cutoff, cell, pbc)
        batch = torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device)
        out = self.force_field(positions, species, idx_i, idx_j, offsets, cell[None], batch, 1, compute_stress=True,
                               min_distance=float(self.min_distance))
        w = out[keys.VIRIAL][0]
        virial = torch.stack([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])
        dtype = positions.dtype
        return out[keys.ENERGY].to(dtype), out[keys.FORCES].to(dtype), out[keys.ENERGIES].to(dtype), virial.to(dtype)

    @torch.jit.export
    def halo_start(self, positions: Tensor, species: Tensor, n_local: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        model = self.force_field.model
        dtype = model.expand.dtype
        # centred before the cast, as ForceField does: float32 accuracy must not depend on the distance from the origin
        local = (positions - positions.detach().mean(0, keepdim=True)).to(dtype) if positions.shape[0] > 0 else positions.to(dtype)
        idx_i, idx_j, _ = neighbor_list(positions.detach(), self.cutoff, None, None)
        owned = torch.nonzero(idx_i < n_local).squeeze(1)
        idx_i, idx_j = idx_i.index_select(0, owned), idx_j.index_select(0, owned)
        shifts = local.new_zeros((idx_i.shape[0], 3))  # ghosts are periodic images already
        if float(self.min_distance) > 0:
            check_min_distance(local, idx_i, idx_j, shifts, float(self.min_distance))
        rbf, sph, phi = model.geometry(local, idx_i, idx_j, shifts)
        chi = model.initial_sphc(sph, phi, idx_i, positions.shape[0])
        return idx_i, idx_j, rbf, sph, phi, model.embed(species), chi

    @torch.jit.export
    def halo_layer(self, t: int, x: Tensor, chi: Tensor, rbf: Tensor, sph: Tensor, phi: Tensor, idx_i: Tensor,
                   idx_j: Tensor, n_local: int) -> Tuple[Tensor, Tensor]:
        return self.force_field.model.run_layer(t, x, chi, rbf, sph, phi, idx_i, idx_j, n_local)

    @torch.jit.export
    def halo_readout(self, x: Tensor, species: Tensor, n_local: int) -> Tensor:
        return self.force_field.model.readout_energies(x[:n_local], species[:n_local])


def export_lammps(model: So3krates, path: Union[str, Path]) -> Path:
    """Script and save a model prepared for inference (so3k.checkpoint.inference_model)."""
    preserved = ["single_domain", "min_distance", "halo_start", "halo_layer", "halo_readout"]
    module = torch.jit.freeze(torch.jit.script(LAMMPSPotential(model).eval()), preserved_attrs=preserved)
    meta = build_metadata(model, "lammps", UNITS, ghost_cutoff=model.config.receptive_field, contract=CONTRACT)
    return save_module(module, path, meta)
