"""Training configuration: a YAML file with three sections, typed and checked.

    model:     preset name plus any ModelConfig field to override (elements come from the data)
    data:      where the frames are, how to read them, how to split them
    training:  optimiser, schedule, loss weights, EMA, stopping, precision

`--set section.key=value` overrides a value from the command line (value parsed as YAML).
Unknown sections or keys are refused with the list of known ones.
"""

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from so3k.errors import ConfigError, MissingFileError


@dataclass
class DataConfig:
    path: str = "aspirin"  # a data file (any ASE format, MD17 .npz) or the name of a shipped data set
    n_train: Optional[int] = None  # frames for training (default: all frames not used for validation/test)
    n_valid: int = 50  # frames for validation (model selection, schedules, early stopping)
    n_test: int = 0  # frames held back for evaluation only (split.json records which)
    valid_path: Optional[str] = None  # a separate validation file instead of a random split
    energy_key: str = "energy"
    forces_key: str = "forces"
    energy_unit: Optional[str] = None  # default eV (kcal/mol for .npz)
    length_unit: str = "Angstrom"
    min_distance: float = 0.5  # Å; frames with closer atoms are refused (see so3k data stats)


@dataclass
class TrainingConfig:
    batch_size: int = 5  # structures per optimisation step (the global batch across all processes)
    valid_batch_size: int = 20
    max_epochs: int = 1000
    max_minutes: Optional[float] = None  # wall-time budget; the run stops cleanly after the epoch that exceeds it
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3
    weight_decay: float = 0.0
    clip_grad_norm: Optional[float] = 1.0  # global gradient-norm clipping; null disables
    schedule: str = "plateau"  # plateau | exponential | none
    plateau_patience: int = 25  # epochs without validation improvement before the lr is reduced
    plateau_factor: float = 0.5
    decay_rate: float = 0.1  # exponential: lr * decay_rate ** (step / decay_steps)
    decay_steps: int = 100_000
    min_lr: float = 1e-5  # training stops when the learning rate falls below this
    early_stopping_patience: Optional[int] = 100  # epochs without validation improvement; null disables
    ema_decay: float = 0.99  # exponential moving average of the weights (0 disables)
    energy_weight: float = 0.01  # loss = w_E MSE(E) + w_F MSE(F), eV and eV/Å
    forces_weight: float = 0.99
    max_nonfinite_steps: int = 10  # consecutive skipped steps (NaN/inf loss) before training stops
    dtype: str = "float32"  # float32 | float64
    seed: int = 0
    device: str = "cpu"  # cpu | cuda (under torchrun: the local GPU of each process)
    compile: bool = False  # torch.compile the energy + forces of each step (so3k.train.compiled; ~1 min to compile)


@dataclass
class TrainConfig:
    model: Dict[str, Any] = field(default_factory=lambda: {"preset": "euclidean2024"})
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        t, d = self.training, self.data
        checks = [
            (t.batch_size >= 1, f"training.batch_size must be >= 1, got {t.batch_size}"),
            (t.valid_batch_size >= 1, f"training.valid_batch_size must be >= 1, got {t.valid_batch_size}"),
            (t.max_epochs >= 1, f"training.max_epochs must be >= 1, got {t.max_epochs}"),
            (t.optimizer in ("adam", "adamw"), f"training.optimizer must be adam or adamw, got {t.optimizer!r}"),
            (t.schedule in ("plateau", "exponential", "none"), f"training.schedule must be plateau, exponential or none, got {t.schedule!r}"),
            (t.lr > 0, f"training.lr must be > 0, got {t.lr}"),
            (0 <= t.ema_decay < 1, f"training.ema_decay must be in [0, 1), got {t.ema_decay}"),
            (t.energy_weight >= 0 and t.forces_weight >= 0, "training.energy_weight and forces_weight must be >= 0"),
            (t.energy_weight + t.forces_weight > 0, "at least one of training.energy_weight and forces_weight must be > 0"),
            (t.dtype in ("float32", "float64"), f"training.dtype must be float32 or float64, got {t.dtype!r}"),
            (t.max_nonfinite_steps >= 1, "training.max_nonfinite_steps must be >= 1"),
            (d.n_valid >= 1 or d.valid_path is not None, "data.n_valid must be >= 1 (validation picks the best model)"),
            (d.n_test >= 0, f"data.n_test must be >= 0, got {d.n_test}"),
            (d.n_train is None or d.n_train >= 1, f"data.n_train must be >= 1, got {d.n_train}"),
            ("preset" in self.model, "the model section needs a preset: neurips2022 or euclidean2024"),
            ("elements" not in self.model, "model.elements is taken from the training data; remove it from the config"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


SECTIONS = {"data": DataConfig, "training": TrainingConfig}


def _coerce(section: str, name: str, annotation: Any, value: Any) -> Any:
    """Check a value against its field's type; numbers written as strings (YAML reads `1e-3`
    as a string) are converted."""
    optional = "Optional" in str(annotation)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{section}.{name} must not be null")
    base = str(annotation).replace("typing.", "").replace("Optional[", "").rstrip("]")
    target = {"int": int, "float": float, "str": str, "bool": bool, "<class 'int'>": int, "<class 'float'>": float,
              "<class 'str'>": str, "<class 'bool'>": bool}.get(base)
    if target is None or isinstance(value, target) and not (target is int and isinstance(value, bool)):
        return value
    try:
        if target is float and not isinstance(value, bool):
            return float(value)
        if target is int and not isinstance(value, bool) and float(value) == int(float(value)):
            return int(float(value))
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{section}.{name} must be {'null or ' if optional else ''}{target.__name__}, got {value!r}")


def _typed(section: str, cls, values: Dict[str, Any]):
    types = {f.name: f.type for f in fields(cls)}
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in section '{section}'; known keys: {sorted(types)}")
    return cls(**{k: _coerce(section, k, types[k], v) for k, v in values.items()})


def config_from_dict(raw: Dict[str, Any]) -> TrainConfig:
    if not isinstance(raw, dict):
        raise ConfigError("a training config is a YAML mapping with sections model, data, training")
    unknown = sorted(set(raw) - {"model", "data", "training"})
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; a training config has model, data and training")
    model = dict(raw.get("model") or {"preset": "euclidean2024"})
    config = TrainConfig(
        model=model,
        data=_typed("data", DataConfig, dict(raw.get("data") or {})),
        training=_typed("training", TrainingConfig, dict(raw.get("training") or {})),
    )
    config.validate()
    return config


def apply_overrides(raw: Dict[str, Any], sets: Sequence[str]) -> Dict[str, Any]:
    """Apply `section.key=value` strings (value parsed as YAML) to a raw config dict."""
    for item in sets:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set expects section.key=value (e.g. training.lr=5e-4), got {item!r}")
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        raw.setdefault(section, {})
        if raw[section] is None:
            raw[section] = {}
        raw[section][name] = yaml.safe_load(value)
    return raw


def load_config(path: Optional[str | Path], sets: Sequence[str] = ()) -> TrainConfig:
    raw: Dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise MissingFileError(f"training config {path} not found")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return config_from_dict(apply_overrides(raw, sets))


def dump_config(config: TrainConfig, path: Path, extra_model: Optional[Dict[str, Any]] = None) -> None:
    """The resolved config (every default written out); model gets the full ModelConfig if given."""
    d = config.to_dict()
    if extra_model is not None:
        d["model"] = extra_model
    path.write_text(yaml.safe_dump(d, sort_keys=False))


__all__: List[str] = ["TrainConfig", "DataConfig", "TrainingConfig", "ConfigError", "load_config", "config_from_dict", "dump_config"]
