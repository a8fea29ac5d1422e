"""Self-describing exported files: a JSON document stored beside the TorchScript code as the
extra file `so3k.json`, and the checks a loader makes before it trusts a file."""

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch
from ase.data import atomic_masses

from so3k import __version__
from so3k.errors import ExportError, MissingFileError
from so3k.model import So3krates
from so3k.runtime import plain_torchscript

FORMAT = "so3k-exported-model"
FORMAT_VERSION = 1
METADATA_FILE = "so3k.json"


def weights_hash(model: So3krates) -> str:
    """SHA-256 over the names, dtypes and bytes of the state dict (identifies the weights)."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(value.dtype).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_metadata(model: So3krates, engine: str, units: Dict[str, str], **extra: Any) -> Dict[str, Any]:
    c = model.config
    dtype = model.expand.dtype
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "engine": engine,
        "so3k_version": __version__,
        "torch_version": str(torch.__version__),
        "preset": c.preset,
        "model_config": c.to_dict(),
        "cutoff": c.cutoff,
        "layers": c.layers,
        "elements": list(c.elements),
        "atomic_numbers": list(c.atomic_numbers),
        "masses": [float(atomic_masses[z]) for z in c.atomic_numbers],  # u; LAMMPS checks its type masses
        "native_units": {"length": "Angstrom", "energy": "eV"},
        "units": units,
        "dtype": str(dtype).replace("torch.", ""),
        # all-pairs SPHC attention: whole, non-periodic structures only (no domain decomposition)
        "nonlocal_attention": c.is_nonlocal,
        "weights_sha256": weights_hash(model),
    }
    meta.update(extra)
    return meta


def save_module(module: torch.jit.ScriptModule, path: Union[str, Path], metadata: Dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(module, str(path), _extra_files={METADATA_FILE: json.dumps(metadata, indent=1)})
    return path


def load_module(path: Union[str, Path], engine: str) -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load an exported file for `engine`, refusing what this so3k cannot honour, with the reason."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"exported model {path} not found")
    plain_torchscript()  # the module is about to run in this process
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as error:  # torch raises RuntimeError/ValueError/zipfile errors for foreign files
        if zipfile.is_zipfile(path) and not any("/code/" in name for name in zipfile.ZipFile(path).namelist()):
            raise ExportError(
                f"{path} is not an exported model but a torch.save file, e.g. a checkpoint of `so3k train`: export it first "
                f"with `so3k export {path} --engine {engine} -o model.pt`"
            ) from None
        raise ExportError(f"{path} is not a TorchScript file ({type(error).__name__}: {str(error)[:160]})") from None
    if not extra[METADATA_FILE]:
        raise ExportError(f"{path} has no {METADATA_FILE} metadata: it was not made by `so3k export`")
    try:
        meta = json.loads(extra[METADATA_FILE])
    except json.JSONDecodeError as error:
        raise ExportError(f"{path}: its {METADATA_FILE} metadata is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ExportError(f"{path}: its metadata does not describe a so3k exported model")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ExportError(f"{path}: its metadata has no format_version")
    if version > FORMAT_VERSION:
        raise ExportError(
            f"{path} was made by a newer so3k (format {version}, so3k {meta.get('so3k_version')}); this so3k {__version__} "
            f"reads format {FORMAT_VERSION}: upgrade so3k"
        )
    if meta.get("engine") != engine:
        raise ExportError(f"{path} was exported for {meta.get('engine')!r}, not {engine!r}: export again with --engine {engine}")
    missing = [k for k in ("elements", "cutoff", "units", "dtype") if k not in meta]
    if missing:
        raise ExportError(f"{path}: its metadata lacks {missing}")
    return module, meta
