"""Error sums over batches (mergeable across processes) and the metrics derived from them."""

import math
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from .. import keys
from ..forces import ForceField

# Order of the entries of an error-sum vector.
SUMS = ("structures", "abs_e", "sq_e", "abs_e_atom", "sq_e_atom", "components", "abs_f", "sq_f", "loss_e", "loss_f")


def error_sums(pred_e: Tensor, ref_e: Tensor, n_atoms: Tensor, pred_f: Tensor, ref_f: Tensor) -> Tensor:
    de = (pred_e - ref_e).detach()
    df = (pred_f - ref_f).detach()
    return torch.stack(
        [
            torch.tensor(float(de.numel()), dtype=torch.float64, device=de.device),  # on the errors' device (CUDA training)
            de.abs().sum().double(), (de**2).sum().double(),
            (de.abs() / n_atoms).sum().double(), ((de / n_atoms) ** 2).sum().double(),
            torch.tensor(float(df.numel()), dtype=torch.float64, device=de.device),
            df.abs().sum().double(), (df**2).sum().double(),
            (de**2).sum().double(), (df**2).sum().double(),
        ]
    )


def metrics_from_sums(sums: Tensor, energy_weight: float, forces_weight: float, prefix: str) -> Dict[str, float]:
    s = dict(zip(SUMS, sums.tolist()))
    # nothing counted (every step of an epoch skipped): NaN, not an error of 0
    m = s["structures"] if s["structures"] > 0 else math.nan
    c = s["components"] if s["components"] > 0 else math.nan
    return {
        f"{prefix}_loss": energy_weight * s["loss_e"] / m + forces_weight * s["loss_f"] / c,
        f"{prefix}_energy_mae_meV": 1e3 * s["abs_e"] / m,
        f"{prefix}_energy_rmse_meV": 1e3 * (s["sq_e"] / m) ** 0.5,
        f"{prefix}_energy_mae_meV_atom": 1e3 * s["abs_e_atom"] / m,
        f"{prefix}_energy_rmse_meV_atom": 1e3 * (s["sq_e_atom"] / m) ** 0.5,
        f"{prefix}_forces_mae_meV_A": 1e3 * s["abs_f"] / c,
        f"{prefix}_forces_rmse_meV_A": 1e3 * (s["sq_f"] / c) ** 0.5,
    }


def predict(force_field: ForceField, loader, device: torch.device, keep: bool = False, progress=None):
    """Error sums over a loader (and, with keep, the predictions as numpy arrays)."""
    sums = torch.zeros(len(SUMS), dtype=torch.float64)
    kept: Dict[str, List[np.ndarray]] = {"index": [], "energy": [], "ref_energy": [], "forces": [], "ref_forces": [], "n_atoms": []}
    for batch in loader:
        if batch is None:
            continue
        batch = batch.to(device)
        out = force_field(**batch.graph.inputs())
        energy, forces = out[keys.ENERGY].detach(), out[keys.FORCES].detach()
        sums += error_sums(energy, batch.energy, batch.n_atoms, forces, batch.forces).cpu()
        if keep:
            for name, value in (("index", batch.index), ("energy", energy), ("ref_energy", batch.energy), ("forces", forces),
                                ("ref_forces", batch.forces), ("n_atoms", batch.n_atoms)):
                kept[name].append(value.cpu().double().numpy())
        if progress is not None:
            progress.update(1)
    predictions: Optional[Dict[str, np.ndarray]] = None
    if keep:
        predictions = {k: np.concatenate(v) if v else np.zeros(0) for k, v in kept.items()}
    return sums, predictions
