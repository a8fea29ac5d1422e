"""LAMMPS deployment, installed as ``so3k.lammps``: the `pair_style so3krates` plugin (C++ in
this directory) and the Python side that builds and locates it.

    so3k export best.ckpt --engine lammps -o model-lammps.pt
    so3k lammps build
    lmp -in deploy/lammps/examples/in.aspirin-nve
"""

from .build import (
    PLUGIN,
    PluginBuildError,
    build,
    default_plugin_dir,
    lammps_version_string,
    lmp_environment,
    plugin_dir,
    plugin_status,
)

__all__ = [
    "PLUGIN",
    "PluginBuildError",
    "build",
    "default_plugin_dir",
    "lammps_version_string",
    "lmp_environment",
    "plugin_dir",
    "plugin_status",
]
