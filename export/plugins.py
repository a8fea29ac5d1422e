"""OpenMM-Torch's plugins, working whatever the order of imports.

`import openmm` loads every plugin of OpenMM's plugin folder at once. A TorchForce plugin that
needs libraries only torch brings (libtorch, and libnvrtc for the CUDA kernels of the cu12/cu13
builds) fails to load when openmm comes before torch, and a Context later says "Specified a
Platform for a Context which does not support all required kernels". Loading the failed
TorchForce plugins again once torch is loaded fixes it, so every so3k entry point into OpenMM
calls `import_openmmtorch` first.
"""

import logging
import re
from typing import List, Sequence

from so3k.errors import MissingDependencyError

INSTALL_HINT = "pip install 'so3k[openmm]' (CPU), 'so3k[cuda12]' or 'so3k[cuda13]' (one of them per environment)"
_reloaded = False


def failed_torch_plugins(failures: Sequence[str]) -> List[str]:
    """Paths of the TorchForce plugins among OpenMM's plugin load failures."""
    paths = [m.group(1) for m in (re.match(r"Error loading library (\S+?): ", f) for f in failures) if m]
    return [p for p in paths if "OpenMMTorch" in p.rsplit("/", 1)[-1]]


def reload_torch_plugins() -> List[str]:
    """Load the TorchForce plugins that failed before torch was imported; returns those still failing
    (e.g. the OpenCL kernels on a machine without OpenCL, which is harmless elsewhere)."""
    global _reloaded
    import openmm
    import torch  # noqa: F401  (libtorch first)

    still: List[str] = []
    if not _reloaded:
        _reloaded = True
        for path in failed_torch_plugins(openmm.Platform.getPluginLoadFailures()):
            try:
                openmm.Platform.loadPluginLibrary(path)
            except Exception:  # OpenMM raises its own exception type for a library it cannot load
                still.append(path)
    return still


def import_openmmtorch():
    """The `openmmtorch` module with its plugins loaded, or MissingDependencyError saying what to install."""
    reload_torch_plugins()
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # openmmtorch imports the deprecated simtk.openmm, which logs a warning on every use
    try:
        import openmmtorch
    except ImportError as error:
        raise MissingDependencyError(f"OpenMM-Torch is not installed ({error}): {INSTALL_HINT}") from None
    finally:
        logging.disable(previous)
    return openmmtorch
