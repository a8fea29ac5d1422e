"""Per-element energy shifts and the energy scale, from the training split only.

The readout is e_i = s * MLP(x_i) + mu_{z_i}: mu by least squares of the training energies on
the element counts (what composition alone explains), s = standard deviation of the training
force components (the scale the network's output has to reach), or of the per-atom energy
residuals when the data have no forces. Both are stored in the model's buffers and in the
checkpoint.
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
from ase.data import chemical_symbols

from ..data.frames import Frames
from ..data.stats import element_counts
from ..errors import InputError


@dataclass
class Normalization:
    shifts: Dict[str, float]  # eV per atom of each element
    scale: float  # eV (per atom)

    def to_dict(self) -> Dict[str, object]:
        return {"shifts": dict(self.shifts), "scale": float(self.scale)}


def element_count_matrix(frames: Frames, elements: Sequence[str]) -> np.ndarray:
    """(M, E) number of atoms of each element (columns in the order of `elements`) per frame."""
    counts, zs = element_counts(frames)
    column = {chemical_symbols[z]: k for k, z in enumerate(zs)}
    out = np.zeros((len(frames), len(elements)))
    for k, element in enumerate(elements):
        if element in column:
            out[:, k] = counts[:, column[element]]
    return out


def fit_normalization(frames: Frames, elements: Sequence[str]) -> Normalization:
    if frames.energy is None:
        raise InputError("the training data have no energies: per-element energy shifts cannot be fitted")
    counts = element_count_matrix(frames, elements)
    # lstsq gives the minimum-norm solution when the composition never varies (one molecule):
    # then only the sum of the shifts is determined, which is all the energies can tell.
    shifts, *_ = np.linalg.lstsq(counts, frames.energy, rcond=None)
    if frames.forces is not None and frames.forces.size:
        scale = float(np.std(frames.forces))
    else:
        scale = float(np.std((frames.energy - counts @ shifts) / frames.n_atoms))
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return Normalization(shifts={e: float(v) for e, v in zip(elements, shifts)}, scale=scale)


def apply_normalization(model, normalization: Normalization) -> None:
    """Write shifts and scale into the model's readout buffers (in place)."""
    elements: List[str] = list(model.config.elements)
    readout = model.readout
    readout.shift.copy_(readout.shift.new_tensor([normalization.shifts[e] for e in elements]))
    readout.scale.fill_(normalization.scale)
