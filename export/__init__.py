"""Engine-facing TorchScript wrappers and export code, installed as ``so3k.export``.

Import it as ``so3k.export``, never as a top-level ``export``.

    so3k export runs/aspirin/best.ckpt --engine openmm -o model.pt [--dtype float64]
    so3k export runs/aspirin/best.ckpt --format aoti -o model.pt2 [--device cuda]

`export_model` writes one TorchScript file with its metadata (so3k.json: format version,
versions, model config, cutoff, layers, elements, units, dtype, weights hash), or a compiled
AOTInductor package (`aoti.py`) that every engine can use; `load_exported` reads a TorchScript
file back and refuses files it cannot honour, saying why (`aoti.CompiledForceField` does the
same for packages).
"""

from pathlib import Path
from typing import Any, Dict, Tuple, Union

from so3k.errors import ExportError

# torch is imported inside the functions: OpenMM-ML imports every registered plugin (ours is
# so3k.export.openmmml) whenever it is imported itself, and that must stay cheap.
ENGINES = ("openmm", "lammps")
DTYPES = ("float32", "float64")
FORMATS = ("torchscript", "aoti")


def export_model(
    source: Any, path: Union[str, Path], engine: str = "openmm", dtype: str = "float32", outputs_forces: bool = False,
    force: bool = False, format: str = "torchscript", device: str = "cpu",
) -> Path:
    """Export a checkpoint (path; its EMA weights) or a So3krates model to `path` for `engine`.
    outputs_forces (OpenMM only): the module returns (energy, forces) for
    TorchForce.setOutputsForces(True). A model with non-finite weights, or a checkpoint whose
    validation metrics are NaN, is refused unless `force`.
    format "aoti": a compiled package for `device` (cpu or cuda) that serves every engine, so
    `engine` is not used."""
    import torch

    from so3k.checkpoint import inference_model

    if engine not in ENGINES:
        raise ExportError(f"unknown engine {engine!r}; this so3k exports for {', '.join(ENGINES)}")
    if dtype not in DTYPES:
        raise ExportError(f"dtype must be float32 or float64, got {dtype!r}")
    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}; choose {' or '.join(FORMATS)}")
    if format == "aoti" and outputs_forces:
        raise ExportError("--outputs-forces is for TorchScript files in TorchForce; a compiled package always returns forces")
    if format == "torchscript" and device != "cpu":
        raise ExportError("--device is for compiled packages (--format aoti); a TorchScript file moves to the engine's device itself")
    if outputs_forces and engine != "openmm":
        raise ExportError(
            f"--outputs-forces is an OpenMM option; the {engine} module always returns energy and forces: drop it"
        )
    if Path(path).is_dir():
        raise ExportError(f"-o {path} is a directory; give a file name, e.g. {Path(path) / 'model.pt'}")
    if isinstance(source, (str, Path)) and Path(source).resolve() == Path(path).resolve():
        raise ExportError(f"the output {path} is the checkpoint itself: give another file name with -o")
    if not force:
        check_finite(source)
    model = inference_model(source, getattr(torch, dtype))  # a frozen copy; the caller's model stays trainable
    if format == "aoti":
        from .aoti import export_aoti

        return export_aoti(model, path, device)
    if engine == "lammps":
        from .lammps import export_lammps

        return export_lammps(model, path)
    from .openmm import export_openmm

    return export_openmm(model, path, outputs_forces=outputs_forces)


def check_finite(source: Any) -> None:
    """ExportError for a model with NaN/inf weights or a checkpoint whose validation went NaN."""
    import math

    import torch

    from so3k.checkpoint import load_checkpoint

    if isinstance(source, torch.nn.Module):
        state, history = source.state_dict(), []
    else:
        content = source if isinstance(source, dict) else load_checkpoint(source)
        state, history = content["state_dict"], content.get("history", [])
    bad = [name for name, value in state.items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        raise ExportError(f"the model has non-finite weights ({', '.join(bad[:3])}): it cannot give energies; retrain it (or --force)")
    last = history[-1].get("valid_loss") if history else None  # the epoch the checkpoint was saved at
    if last is not None and not math.isfinite(float(last)):
        raise ExportError(
            f"the validation loss of this checkpoint's epoch {history[-1].get('epoch')} is {last}: the model gives no usable "
            "energies there; check the run's metrics.csv, export an earlier checkpoint (best.ckpt), or --force"
        )


def load_exported(path: Union[str, Path], engine: str = "openmm") -> Tuple[Any, Dict[str, Any]]:
    """(TorchScript module, metadata) of an exported file; ExportError with the reason if it is unusable."""
    from .metadata import load_module

    return load_module(path, engine)


__all__ = ["export_model", "load_exported", "ExportError", "ENGINES", "FORMATS"]
