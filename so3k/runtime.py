"""Process-wide TorchScript setting for running exported so3k models fast on CPU.

By default the profiling executor specialises the graph on the shapes and requires-grad flags
it sees and builds differentiable subgraphs for fusion; without a fuser (none on CPU in the
PyPI wheels) that only adds work, and energy + forces of a scripted model became 1.2x
(21 atoms) to 1.6x (1,536 atoms) slower than eager. `plain_torchscript` turns the
specialisation off, so the module runs op by op like eager code. The LAMMPS plugin does the
same in C++.
"""

import torch


def plain_torchscript() -> None:
    """No shape specialisation or fusion groups in TorchScript's executor (process-wide)."""
    torch.jit.set_fusion_strategy([("STATIC", 0), ("DYNAMIC", 0)])
