"""Learning curves and parity plots (PNG), written into the run folder."""

from pathlib import Path
from typing import Dict, List

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(history: List[Dict[str, float]], path: Path) -> Path:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = [
        ("loss", ["train_loss", "valid_loss"], "loss"),
        ("energy MAE (meV)", ["train_energy_mae_meV", "valid_energy_mae_meV"], "energy"),
        ("force MAE (meV/Å)", ["train_forces_mae_meV_A", "valid_forces_mae_meV_A"], "forces"),
    ]
    for ax, (label, names, _) in zip(axes, panels):
        for name in names:
            values = [h.get(name, np.nan) for h in history]
            label_ = "train (raw weights, during the epoch)" if name.startswith("train") else "validation (EMA weights)"
            ax.plot(epochs, values, label=label_)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    lr_ax = axes[0].twinx()
    lr_ax.plot(epochs, [h["lr"] for h in history], color="grey", lw=0.8, ls="--")
    lr_ax.set_yscale("log")
    lr_ax.set_ylabel("learning rate (dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_parity(predictions: Dict[str, np.ndarray], path: Path, title: str = "") -> Path:
    """Predicted vs reference per-atom energies (relative to their mean) and force components."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    n = predictions["n_atoms"]
    ref_e, pred_e = predictions["ref_energy"] / n, predictions["energy"] / n
    offset = ref_e.mean()
    panels = [
        (axes[0], ref_e - offset, pred_e - offset, "energy per atom − mean (eV)", 1e3 * np.abs(pred_e - ref_e).mean(), "meV/atom"),
        (axes[1], predictions["ref_forces"].ravel(), predictions["forces"].ravel(), "force component (eV/Å)",
         1e3 * np.abs(predictions["forces"] - predictions["ref_forces"]).mean(), "meV/Å"),
    ]
    for ax, ref, pred, label, mae, unit in panels:
        ax.scatter(ref, pred, s=3, alpha=0.4)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.set_title(f"MAE {mae:.2f} {unit}")
        ax.set_aspect("equal", adjustable="datalim")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
