"""Checkpoints: plain dicts of tensors and primitives (never a pickled module), loadable with
torch.load(..., weights_only=True).

    format, format_version, so3k_version, torch_version
    model_config     ModelConfig.to_dict()
    state_dict       EMA weights (the model; what evaluation, calculators and export use)
    raw_state_dict   the optimiser's weights
    normalization    per-element shifts and scale fitted on the training split
    train_config     the resolved training config
    training_state   epoch, step, optimiser, schedule, EMA, early-stopping counters, elapsed time
    history          per-epoch metrics

Training writes them (so3k.train); everything that runs a model reads them through
`model_from_checkpoint`, or `inference_model`, which also prepares a private copy for inference.
"""

import copy
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from . import __version__
from .config import ModelConfig
from .errors import InputError, MissingFileError, So3kError
from .model import So3krates

FORMAT = "so3k-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(So3kError, ValueError):
    """A file that is not a usable so3k checkpoint; the message says why."""


def save_checkpoint(path: Union[str, Path], content: Dict[str, Any]) -> None:
    """Write atomically: a crash while saving never leaves a truncated checkpoint behind."""
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "so3k_version": __version__, "torch_version": str(torch.__version__)}
    payload.update(content)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"checkpoint {path} not found")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; give the .ckpt file of a run (e.g. {path / 'best.ckpt'})")
    if zipfile.is_zipfile(path) and any(name.endswith("/code/") or "/code/" in name for name in zipfile.ZipFile(path).namelist()):
        raise CheckpointError(
            f"{path} is an exported model (TorchScript for an engine), not a checkpoint: give the .ckpt file that "
            "`so3k train` wrote (best.ckpt or last.ckpt)"
        )
    try:
        with warnings.catch_warnings():  # torch's own advice about weights_only does not apply here
            warnings.simplefilter("ignore")
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(
            f"{path} is not a so3k checkpoint: torch cannot read it ({type(error).__name__}: {str(error)[:160]}); give the "
            ".ckpt file that `so3k train` wrote"
        ) from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a so3k checkpoint (no '{FORMAT}' marker); exported .pt files are loaded by so3k.export")
    version = content.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer so3k (checkpoint format {version}, so3k {content.get('so3k_version')}); "
            f"this so3k {__version__} reads format {FORMAT_VERSION}: upgrade so3k"
        )
    for key in ("model_config", "state_dict"):
        if key not in content:
            raise CheckpointError(f"{path} lacks '{key}': the file is incomplete")
    return content


def model_from_checkpoint(checkpoint: Union[str, Path, Dict[str, Any]], weights: str = "ema") -> So3krates:
    """The model of a checkpoint with its EMA weights (weights='ema', default) or the raw ones."""
    content = load_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    if weights not in ("ema", "raw"):
        raise InputError(f"weights must be 'ema' or 'raw', got {weights!r}")
    model = So3krates(ModelConfig.from_dict(content["model_config"]))
    state = content["state_dict"] if weights == "ema" else content.get("raw_state_dict", content["state_dict"])
    dtype = next(iter(v for v in state.values() if v.dtype.is_floating_point)).dtype
    model.to(dtype)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"the checkpoint's weights do not fit its model config: {str(error)[:300]}") from None
    return model.eval()


def inference_model(
    source: Union[So3krates, str, Path, Dict[str, Any]],
    dtype: Optional[torch.dtype] = None,
    device: Union[str, torch.device, None] = None,
) -> So3krates:
    """A private copy of a model (or of a checkpoint's EMA model) ready for inference: in `dtype`
    and on `device` (default: unchanged), in eval mode, weights without gradients (forces need
    d/dR only). The caller's model is never converted in place: it may still be training."""
    if dtype is not None and dtype not in (torch.float32, torch.float64):
        raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    model = copy.deepcopy(source) if isinstance(source, So3krates) else model_from_checkpoint(source)
    model = model.to(device=device, dtype=dtype).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
