"""Small tensor operations: flush_tiny removes what would become subnormal, nothing else."""

import torch

from so3k.nn.ops import flush_tiny


def test_flush_tiny_zeroes_only_negligible_values():
    for dtype, cut in ((torch.float32, 1e-30), (torch.float64, 1e-300)):
        x = torch.tensor([0.0, cut / 10, -cut / 10, cut * 10, -1.5, 1e-20, 3.0], dtype=dtype).requires_grad_(True)
        y = flush_tiny(x)
        assert y[:3].eq(0).all() and torch.equal(y[3:], x[3:])
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.equal(g, torch.tensor([0, 0, 0, 1, 1, 1, 1], dtype=dtype))


def test_flush_tiny_clears_the_subnormal_radial_basis():
    """The PhysNet basis underflows into subnormals for some distances; flushed, none are left."""
    from so3k.nn.radial import PhysNetBasis

    rbf = PhysNetBasis(32, 5.0)(torch.linspace(0.5, 5.0, 200))
    tiny = torch.finfo(torch.float32).tiny
    assert ((rbf != 0) & (rbf.abs() < tiny)).any()  # the problem exists
    flushed = flush_tiny(rbf)
    assert not ((flushed != 0) & (flushed.abs() < tiny)).any()
    assert (flushed - rbf).abs().max() < 1e-30
