"""Pictures of a data set: energy trace and distributions of energies, forces and distances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from so3k.data.frames import Frames
from so3k.data.stats import energy_residuals, min_distances


def plot_dataset(frames: Frames, path: str | Path, title: str = "") -> Path:
    """Save a 2x2 overview: energy per frame, energy histogram, |F| per element, d_min histogram."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    if frames.energy is not None:
        resid = energy_residuals(frames)
        ax[0, 0].plot(resid, lw=0.6)
        ax[0, 1].hist(resid, bins=50)
    for a in (ax[0, 0], ax[0, 1]):
        if frames.energy is None:
            a.text(0.5, 0.5, "no energies", ha="center", transform=a.transAxes)
    ax[0, 0].set(xlabel="frame", ylabel="E − Σ per-element refs (eV)", title="energy per frame")
    ax[0, 1].set(xlabel="E − Σ per-element refs (eV)", ylabel="frames", title="energy distribution")
    if frames.forces is not None:
        norm = np.linalg.norm(frames.forces, axis=1)
        for z in np.unique(frames.numbers):
            ax[1, 0].hist(norm[frames.numbers == z], bins=60, histtype="step", density=True, label=chemical_symbols[z])
        ax[1, 0].legend()
    else:
        ax[1, 0].text(0.5, 0.5, "no forces", ha="center", transform=ax[1, 0].transAxes)
    ax[1, 0].set(xlabel="|F| (eV/Å)", ylabel="density", title="force magnitude per element")
    dmin = min_distances(frames)
    ax[1, 1].hist(dmin[np.isfinite(dmin)], bins=50)
    ax[1, 1].set(xlabel="smallest interatomic distance (Å)", ylabel="frames", title="closest contact")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
