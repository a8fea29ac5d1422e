"""Dense networks used by the filters and the readout."""

from typing import List

from torch import Tensor, nn


class MLP(nn.Module):
    """Linear layers with biases and SiLU between them (none after the last)."""

    def __init__(self, widths: List[int]):
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"an MLP needs at least input and output widths, got {widths}")
        layers: List[nn.Module] = []
        for k in range(len(widths) - 1):
            layers.append(nn.Linear(widths[k], widths[k + 1]))
            if k < len(widths) - 2:
                layers.append(nn.SiLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
