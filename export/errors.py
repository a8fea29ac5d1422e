"""The export package's error type, kept free of heavy imports (the OpenMM-ML plugin imports it)."""


class ExportError(ValueError):
    """An exported file that cannot be used as asked; the message says why."""
