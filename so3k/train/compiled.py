"""training.compile: the energy and forces of each training step through torch.compile.

The loss needs the forces' derivative by the weights, and the forces are themselves dE/dR, so
the step differentiates twice; torch.compile cannot compile a graph that calls autograd and is
then differentiated again ("aot_autograd does not support double backward"). So the forces are
unfolded first, as in the compiled export (so3k.export.aoti): make_fx traces ForceField in
training mode, with the autograd of the forces written out as ordinary operations, into one graph
(weights, inputs) -> (energy, forces). torch.compile compiles that graph and differentiates it
once, by the weights. Atoms, pairs and structures per batch are symbolic, so one trace and one
compile serve every batch (the graph for single-structure batches is another: ForceField sums
instead of scattering there).
"""

import sys
import time
from typing import Callable, Dict, List

import torch
from torch import Tensor

from .. import keys
from ..errors import TrainingError
from ..forces import ForceField
from ..model import So3krates

ONE_CHUNK = 2**62  # the traced graph does its pair work in one chunk: the chunk count would be a guard


class CompiledForces:
    """ForceField(model) in training mode for the training loop, compiled on first use."""

    def __init__(self, model: So3krates, announce: bool = False):
        if model.config.is_nonlocal:
            raise TrainingError(
                "training.compile does not take non-local models (their all-pairs attention has data-dependent "
                "shapes): set training.compile to false"
            )
        self.model = model
        self.force_field = ForceField(model)
        self.graphs: Dict[bool, Callable] = {}
        self.compile_seconds: Dict[bool, float] = {}  # per graph: trace + compile + its first call
        self.announce = announce

    def _trace(self, example: List[Tensor]) -> Callable:
        from torch.fx.experimental.proxy_tensor import make_fx

        names = ["model." + name for name, _ in self.model.named_parameters()]  # as ForceField holds them

        def energy_forces(weights: List[Tensor], positions: Tensor, species: Tensor, idx_i: Tensor, idx_j: Tensor,
                          offsets: Tensor, cell: Tensor, batch: Tensor):
            out = torch.func.functional_call(self.force_field, dict(zip(names, weights)),
                                             (positions, species, idx_i, idx_j, offsets, cell, batch, cell.shape[0]), strict=False)
            return out[keys.ENERGY], out[keys.FORCES]

        chunk = self.model.pair_chunk
        self.model.pair_chunk = ONE_CHUNK
        try:
            graph = make_fx(energy_forces, tracing_mode="symbolic", _allow_non_fake_inputs=True)(
                list(self.model.parameters()), *example)
        except Exception as error:
            raise TrainingError(f"training.compile could not trace the model ({type(error).__name__}: "
                                f"{str(error).strip().splitlines()[0][:300]}); set training.compile to false") from error
        finally:
            self.model.pair_chunk = chunk
        return torch.compile(graph, dynamic=True)

    def __call__(self, positions: Tensor, species: Tensor, idx_i: Tensor, idx_j: Tensor, offsets: Tensor, cell: Tensor,
                 batch: Tensor, num_graphs: int) -> Dict[str, Tensor]:
        if not self.model.training:
            raise TrainingError("CompiledForces is for training steps: evaluate with ForceField")
        inputs = [positions, species, idx_i, idx_j, offsets, cell, batch]
        single = num_graphs == 1
        first = single not in self.graphs
        if first:
            if self.announce:
                print(f"so3k: compiling the training step for {'single structures' if single else 'batches'} "
                      "(training.compile; about a minute)", file=sys.stderr, flush=True)
            start = time.perf_counter()
            self.graphs[single] = self._trace(inputs)
        energy, forces = self.graphs[single](list(self.model.parameters()), *inputs)  # torch.compile compiles on the first
        if first:
            self.compile_seconds[single] = time.perf_counter() - start
        return {keys.ENERGY: energy, keys.FORCES: forces}
