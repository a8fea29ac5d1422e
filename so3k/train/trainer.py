"""The training loop: from a TrainConfig to a run folder.

    RUN/config.yaml      the resolved config (every default written out)
    RUN/split.json       frame indices of the train / valid / test splits
    RUN/metrics.csv      one row per epoch
    RUN/best.ckpt        the EMA weights with the lowest validation loss
    RUN/last.ckpt        everything needed to resume (written after every epoch)
    RUN/learning_curves.png, RUN/parity_valid.png
"""

import csv
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from .. import keys
from ..capabilities import check_supported
from ..checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from ..config import model_config
from ..data.frames import Frames
from ..data.io import read_frames
from ..data.stats import unit_hints
from ..datasets import available as shipped_datasets
from ..datasets import path as shipped_path
from ..errors import TrainingError
from ..forces import ForceField
from ..model import So3krates
from .compiled import CompiledForces
from .config import ConfigError, TrainConfig, apply_overrides, config_from_dict, dump_config
from .data import FrameDataset, GlobalBatchSampler, make_loader
from .distributed import setup
from .ema import EMA
from .metrics import error_sums, metrics_from_sums, predict
from .normalization import Normalization, apply_normalization, fit_normalization
from .plots import plot_learning_curves, plot_parity


def resolve_data_path(name: str) -> Path:
    """A file path, or the name of a shipped data set (e.g. 'aspirin')."""
    path = Path(name)
    if path.exists() or name not in shipped_datasets():
        return path
    return shipped_path(name)


def read_data(config: TrainConfig, path: str) -> Frames:
    d = config.data
    return read_frames(
        resolve_data_path(path), energy_key=d.energy_key, forces_key=d.forces_key, energy_unit=d.energy_unit, length_unit=d.length_unit,
    )


def make_split(n_frames: int, config: TrainConfig, separate_valid: bool) -> Dict[str, List[int]]:
    d = config.data
    n_valid = 0 if separate_valid else d.n_valid
    needed = n_valid + d.n_test + (d.n_train or 1)
    if needed > n_frames:
        raise ConfigError(
            f"the data have {n_frames} frames but n_train + n_valid + n_test = {needed}; lower them (data.n_train, data.n_valid, data.n_test)"
        )
    order = np.random.default_rng(config.training.seed).permutation(n_frames)
    valid = order[:n_valid]
    test = order[n_valid : n_valid + d.n_test]
    rest = order[n_valid + d.n_test :]
    train = rest if d.n_train is None else rest[: d.n_train]
    return {"train": sorted(train.tolist()), "valid": sorted(valid.tolist()), "test": sorted(test.tolist())}


@dataclass
class Data:
    train: Frames
    valid: Frames
    split: Dict[str, List[int]]
    elements: List[str]
    fingerprint: str  # of every frame read (training file and validation file): resume refuses a changed file


def prepare_data(config: TrainConfig, split: Optional[Dict[str, List[int]]] = None) -> Data:
    frames = read_data(config, config.data.path)
    separate = config.data.valid_path is not None
    split = split or make_split(len(frames), config, separate)
    train = frames.subset(split["train"])
    valid = read_data(config, config.data.valid_path) if separate else frames.subset(split["valid"])
    t = config.training
    for name, part in (("training", train), ("validation", valid)):
        if part.energy is None:
            raise ConfigError(f"the {name} data have no energies (data.energy_key = {config.data.energy_key!r}); so3k needs energies")
        if t.forces_weight > 0 and part.forces is None:
            raise ConfigError(
                f"the {name} data have no forces (data.forces_key = {config.data.forces_key!r}) but training.forces_weight = "
                f"{t.forces_weight}; set training.forces_weight=0 to train on energies only"
            )
    elements = train.elements
    unknown = sorted(set(valid.elements) - set(elements))
    if unknown:
        raise ConfigError(
            f"element(s) {unknown} occur in the validation data but not in the training data: the model could not "
            "learn them; put frames with these elements into the training split"
        )
    if split.get("test"):
        unknown = sorted(set(frames.subset(split["test"]).elements) - set(elements))
        if unknown:
            raise ConfigError(f"element(s) {unknown} occur in the test frames but not in the training data")
    fingerprint = frames.fingerprint() + (read_data(config, config.data.valid_path).fingerprint() if separate else "")
    return Data(train, valid, split, elements, fingerprint)


