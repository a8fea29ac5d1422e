"""LAMMPS deployment, installed as ``so3k.lammps``: the `pair_style so3krates` plugin (C++ in
this directory) and the Python side that builds and locates it.

    so3k export best.ckpt --engine lammps -o model-lammps.pt
    so3k lammps build
    lmp -in deploy/lammps/examples/in.aspirin-nve
"""

from pathlib import Path

from .build import (
    PLUGIN,
    PluginBuildError,
    build,
    default_plugin_dir,
    lammps_version_string,
    lmp_environment,
    lmp_executable,
    plugin_dir,
    plugin_status,
)
from .log import lmp_command, ms_per_step, thermo_table

EXAMPLES = Path(__file__).resolve().parent / "examples"  # the input decks and their data files

__all__ = [
    "EXAMPLES",
    "PLUGIN",
    "PluginBuildError",
    "build",
    "default_plugin_dir",
    "lammps_version_string",
    "lmp_environment",
    "lmp_executable",
    "lmp_command",
    "ms_per_step",
    "thermo_table",
    "plugin_dir",
    "plugin_status",
]
