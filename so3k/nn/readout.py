"""Per-atom energy readout e_i = s_{z_i} MLP_E(x_i) + mu_{z_i}.

The per-element scale s and shift mu are buffers, not parameters: training computes them from
its data (force standard deviation; least-squares element energies) and they travel inside
the state_dict, so the model file alone reproduces its energies.
"""

import torch
from torch import Tensor, nn

from .mlp import MLP


class EnergyReadout(nn.Module):
    def __init__(self, features: int, hidden: int, num_elements: int):
        super().__init__()
        self.mlp = MLP([features, hidden, 1])
        self.register_buffer("scale", torch.ones(num_elements))
        self.register_buffer("shift", torch.zeros(num_elements))

    def forward(self, x: Tensor, species: Tensor) -> Tensor:
        """x (N, F), species (N,) -> atomic energies e_i (N,)."""
        return self.mlp(x).squeeze(-1) * self.scale[species] + self.shift[species]