def build(config: TrainConfig, elements: List[str]) -> So3krates:
    overrides = {k: v for k, v in config.model.items() if k != "preset"}
    try:
        mc = model_config(config.model["preset"], elements, **overrides)
    except ValueError as error:
        raise ConfigError(f"model section: {error}") from None
    torch.manual_seed(config.training.seed)  # the same initial weights in every process
    return So3krates(mc).to(getattr(torch, config.training.dtype))


def make_optimizer(config: TrainConfig, model: So3krates) -> Tuple[torch.optim.Optimizer, Optional[Any]]:
    t = config.training
    cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    optimizer = cls(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    scheduler: Optional[Any] = None
    if t.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=t.plateau_factor, patience=t.plateau_patience)
    elif t.schedule == "exponential":
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=t.decay_rate ** (1.0 / t.decay_steps))
    return optimizer, scheduler


def _model_section(model: So3krates) -> Dict[str, Any]:
    return {k: v for k, v in model.config.to_dict().items() if k not in ("elements", "version")}


# What may change when a run is resumed: when to stop. Anything else would make the resumed
# run differ from an uninterrupted one.
EXTENSIBLE = ("training.max_epochs", "training.max_minutes", "training.early_stopping_patience", "training.min_lr")


def check_extensions(sets: Sequence[str]) -> Sequence[str]:
    for item in sets:
        if item.split("=", 1)[0] not in EXTENSIBLE:
            raise ConfigError(f"--resume accepts --set only for {', '.join(EXTENSIBLE)}; got {item!r}")
    return sets


