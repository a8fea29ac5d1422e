"""Training: config, data batches, normalisation, EMA, the loop, plots. Checkpoints (written\nhere, read everywhere) live in so3k.checkpoint."""

from ..checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, load_config
from .trainer import Trainer, TrainingError, train

__all__ = [
    "CheckpointError", "load_checkpoint", "model_from_checkpoint", "save_checkpoint", "ConfigError", "TrainConfig",
    "load_config", "Trainer", "TrainingError", "train",
]
