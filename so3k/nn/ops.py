"""Small tensor operations shared by the blocks, all safe at zero.

"Safe" means finite values AND finite gradients when the argument is exactly zero, which
happens for padding pairs (zero-length pair vectors) and for SPHCs initialised to zero.
"""

import torch
from torch import Tensor


def safe_sqrt(x: Tensor) -> Tensor:
    """sqrt(x) for x >= 0 whose gradient at 0 is 0 instead of inf (double-where trick)."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))


def safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, and 0 where the denominator is 0 (with zero gradient there)."""
    nonzero = denominator != 0
    safe = torch.where(nonzero, denominator, torch.ones_like(denominator))
    return torch.where(nonzero, numerator / safe, torch.zeros_like(numerator))


def scatter_sum(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Sum the rows of src (P, ...) into dim_size rows by index (P,)."""
    shape = [dim_size] + list(src.shape[1:])
    out = torch.zeros(shape, dtype=src.dtype, device=src.device)
    return out.index_add(0, index, src)


def flush_tiny(x: Tensor) -> Tensor:
    """x with values of magnitude below 1e-30 (float32) or 1e-300 (float64) set to exactly 0.

    The radial basis underflows for a few per cent of the pairs, down into the subnormal range
    (below 1.2e-38 in float32), and so do its derivatives in the force and training passes.
    x86 CPUs handle subnormal operands in microcode: a matmul reading them was measured 50x
    slower (7.3 ms instead of 0.14 ms for the radial layer's weight gradient in a training
    step). Cutting a few orders of magnitude above the subnormal range keeps the derivatives
    of what remains normal too; what is dropped is 23 (float32) or 284 (float64) orders of
    magnitude below rounding."""
    tiny = 1e-30 if x.dtype == torch.float32 else 1e-300
    return torch.where(x.abs() < tiny, torch.zeros_like(x), x)
