"""Neighbour lists in pure torch (TorchScript-scriptable), ASE ``'ijS'`` conventions."""

from .cell_list import NeighborListError, batched_neighbor_list, neighbor_list

__all__ = ["neighbor_list", "batched_neighbor_list", "NeighborListError"]
