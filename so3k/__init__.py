"""so3k: So3krates machine-learned force fields in PyTorch."""

__version__ = "0.1.0"
