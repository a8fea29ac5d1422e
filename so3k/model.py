"""The So3krates energy model: explicit tensors in, energies out.

It knows nothing about forces, neighbour lists, units or engines: the pair list (idx_i, idx_j)
and the Cartesian shift of each pair are given, so the same module serves training batches,
the ASE calculator, OpenMM and LAMMPS (ghost atoms simply carry zero shifts).
"""

from typing import List, Optional, Sequence, Union

import torch
from ase.data import atomic_numbers as symbol_to_number
from torch import Tensor, nn

from .config import ModelConfig, model_config
from .nn.cutoff import make_cutoff
from .nn.embedding import ElementEmbedding
from .nn.layer import So3kratesLayer, chunk_pairs
from .nn.nonlocal_attention import all_pairs
from .nn.ops import flush_tiny, safe_divide, safe_sqrt, scatter_sum
from .nn.radial import make_radial_basis
from .nn.readout import EnergyReadout
from .nn.sphc import SphcInit, degree_matrix
from .nn.spherical_harmonics import SphericalHarmonics

NUM_Z = 119  # atomic numbers 0..118 in the species lookup table
PAIR_CHUNK = 16384  # pairs per chunk of the layers' pair work (see nn.layer.PairChunks)


class So3krates(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        degrees: List[int] = list(config.degrees)
        num_elements = len(config.elements)
        self.cutoff = float(config.cutoff)
        self.num_layers = int(config.layers)
        self.nonlocal_attention = config.is_nonlocal

        species_of_z = torch.full((NUM_Z,), -1, dtype=torch.long)
        for k, symbol in enumerate(config.elements):
            species_of_z[symbol_to_number[symbol]] = k
        self.register_buffer("species_of_z", species_of_z, persistent=False)
        # (|L|, M): broadcasts one number per degree to the 2l+1 components of that degree.
        self.register_buffer("expand", degree_matrix(degrees).T.contiguous(), persistent=False)
        # stands in for the atom counts that only the non-local attention reads
        self.register_buffer("no_atoms", torch.zeros(0, dtype=torch.long), persistent=False)
        self.pair_chunk = PAIR_CHUNK

        self.embedding = ElementEmbedding(num_elements, config.features)
        self.radial_basis = make_radial_basis(config.radial_basis, config.num_radial, config.cutoff)
        self.cutoff_fn = make_cutoff(config.cutoff_function, config.cutoff)
        self.spherical_harmonics = SphericalHarmonics(degrees)
        self.sphc_init = SphcInit(config.sphc_init)
        self.layers = nn.ModuleList(
            [
                So3kratesLayer(
                    features=config.features,
                    heads=config.heads,
                    degrees=degrees,
                    num_radial=config.num_radial,
                    radial_hidden=config.radial_hidden,
                    sphc_hidden=config.sphc_hidden,
                    invariant=config.sphc_invariant,
                    interaction=config.interaction,
                    attention_bias=config.attention_bias,
                    nonlocal_attention=config.nonlocal_attention,
                    nonlocal_threshold=config.nonlocal_threshold,
                )
                for _ in range(config.layers)
            ]
        )
        self.readout = EnergyReadout(config.features, config.readout_hidden, num_elements)

    @torch.jit.export
    def species(self, numbers: Tensor) -> Tensor:
        """Atomic numbers (N,) -> species indices (N,); raises if an element is unknown to the model."""
        if numbers.numel() > 0 and (bool((numbers < 0).any()) or bool((numbers >= self.species_of_z.shape[0]).any())):
            raise ValueError("atomic numbers must lie in 1..118")
        species = self.species_of_z[numbers]
        if bool((species < 0).any()):
            known: List[int] = torch.nonzero(self.species_of_z >= 0).flatten().tolist()
            unknown: List[int] = torch.unique(numbers[species < 0]).tolist()
            raise ValueError(
                "this model does not know atomic number(s) "
                + str(unknown)
                + "; it was built for atomic numbers "
                + str(known)
            )
        return species

    @torch.jit.export
    def atomic_energies(
        self,
        positions: Tensor,
        species: Tensor,
        idx_i: Tensor,
        idx_j: Tensor,
        shifts: Tensor,
        batch: Optional[Tensor] = None,
        n_local: int = -1,
    ) -> Tensor:
        """Energy of each atom (N,) in eV.

        positions (N, 3) Å; species (N,) int64 indices into config.elements; idx_i, idx_j (P,)
        int64 centre and neighbour of each directed pair; shifts (P, 3) Å added to
        positions[idx_j] - positions[idx_i] (periodic images; zeros otherwise). Pairs of length
        zero are treated as padding and ignored. batch (N,) int64 maps atoms to structures
        (None: one structure); only the non-local attention needs it.

        n_local >= 0 (ghost shells under domain decomposition): only the energies of the first
        n_local atoms are wanted. Layer t (0-based) then works only on the pairs whose centre is
        at most layers - 1 - t hops from those atoms; the others cannot reach the wanted
        energies. The energies of the remaining atoms are then not meaningful.
        """
        num_atoms = positions.shape[0]
        # Everything that depends only on the geometry is computed once and shared by the layers.
        r_ij = positions.index_select(0, idx_j) - positions.index_select(0, idx_i) + shifts
        d_ij = safe_sqrt((r_ij * r_ij).sum(-1))
        u_ij = safe_divide(r_ij, d_ij[:, None])
        phi_ij = self.cutoff_fn(d_ij)
        rbf_ij = flush_tiny(self.radial_basis(d_ij) * phi_ij[:, None])
        sph_ij = self.spherical_harmonics(u_ij)

        x = self.embedding(species)
        chi = self.sphc_init(sph_ij, phi_ij, idx_i, num_atoms)
        # chunks bound the size of temporaries for glibc's sake; CUDA's caching allocator needs none
        chunk = self.pair_chunk if positions.device.type == "cpu" else 1 << 62
        if n_local >= 0:
            if self.nonlocal_attention:
                raise ValueError("a non-local model sees whole structures: it cannot be split into owned and ghost atoms")
            depth = hop_depth(idx_i, idx_j, num_atoms, n_local, self.num_layers)
            for t, layer in enumerate(self.layers):
                keep = torch.nonzero(depth.index_select(0, idx_i) <= self.num_layers - 1 - t).squeeze(1)
                pairs = chunk_pairs(chunk, rbf_ij.index_select(0, keep), sph_ij.index_select(0, keep),
                                    phi_ij.index_select(0, keep), idx_i.index_select(0, keep), idx_j.index_select(0, keep))
                x, chi = layer(x, chi, pairs, pairs, idx_i, idx_j, self.no_atoms, self.expand)
            return self.readout(x, species)

        pairs = chunk_pairs(chunk, rbf_ij, sph_ij, phi_ij, idx_i, idx_j)
        if self.nonlocal_attention:
            if bool((shifts != 0).any()):
                raise ValueError(
                    "non-local attention is defined for non-periodic structures only: all pairs of a periodic "
                    "system depend on the choice of cell; use a local model (nonlocal_attention='off')"
                )
            if batch is None:
                batch = torch.zeros(num_atoms, dtype=torch.long, device=positions.device)
            # the SPHC attention's pairs: all pairs of each structure
            g_i, g_j = all_pairs(batch)
            r_g = positions.index_select(0, g_j) - positions.index_select(0, g_i)
            d_g = safe_sqrt((r_g * r_g).sum(-1))
            phi_g = self.cutoff_fn(d_g)
            sph_g = self.spherical_harmonics(safe_divide(r_g, d_g[:, None]))
            rbf_g = flush_tiny(self.radial_basis(d_g) * phi_g[:, None])
            sphc_pairs = chunk_pairs(chunk, rbf_g, sph_g, phi_g, g_i, g_j)
            atoms_in_structure = torch.bincount(batch).index_select(0, batch)
        else:  # the local pairs for both attentions
            g_i, g_j, sphc_pairs, atoms_in_structure = idx_i, idx_j, pairs, self.no_atoms
        for layer in self.layers:
            x, chi = layer(x, chi, pairs, sphc_pairs, g_i, g_j, atoms_in_structure, self.expand)
        return self.readout(x, species)

    def forward(
        self, positions: Tensor, species: Tensor, idx_i: Tensor, idx_j: Tensor, shifts: Tensor, batch: Tensor, num_graphs: int
    ) -> Tensor:
        """Total energy of each structure (num_graphs,) in eV; batch (N,) int64 maps atoms to structures."""
        e_i = self.atomic_energies(positions, species, idx_i, idx_j, shifts, batch, -1)
        return scatter_sum(e_i, batch, num_graphs)


def hop_depth(idx_i: Tensor, idx_j: Tensor, num_atoms: int, n_local: int, max_hops: int) -> Tensor:
    """Fewest pair hops from each atom to one of the first n_local atoms (max_hops + 1 if farther)."""
    depth = torch.full((num_atoms,), max_hops + 1, dtype=torch.long, device=idx_i.device)
    depth[:n_local] = 0
    for _ in range(max_hops):
        # pairs come in both directions: j is at most one hop farther than i
        depth = depth.scatter_reduce(0, idx_j, depth.index_select(0, idx_i) + 1, reduce="amin", include_self=True)
    return depth


def build_model(preset: str = "neurips2022", elements: Sequence[Union[str, int]] = (), **overrides) -> So3krates:
    """An untrained So3krates model: `build_model("neurips2022", elements=["C", "H", "O"], layers=3)`."""
    return So3krates(model_config(preset, elements, **overrides))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
