"""Data: reading, validating and summarising labelled structures, and generating new ones."""

from so3k.data.frames import Frames
from so3k.data.io import read_frames, write_extxyz
from so3k.data.stats import compute_stats
from so3k.data.validate import DataError

__all__ = ["Frames", "DataError", "read_frames", "write_extxyz", "compute_stats"]
