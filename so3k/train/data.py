"""Frames to training batches.

Structures stay as flat arrays (so3k.data.Frames); a batch's pair list is built when the batch
is drawn, with the torch cell list, so nothing scales with the data set beyond the frames
themselves. The sampler draws the same global batches whatever the number of processes: one
permutation per epoch from (seed, epoch), cut into global batches, and process r of W takes
items r, r+W, ... of each global batch.
"""

from dataclasses import dataclass
from typing import Iterator, List, Sequence

import numpy as np
import torch
from ase import Atoms
from torch import Tensor

from ..data.frames import Frames
from ..graph import Graph, build_graph


@dataclass
class Batch:
    graph: Graph
    energy: Tensor  # (B,) eV
    forces: Tensor  # (N, 3) eV/Å
    n_atoms: Tensor  # (B,) atoms per structure (float, for per-atom errors)
    index: Tensor  # (B,) frame indices in the data set

    def to(self, device: torch.device) -> "Batch":
        g = self.graph
        graph = Graph(
            positions=g.positions.to(device), species=g.species.to(device), idx_i=g.idx_i.to(device),
            idx_j=g.idx_j.to(device), offsets=g.offsets.to(device), cell=g.cell.to(device), pbc=g.pbc.to(device),
            batch=g.batch.to(device), num_graphs=g.num_graphs,
        )
        return Batch(graph, self.energy.to(device), self.forces.to(device), self.n_atoms.to(device), self.index.to(device))


class FrameDataset(torch.utils.data.Dataset):
    """Indexable structures of a Frames object; items are frame indices, collate builds the batch."""

    def __init__(self, frames: Frames, elements: Sequence[str], cutoff: float, dtype: torch.dtype, min_distance: float = 0.5):
        self.frames = frames
        self.elements = list(elements)
        self.cutoff = float(cutoff)
        self.dtype = dtype
        self.min_distance = float(min_distance)
        self.ptr = frames.ptr  # once: Frames.ptr is an O(M) cumulative sum

    def structure(self, k: int) -> Atoms:
        a, b = self.ptr[k], self.ptr[k + 1]
        f = self.frames
        return Atoms(numbers=f.numbers[a:b], positions=f.positions[a:b], cell=f.cell[k], pbc=f.pbc[k])

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, k: int) -> int:
        return int(k)

    def collate(self, indices: List[int]) -> Batch:
        structures = [self.structure(k) for k in indices]
        graph = build_graph(structures, self.elements, self.cutoff, self.dtype, "cpu", self.min_distance)
        f = self.frames
        if f.forces is not None:
            forces = np.concatenate([f.forces[self.ptr[k] : self.ptr[k + 1]] for k in indices])
        else:  # energy-only data: the loss gives forces weight 0 (checked before training)
            forces = np.zeros((int(graph.positions.shape[0]), 3))
        energy = f.energy[indices] if f.energy is not None else np.zeros(len(indices))
        return Batch(
            graph=graph,
            energy=torch.tensor(energy, dtype=self.dtype),
            forces=torch.tensor(forces, dtype=self.dtype),
            n_atoms=torch.tensor(self.frames.n_atoms[indices], dtype=self.dtype),
            index=torch.tensor(indices, dtype=torch.long),
        )


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Yields this process's share of each global batch; identical global batches for any world size."""

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> List[Tensor]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        return list(torch.split(order, self.batch_size))

    def __iter__(self) -> Iterator[List[int]]:
        for batch in self.global_batches():
            mine = batch[self.rank :: self.world_size]
            yield mine.tolist()  # may be empty on some ranks for a short last batch

    def __len__(self) -> int:
        return (self.size + self.batch_size - 1) // self.batch_size


def make_loader(dataset: FrameDataset, sampler: GlobalBatchSampler, workers: int = 0) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=_Collate(dataset), num_workers=workers)


class _Collate:
    # A picklable callable, so that DataLoader workers can build batches in parallel.
    def __init__(self, dataset: FrameDataset):
        self.dataset = dataset

    def __call__(self, indices: List[int]):
        if not indices:
            return None
        return self.dataset.collate(indices)
