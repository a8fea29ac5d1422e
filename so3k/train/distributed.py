"""Data parallelism with torch.distributed, launched by torchrun (NCCL on GPUs, gloo on CPUs).

Every process holds the whole model and a share of each global batch; the gradients of the
per-process loss sums are summed across processes, which is the gradient of the global loss.
Without torchrun (no WORLD_SIZE in the environment) everything runs in one process.
"""

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist
from torch import Tensor

from so3k.errors import DeviceError


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def sum_(self, t: Tensor) -> Tensor:
        """In-place sum over processes (no-op with one process). NCCL reduces device tensors
        only, so host tensors (counters, error sums) make a round trip through the GPU."""
        if self.active:
            if self.device.type == "cuda" and t.device.type != "cuda":
                on_device = t.to(self.device)
                dist.all_reduce(on_device, op=dist.ReduceOp.SUM)
                t.copy_(on_device.cpu())
            else:
                dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def sum_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        if not self.active:
            return
        params = [p for p in parameters if p.requires_grad]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        start = 0
        for p in params:
            n = p.numel()
            p.grad = flat[start : start + n].view_as(p).clone()
            start += n

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str = "cpu") -> Context:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("training.device is cuda but no CUDA device is available; use device: cpu")
    if world_size <= 1:
        return Context(0, 1, torch.device("cuda" if device == "cuda" else "cpu"))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return Context(rank, world_size, torch.device("cuda", local_rank))
    dist.init_process_group("gloo")
    return Context(rank, world_size, torch.device("cpu"))
