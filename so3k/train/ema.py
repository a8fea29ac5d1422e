"""An exponential moving average of the weights: theta_ema <- d theta_ema + (1 - d) theta after
every optimiser step, with d ramped up as (1 + n) / (10 + n) over the first updates n. The EMA weights are what validation sees and what checkpoints export
(the authors' code, by a bug, effectively used the raw weights)."""

from typing import Dict

import torch
from torch import Tensor, nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.shadow: Dict[str, Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.parameters = {name for name, _ in model.named_parameters()}  # buffers are copied, not averaged
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        # Warm-up: early on the average would be dominated by the random initial weights.
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for name, value in model.state_dict().items():
            if name in self.parameters and decay > 0:
                self.shadow[name].mul_(decay).add_(value.detach(), alpha=1.0 - decay)
            else:
                self.shadow[name].copy_(value)

    def state_dict(self) -> Dict[str, object]:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
