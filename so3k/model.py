"""The So3krates energy model: explicit tensors in, energies out.

It knows nothing about forces, neighbour lists, units or engines: the pair list (idx_i, idx_j)
and the Cartesian shift of each pair are given, so the same module serves training batches,
the ASE calculator, OpenMM and LAMMPS (ghost atoms simply carry zero shifts). Forces, virial
and stress come from so3k.forces.ForceField, species indices from so3k.species.
"""

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .capabilities import NONLOCAL_REASON
from .config import ModelConfig, model_config
from .geometry import pair_vectors
from .nn.cutoff import make_cutoff
from .nn.embedding import ElementEmbedding
from .nn.layer import So3kratesLayer, chunk_pairs
from .nn.nonlocal_attention import structure_pairs
from .nn.ops import flush_tiny, safe_divide, safe_sqrt, scatter_sum
from .nn.radial import make_radial_basis
from .nn.readout import EnergyReadout
from .nn.sphc import SphcInit, degree_matrix
from .nn.spherical_harmonics import SphericalHarmonics

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
        self.nonlocal_reason = NONLOCAL_REASON  # an attribute: TorchScript cannot read global strings

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

    def pair_features(self, positions: Tensor, idx_i: Tensor, idx_j: Tensor, shifts: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The geometry chain of a pair set: radial basis times cutoff (P, K), spherical
        harmonics of the directions (P, M), cutoff (P,)."""
        r_ij = pair_vectors(positions, idx_i, idx_j, shifts)
        d_ij = safe_sqrt((r_ij * r_ij).sum(-1))
        phi_ij = self.cutoff_fn(d_ij)
        # values below 1e-30 flushed to zero: subnormal operands make the radial matmuls ~50x slower
        rbf_ij = flush_tiny(self.radial_basis(d_ij) * phi_ij[:, None])
        sph_ij = self.spherical_harmonics(safe_divide(r_ij, d_ij[:, None]))
        return rbf_ij, sph_ij, phi_ij

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
        rbf_ij, sph_ij, phi_ij = self.pair_features(positions, idx_i, idx_j, shifts)

        x = self.embedding(species)
        chi = self.sphc_init(sph_ij, phi_ij, idx_i, num_atoms)
        # chunks bound the size of temporaries for glibc's sake; CUDA's caching allocator needs none
        chunk = self.pair_chunk if positions.device.type == "cpu" else 1 << 62
        if n_local >= 0:
            if self.nonlocal_attention:
                raise ValueError("this model cannot evaluate owned and ghost atoms: " + self.nonlocal_reason)
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
                raise ValueError("this model cannot evaluate periodic images: " + self.nonlocal_reason)
            if batch is None:
                batch = torch.zeros(num_atoms, dtype=torch.long, device=positions.device)
            # the SPHC attention's pairs: all pairs of each structure
            g_i, g_j = structure_pairs(batch)
            rbf_g, sph_g, phi_g = self.pair_features(positions, g_i, g_j, positions.new_zeros((g_i.shape[0], 3)))  # no images
            sphc_pairs = chunk_pairs(chunk, rbf_g, sph_g, phi_g, g_i, g_j)
            atoms_in_structure = torch.bincount(batch).index_select(0, batch)
        else:  # the local pairs for both attentions
            g_i, g_j, sphc_pairs, atoms_in_structure = idx_i, idx_j, pairs, self.no_atoms
        for layer in self.layers:
            x, chi = layer(x, chi, pairs, sphc_pairs, g_i, g_j, atoms_in_structure, self.expand)
        return self.readout(x, species)

    # -- per-layer entry points: an engine that exchanges features between layers (LAMMPS over
    # MPI: each rank updates its own atoms, then copies their x and chi to their ghost images)
    # calls these in order; atomic_energies is the same chain in one call.
    @torch.jit.export
    def embed(self, species: Tensor) -> Tensor:
        """x^(0) (N, F) of every atom."""
        return self.embedding(species)

    @torch.jit.export
    def geometry(self, positions: Tensor, idx_i: Tensor, idx_j: Tensor, shifts: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(rbf_ij times phi, Y(u_ij), phi_ij) of the pairs; see pair_features."""
        return self.pair_features(positions, idx_i, idx_j, shifts)

    @torch.jit.export
    def initial_sphc(self, sph_ij: Tensor, phi_ij: Tensor, idx_i: Tensor, num_atoms: int) -> Tensor:
        """chi^(0) (N, M): exact for every atom whose pairs as a centre are all given."""
        return self.sphc_init(sph_ij, phi_ij, idx_i, num_atoms)

    @torch.jit.export
    def run_layer(self, t: int, x: Tensor, chi: Tensor, rbf_ij: Tensor, sph_ij: Tensor, phi_ij: Tensor, idx_i: Tensor,
                  idx_j: Tensor, n_centres: int = -1) -> Tuple[Tensor, Tensor]:
        """Layer t (0-based) on (x, chi) of all atoms: exact for the centres whose pairs are all
        given, provided the neighbours' x and chi are current; rows of other atoms are not.
        n_centres >= 0: the centres are the first n_centres atoms, and only their rows are returned."""
        if self.nonlocal_attention:
            raise ValueError("this model cannot run layer by layer: " + self.nonlocal_reason)
        chunk = self.pair_chunk if x.device.type == "cpu" else 1 << 62
        pairs = chunk_pairs(chunk, rbf_ij, sph_ij, phi_ij, idx_i, idx_j)
        for k, layer in enumerate(self.layers):
            if k == t:
                return layer(x, chi, pairs, pairs, idx_i, idx_j, self.no_atoms, self.expand, n_centres)
        raise ValueError(f"layer {t} does not exist: the model has {self.num_layers} layers")

    @torch.jit.export
    def readout_energies(self, x: Tensor, species: Tensor) -> Tensor:
        """e_i (N,) in eV from the last layer's x."""
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