class Trainer:
    def __init__(
        self, config: Optional[TrainConfig], out: Path, resume: bool = False, progress: bool = True, extend: Sequence[str] = ()
    ):
        """config may be None with resume: a resumed run continues with its own config, except
        for the stopping criteria in `extend` (e.g. ["training.max_epochs=500"])."""
        self._created = time.perf_counter()
        self.out, self.progress = Path(out), progress
        if self.out.exists() and not self.out.is_dir():
            raise TrainingError(f"--out {self.out} is a file; a run folder is a directory: choose another --out")
        last = self.out / "last.ckpt"
        state: Optional[Dict[str, Any]] = None
        if resume:
            if not last.exists():
                raise TrainingError(f"--resume: {last} not found; start a new run without --resume")
            state = load_checkpoint(last)
            config = config_from_dict(apply_overrides(state["train_config"], check_extensions(extend)))
        elif last.exists():
            raise TrainingError(f"{self.out} already holds a run; continue it with --resume or choose another --out")
        if config is None:
            raise TrainingError("a new run needs a training config")
        self.config = config
        t = config.training
        self.ctx = setup(t.device)
        self.data = prepare_data(config, state["split"] if state else None)
        if state is not None and state.get("data_fingerprint") not in (None, self.data.fingerprint):
            raise TrainingError(
                f"the data ({config.data.path}) changed since this run started: resuming would train on other frames under "
                "the old split; restore the original file, or start a new run"
            )
        self.model = build(config, self.data.elements)
        self.dtype = getattr(torch, t.dtype)
        if state is None:
            if self.ctx.main:
                for hint in unit_hints(self.data.train):
                    print(f"so3k: note: {hint}", file=sys.stderr, flush=True)
            self.normalization = fit_normalization(self.data.train, self.data.elements)
        else:
            self.normalization = Normalization(**state["normalization"])
        with torch.no_grad():
            apply_normalization(self.model, self.normalization)
        self.model.to(self.ctx.device)
        self.force_field = ForceField(self.model)
        # what the training steps call: the compiled graph (traced and compiled at the first step) or ForceField
        self.step_forces = CompiledForces(self.model, announce=self.ctx.main) if t.compile else self.force_field
        self.optimizer, self.scheduler = make_optimizer(config, self.model)
        self.ema = EMA(self.model, t.ema_decay)
        self.eval_model = build(config, self.data.elements).to(self.ctx.device).eval()
        self.eval_force_field = ForceField(self.eval_model).eval()

        check_supported(
            self.model.config.is_nonlocal, periodic=any(bool(np.any(part.pbc)) for part in (self.data.train, self.data.valid)),
            remedy="the data has periodic frames: set model.nonlocal_attention=off, or train on molecules",
        )
        cutoff = self.model.cutoff
        self.train_set = FrameDataset(self.data.train, self.data.elements, cutoff, self.dtype, config.data.min_distance)
        self.valid_set = FrameDataset(self.data.valid, self.data.elements, cutoff, self.dtype, config.data.min_distance)
        self.train_sampler = GlobalBatchSampler(len(self.train_set), t.batch_size, True, t.seed, self.ctx.rank, self.ctx.world_size)
        self.valid_sampler = GlobalBatchSampler(len(self.valid_set), t.valid_batch_size, False, t.seed, self.ctx.rank, self.ctx.world_size)

        self.epoch, self.step, self.elapsed = 0, 0, 0.0
        self.best_loss, self.bad_epochs, self.skipped_total, self.consecutive_nonfinite = math.inf, 0, 0, 0
        self.history: List[Dict[str, float]] = []
        # taken before the first write: of two runs started into one folder, the second stops here
        self._lock = lock_run_folder(self.out) if self.ctx.main else None
        if state is not None:
            self._restore(state)
        elif self.ctx.main:
            self.out.mkdir(parents=True, exist_ok=True)
            dump_config(config, self.out / "config.yaml", extra_model=_model_section(self.model))
            (self.out / "split.json").write_text(json.dumps(self.data.split) + "\n")

    # -- state -------------------------------------------------------------------------------
    def _restore(self, state: Dict[str, Any]) -> None:
        s = state["training_state"]
        self.model.load_state_dict(state["raw_state_dict"])
        self.optimizer.load_state_dict(s["optimizer"])
        if self.scheduler is not None and s["scheduler"] is not None:
            self.scheduler.load_state_dict(s["scheduler"])
        self.ema.load_state_dict(s["ema"])
        self.epoch, self.step, self.elapsed = s["epoch"], s["step"], s["elapsed"]
        self.best_loss, self.bad_epochs, self.skipped_total = s["best_loss"], s["bad_epochs"], s["skipped_total"]
        self.consecutive_nonfinite = s.get("consecutive_nonfinite", 0)
        self.history = list(state["history"])

    def _content(self) -> Dict[str, Any]:
        return {
            "model_config": self.model.config.to_dict(),
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.ema.shadow.items()},
            "raw_state_dict": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "normalization": self.normalization.to_dict(),
            "train_config": self.config.to_dict(),
            "split": self.data.split,
            "data_fingerprint": self.data.fingerprint,
            "history": self.history,
            "training_state": {
                "epoch": self.epoch, "step": self.step, "elapsed": self.elapsed,
                "best_loss": self.best_loss, "bad_epochs": self.bad_epochs, "skipped_total": self.skipped_total,
                "consecutive_nonfinite": self.consecutive_nonfinite,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "ema": self.ema.state_dict(),
            },
        }

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- one epoch ---------------------------------------------------------------------------
    def _train_epoch(self) -> Tuple[torch.Tensor, int]:
        t = self.config.training
        self.model.train()
        self.force_field.train()
        self.train_sampler.set_epoch(self.epoch)
        sums = torch.zeros(10, dtype=torch.float64)
        skipped = 0
        bar = tqdm(total=len(self.train_sampler), desc=f"epoch {self.epoch + 1}", leave=False, disable=not (self.progress and self.ctx.main))
        for batch in make_loader(self.train_set, self.train_sampler):
            local = self._step_counts(batch)
            counts = self.ctx.sum_(local.clone())  # global structures and force components of this step
            self.optimizer.zero_grad(set_to_none=False)
            if batch is not None:
                batch = batch.to(self.ctx.device)
                out = self.step_forces(**batch.graph.inputs())
                de = out[keys.ENERGY] - batch.energy
                df = out[keys.FORCES] - batch.forces
                loss = t.energy_weight * (de**2).sum() / counts[0] + t.forces_weight * (df**2).sum() / counts[1]
                loss.backward()
                step_sums = error_sums(out[keys.ENERGY], batch.energy, batch.n_atoms, out[keys.FORCES], batch.forces).cpu()
            else:  # this process has no share of a short last batch; it still joins the reductions
                loss = torch.zeros((), dtype=self.dtype, device=self.ctx.device)
                step_sums = torch.zeros(10, dtype=torch.float64)
            self.ctx.sum_gradients(self.model.parameters())
            # One number decides, identical in every process (the gradients are already summed):
            # a NaN/inf loss anywhere makes the global gradient norm non-finite.
            max_norm = t.clip_grad_norm if t.clip_grad_norm is not None else math.inf
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
            if not bool(torch.isfinite(grad_norm)):
                skipped += 1
                self.skipped_total += 1
                self.consecutive_nonfinite += 1
                if self.consecutive_nonfinite >= t.max_nonfinite_steps:
                    raise TrainingError(
                        f"the loss or its gradient was NaN/inf in {self.consecutive_nonfinite} consecutive steps (epoch "
                        f"{self.epoch + 1}, step {self.step}); lower training.lr, check the data with `so3k data stats`, "
                        "or train in float64"
                    )
                bar.update(1)
                continue
            self.consecutive_nonfinite = 0
            self.optimizer.step()
            self.ema.update(self.model)
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ExponentialLR):
                self.scheduler.step()
            self.step += 1
            sums += step_sums
            bar.update(1)
            if self.ctx.main and self.progress:
                bar.set_postfix(loss=f"{float(loss.detach()) * self.ctx.world_size:.3g}", lr=f"{self.lr:.2g}")
        bar.close()
        return self.ctx.sum_(sums), skipped

    def _step_counts(self, batch) -> torch.Tensor:
        if batch is None:
            return torch.zeros(2, dtype=torch.float64)
        return torch.tensor([float(batch.energy.numel()), float(batch.forces.numel())], dtype=torch.float64)

    def validate(self, keep: bool = False):
        self.eval_model.load_state_dict(self.ema.shadow)
        sums, predictions = predict(self.eval_force_field, make_loader(self.valid_set, self.valid_sampler), self.ctx.device, keep=keep)
        return self.ctx.sum_(sums), predictions

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> Path:
        t = self.config.training
        self.elapsed += time.perf_counter() - self._created  # reading data and building the model count too
        if self.ctx.main and self.history:  # resumed: metrics.csv holds exactly the checkpoint's epochs
            write_metrics(self.history, self.out / "metrics.csv")
        reason = f"reached training.max_epochs = {t.max_epochs}"
        if self.ctx.main:
            print(
                f"training {self.model.config.preset} ({sum(p.numel() for p in self.model.parameters()):,} parameters, elements "
                f"{', '.join(self.data.elements)}) on {len(self.train_set)} frames, validating on {len(self.valid_set)}; "
                f"{self.ctx.world_size} process(es); run folder {self.out}",
                flush=True,
            )
        while self.epoch < t.max_epochs:
            start = time.perf_counter()
            train_sums, skipped = self._train_epoch()
            valid_sums, _ = self.validate()
            self.epoch += 1
            self.elapsed += time.perf_counter() - start
            writing = time.perf_counter()
            row: Dict[str, float] = {"epoch": self.epoch, "step": self.step, "lr": self.lr, "time_s": round(self.elapsed, 2)}
            row.update(metrics_from_sums(train_sums, t.energy_weight, t.forces_weight, "train"))
            row.update(metrics_from_sums(valid_sums, t.energy_weight, t.forces_weight, "valid"))
            row["skipped_steps"] = skipped
            improved = row["valid_loss"] < self.best_loss  # False for NaN
            if improved:
                self.best_loss, self.bad_epochs = row["valid_loss"], 0
            else:
                self.bad_epochs += 1
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(row["valid_loss"])
            self.history.append(row)
            if self.ctx.main:
                self._write_epoch(row, improved)
            self.ctx.barrier()
            self.elapsed += time.perf_counter() - writing  # the budget is wall time: checkpoints and plots count
            if self.lr < t.min_lr:
                reason = f"the learning rate fell below training.min_lr = {t.min_lr:g}"
                break
            if t.early_stopping_patience is not None and self.bad_epochs >= t.early_stopping_patience:
                reason = f"no validation improvement in {self.bad_epochs} epochs (training.early_stopping_patience)"
                break
            # every process must take the same decision: rank 0's clock decides
            over = t.max_minutes is not None and self.elapsed / 60 >= t.max_minutes
            if t.max_minutes is not None and bool(self.ctx.sum_(torch.tensor([float(over and self.ctx.main)], dtype=torch.float64)) > 0):
                reason = f"used the time budget of training.max_minutes = {t.max_minutes:g}"
                break
        if self.ctx.main:
            self._finish(reason)
        self.ctx.barrier()
        return self.out / "best.ckpt"

    def _write_epoch(self, row: Dict[str, float], improved: bool) -> None:
        content = self._content()
        if improved:
            save_checkpoint(self.out / "best.ckpt", content)
        save_checkpoint(self.out / "last.ckpt", content)
        write_metrics(self.history, self.out / "metrics.csv")
        plot_learning_curves(self.history, self.out / "learning_curves.png")
        print(
            f"epoch {self.epoch:4d}  lr {self.lr:.2e}  train loss {row['train_loss']:.4g}  valid: energy MAE "
            f"{row['valid_energy_mae_meV']:.1f} meV, forces MAE {row['valid_forces_mae_meV_A']:.1f} meV/Å"
            + ("  (best)" if improved else "")
            + (f"  [{int(row['skipped_steps'])} non-finite steps skipped]" if row["skipped_steps"] else ""),
            flush=True,
        )

    def _finish(self, reason: str) -> None:
        best = model_from_checkpoint(self.out / "best.ckpt").to(self.ctx.device)
        valid_loader = make_loader(self.valid_set, GlobalBatchSampler(len(self.valid_set), self.config.training.valid_batch_size, False, 0))
        sums, predictions = predict(ForceField(best).eval(), valid_loader, self.ctx.device, keep=True)
        m = metrics_from_sums(sums, self.config.training.energy_weight, self.config.training.forces_weight, "valid")
        plot_parity(predictions, self.out / "parity_valid.png", title=f"validation, best model ({len(self.valid_set)} frames)")
        print(
            f"stopped: {reason}. Best model: {self.out / 'best.ckpt'} (validation energy MAE {m['valid_energy_mae_meV']:.1f} meV, "
            f"{m['valid_energy_mae_meV_atom']:.2f} meV/atom; forces MAE {m['valid_forces_mae_meV_A']:.1f} meV/Å). "
            f"Plots: {self.out / 'learning_curves.png'}, {self.out / 'parity_valid.png'}",
            flush=True,
        )


def write_metrics(history: List[Dict[str, float]], path: Path) -> None:
    """metrics.csv from the whole history, replaced atomically: after a crash anywhere it holds
    the epochs of a checkpoint, and a resumed run rewrites it from last.ckpt's history."""
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(path)


def lock_run_folder(out: Path):
    """An exclusive lock on out/.lock for as long as the returned file stays open (released by the
    OS when the process ends, however it ends); a second writer gets a TrainingError."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    handle = (out / ".lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise TrainingError(f"another so3k train is writing to {out}; wait for it to finish, or choose another --out") from None
    return handle


def train(config: Optional[TrainConfig], out: Path, resume: bool = False, progress: bool = True, extend: Sequence[str] = ()) -> Path:
    """Train from a config into the run folder `out` (or resume the run there: config may be
    None, and `extend` may change its stopping criteria); returns the path of best.ckpt."""
    trainer = Trainer(config, out, resume=resume, progress=progress, extend=extend)
    try:
        return trainer.fit()
    finally:
        trainer.ctx.close()
        if trainer._lock is not None:
            trainer._lock.close()
