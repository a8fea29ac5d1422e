"""Data sets shipped with so3k; README.md lists them, and each has a provenance file."""

from __future__ import annotations

from pathlib import Path

from so3k.errors import MissingFileError

_HERE = Path(__file__).parent


def available() -> list[str]:
    """Names of the shipped data sets, e.g. ``aspirin``."""
    return sorted(p.name.split(".")[0] for p in _HERE.glob("*.extxyz.xz"))


def path(name: str) -> Path:
    """Path of the shipped data set ``name`` (see :func:`available`)."""
    p = _HERE / f"{name}.extxyz.xz"
    if not p.exists():
        raise MissingFileError(f"no shipped data set {name!r}; available: {', '.join(available()) or 'none'}")
    return p
