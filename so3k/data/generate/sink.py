"""FrameSink: write generated frames one by one, so that a killed run can resume exactly.

Frames are appended to an extended-XYZ work file and flushed; after each frame a small JSON
state file (written atomically) records how many frames and bytes are valid plus whatever the
generator needs to continue (RNG state, positions, velocities). On resume the work file is cut
back to the recorded size, so a frame half-written at the moment of a crash is dropped.
A target ending in .xz, .gz or .bz2 is compressed once the run completes.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import platform
import shutil
import time
from dataclasses import fields
from importlib import metadata
from pathlib import Path
from typing import Any

import ase.io

from so3k.data.io import read_frames
from so3k.data.stats import compute_stats
from so3k.errors import So3kError

COMPRESSORS = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}
_VERSIONED = ("so3k", "ase", "numpy", "tblite", "pyscf", "torch")


class ResumeError(So3kError, RuntimeError):
    """A run cannot be resumed (or started) as asked."""


def provenance_path(target: str | Path) -> Path:
    """``data/aspirin.extxyz.xz`` -> ``data/aspirin.provenance.json``."""
    target = Path(target)
    return target.with_name(target.name.split(".")[0] + ".provenance.json")


def software_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


class FrameSink:
    def __init__(self, target: str | Path, config: dict[str, Any], *, resume: bool = False, overwrite: bool = False):
        self.target = Path(target)
        self.compress = self.target.suffix in COMPRESSORS
        self.work = self.target.with_suffix("") if self.compress else self.target
        self.state_path = self.work.with_name(self.work.name + ".state.json")
        self.config = json.loads(json.dumps(config))  # normalised, as it will be compared
        self.n_frames = 0
        self.extra: dict[str, Any] = {}
        self.elapsed = 0.0
        self.complete = False
        self._offset = 0
        self._t0 = time.perf_counter()

        if resume and self.state_path.exists():
            self._load_state()
        elif resume and (self.target.exists() or self.work.exists()):
            raise ResumeError(f"{self.target} exists but has no state file {self.state_path.name}: it cannot be resumed")
        elif not overwrite and (self.target.exists() or self.work.exists()):
            raise ResumeError(f"{self.target} exists: pass --resume to continue it or --overwrite to start again")
        if not self.complete:
            if self.n_frames == 0:
                self.work.parent.mkdir(parents=True, exist_ok=True)
                self.work.write_bytes(b"")
                self._save_state()
            self._fh = open(self.work, "r+b")
            self._fh.truncate(self._offset if self.n_frames else 0)
            self._fh.seek(0, os.SEEK_END)

    def _load_state(self) -> None:
        try:
            state = json.loads(self.state_path.read_text())
            state["config"], state["n_frames"], state["offset"], state["extra"], state["elapsed"], state["complete"]
        except (ValueError, KeyError, TypeError) as error:
            raise ResumeError(
                f"the state file {self.state_path} is truncated or corrupt ({type(error).__name__}: {error}); the frames in "
                f"{self.work} cannot be resumed safely: delete both and start again"
            ) from None
        if state["config"] != self.config:
            diff = sorted(k for k in set(state["config"]) | set(self.config) if state["config"].get(k) != self.config.get(k))
            detail = ", ".join(f"{k}: {state['config'].get(k)!r} -> {self.config.get(k)!r}" for k in diff)
            raise ResumeError(f"cannot resume {self.target}: the settings differ from the original run ({detail})")
        self.n_frames = state["n_frames"]
        self._offset = state["offset"]
        self.extra = state["extra"]
        self.elapsed = state["elapsed"]
        self.complete = state["complete"]
        if not self.complete and (not self.work.exists() or self.work.stat().st_size < self._offset):
            raise ResumeError(f"cannot resume: {self.work} is missing or shorter than its state file records")

    def append(self, atoms, extra: dict[str, Any] | None = None) -> None:
        """Write one frame, then record the state needed to continue after it."""
        text = _extxyz_text(atoms)
        self._fh.write(text.encode())
        self._fh.flush()
        self.n_frames += 1
        self._offset = self._fh.tell()
        if extra is not None:
            self.extra = extra
        self._save_state()

    def skip(self, extra: dict[str, Any]) -> None:
        """Record progress without a frame (e.g. a reference calculation that failed)."""
        self.extra = extra
        self._save_state()

    def _save_state(self) -> None:
        state = dict(
            config=self.config,
            n_frames=self.n_frames,
            offset=self._offset,
            extra=self.extra,
            elapsed=self.elapsed + time.perf_counter() - self._t0,
            complete=self.complete,
        )
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_path)

    def finish(self, provenance: dict[str, Any]) -> Path:
        """Mark the run complete, compress the target if asked, write the provenance file."""
        if self.complete:
            return self.target
        self._fh.close()
        self.complete = True
        self._save_state()
        stats = compute_stats(read_frames(self.work)).to_dict() if self.n_frames else None
        if self.compress:
            with open(self.work, "rb") as src, COMPRESSORS[self.target.suffix](self.target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            self.work.unlink()
        record = dict(
            file=self.target.name,
            command=provenance.pop("command", "(Python API)"),
            frames=self.n_frames,
            wall_time_s=round(self.elapsed + time.perf_counter() - self._t0, 1),
            software=software_versions(),
            config=self.config,
            **provenance,
            statistics=stats,
        )
        provenance_path(self.target).write_text(json.dumps(record, indent=2) + "\n")
        return self.target

    def close(self) -> None:
        if not self.complete and not self._fh.closed:
            self._fh.close()


def _extxyz_text(atoms) -> str:
    import io

    buf = io.StringIO()
    ase.io.write(buf, atoms, format="extxyz")
    return buf.getvalue()


def add_output_options(parser, default_out: str) -> None:
    """The options every generator shares: output file, seed, resume/overwrite, progress bar."""
    parser.add_argument("-o", "--out", default=default_out, help=f"output file; .xz/.gz/.bz2 compress it when done (default {default_out})")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same file (default 0)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue an interrupted run with the same settings")
    group.add_argument("--overwrite", action="store_true", help="start again even if the output exists")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run_generator(config_cls, generate, args) -> int:
    """CLI glue: build ``config_cls`` from the options named after its fields, run, report."""
    names = [f.name for f in fields(config_cls) if hasattr(args, f.name)]
    config = config_cls(**{name: getattr(args, name) for name in names})
    out = generate(config, args.out, resume=args.resume, overwrite=args.overwrite, progress=args.progress, command=args.command_line)
    print(f"wrote {out}")
    return 0
