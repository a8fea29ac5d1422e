"""Evaluate a checkpoint on labelled data, and describe a checkpoint."""

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from .checkpoint import inference_model, load_checkpoint, model_from_checkpoint
from .data.frames import Frames
from .data.io import read_frames
from .errors import InputError
from .forces import ForceField
from .model import count_parameters
from .species import species_index
from .train.data import FrameDataset, GlobalBatchSampler, make_loader
from .train.metrics import metrics_from_sums, predict
from .train.trainer import resolve_data_path

SUBSETS = ("all", "train", "valid", "test")


def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    subset: str = "all",
    batch_size: int = 20,
    output: Optional[str | Path] = None,
    energy_key: str = "energy",
    forces_key: str = "forces",
    energy_unit: Optional[str] = None,
    length_unit: str = "Angstrom",
    progress: bool = True,
) -> Dict[str, float]:
    """Energy and force errors of the checkpoint's EMA model on `data` (a file or shipped data set name).

    subset: 'all' frames, or the 'train' / 'valid' / 'test' frames of the split stored in the
    checkpoint (meaningful when `data` is the file the model was trained on).
    output: write predictions and references (.npz, or .extxyz with the predictions as labels
    and the references in ref_energy / ref_forces).
    """
    source = resolve_data_path(str(data))
    if output is not None and Path(output).resolve() == source.resolve():
        raise InputError(f"--output {output} is the data file itself: writing predictions would replace its labels; choose another file")
    content = load_checkpoint(checkpoint)
    model = inference_model(content)
    frames = read_frames(source, energy_key=energy_key, forces_key=forces_key, energy_unit=energy_unit,
                         length_unit=length_unit, require_energy=True)
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    if subset not in SUBSETS:
        raise InputError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    if subset != "all":
        indices = content.get("split", {}).get(subset)
        if not indices:
            raise InputError(f"the checkpoint records no '{subset}' frames; use subset 'all' or one of its non-empty splits")
        trained_on = content.get("data_fingerprint")
        if trained_on is not None and trained_on[:64] != frames.fingerprint():
            raise InputError(
                f"the checkpoint's '{subset}' frames belong to the data it was trained on, and {data} is not that data (or it "
                "was read with other keys or units): use --subset all, or give the training file"
            )
        if max(indices) >= len(frames):
            raise InputError(f"the checkpoint's '{subset}' split refers to frame {max(indices)}, but {data} has {len(frames)} frames: is it the training file?")
        frames = frames.subset(indices)
    species_index(frames.numbers, model.config.elements, where=f" in {data}")
    has_forces = frames.forces is not None
    dtype = next(model.parameters()).dtype
    dataset = FrameDataset(frames, model.config.elements, model.cutoff, dtype)
    sampler = GlobalBatchSampler(len(dataset), batch_size, False, 0)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(sampler), desc="evaluating", leave=False)
    sums, predictions = predict(ForceField(model).eval(), make_loader(dataset, sampler), torch.device("cpu"), keep=True, progress=bar)
    if bar is not None:
        bar.close()
    metrics = metrics_from_sums(sums, 1.0, 1.0, "test")
    result = {k.replace("test_", ""): v for k, v in metrics.items() if not k.endswith("_loss")}
    if not has_forces:
        result = {k: v for k, v in result.items() if not k.startswith("forces")}
    result["frames"] = float(len(frames))
    if output is not None:
        write_predictions(frames, predictions, Path(output), has_forces)
    return result


def write_predictions(frames: Frames, predictions: Dict[str, np.ndarray], path: Path, has_forces: bool) -> Path:
    # the references as read (float64), not as the model's dtype saw them; the loader keeps file order
    index = predictions["index"].astype(int)
    assert (np.diff(index) > 0).all(), "predictions must come in frame order"
    predictions = dict(predictions, ref_energy=frames.energy[index])
    if has_forces:
        predictions["ref_forces"] = frames.forces
    if path.suffix == ".npz":
        np.savez_compressed(path, **predictions)
        return path
    info = {k: np.asarray(v)[index] for k, v in frames.info.items()}
    info["ref_energy"] = predictions["ref_energy"]
    labelled = Frames(
        numbers=frames.numbers, positions=frames.positions, n_atoms=frames.n_atoms, cell=frames.cell, pbc=frames.pbc,
        energy=predictions["energy"], forces=predictions["forces"], info=info,
    )
    images = labelled.to_atoms()
    if has_forces:  # per-atom reference forces go into the arrays of each frame
        ptr = frames.ptr
        for k, atoms in enumerate(images):
            atoms.arrays["ref_forces"] = predictions["ref_forces"][ptr[k] : ptr[k + 1]]
    from ase.io import write

    write(path, images, format="extxyz")
    return path


def describe(checkpoint: str | Path) -> str:
    """A human-readable summary of a checkpoint: model, normalisation, training history."""
    content = load_checkpoint(checkpoint)
    model = model_from_checkpoint(content)
    c = model.config
    lines = [
        f"checkpoint    {checkpoint} (format {content['format_version']}, so3k {content.get('so3k_version')}, torch {content.get('torch_version')})",
        f"model         {c.preset}: {count_parameters(model):,} parameters, {c.layers} layers, F = {c.features}, "
        f"{c.heads} heads, degrees {list(c.degrees)}, cutoff {c.cutoff} Å, receptive field {c.receptive_field:g} Å",
        f"elements      {', '.join(c.elements)}",
        f"dtype         {str(next(model.parameters()).dtype).replace('torch.', '')}",
    ]
    norm = content.get("normalization")
    if norm:
        shifts = ", ".join(f"{e} {v:.4f}" for e, v in norm["shifts"].items())
        lines.append(f"normalisation energy shifts (eV/atom) {shifts}; scale {norm['scale']:.4f} eV")
    history: Sequence[Dict[str, Any]] = content.get("history") or []
    if history:
        best = min(history, key=lambda h: h["valid_loss"])
        last = history[-1]
        lines += [
            f"training      {last['epoch']} epochs, {last['step']} steps, {last['time_s'] / 60:.1f} min; last lr {last['lr']:.2e}",
            f"best epoch    {best['epoch']}: validation energy MAE {best['valid_energy_mae_meV']:.2f} meV "
            f"({best['valid_energy_mae_meV_atom']:.3f} meV/atom), forces MAE {best['valid_forces_mae_meV_A']:.2f} meV/Å",
        ]
    split = content.get("split")
    if split:
        lines.append("split         " + ", ".join(f"{k} {len(v)}" for k, v in split.items()))
    lines.append("config        " + ", ".join(f"{k}={v}" for k, v in c.to_dict().items() if k not in ("elements",)))
    return "\n".join(lines)
