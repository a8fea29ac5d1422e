"""One family of errors for everything a user can get wrong.

`so3k` (the CLI) prints a `So3kError` as one line and exits with status 1; anything else is a
bug and keeps its traceback. Each class also derives from the built-in type that fits
(ValueError, FileNotFoundError, ...), so callers that caught those before still do. The errors
of a subsystem live beside it (DataError in so3k.data.validate, CheckpointError in
so3k.checkpoint, ExportError in so3k.export, ...); the ones used across subsystems live here.
Kept free of heavy imports: the OpenMM-ML plugin imports it.
"""


class So3kError(Exception):
    """A problem with what the user asked for; the message says what is wrong and what to do."""


class InputError(So3kError, ValueError):
    """An option, unit or setting outside what so3k accepts."""


class ConfigError(InputError):
    """A configuration that cannot be used; the message says what to change."""


class MissingFileError(So3kError, FileNotFoundError):
    """A file the user named does not exist."""


class MissingDependencyError(So3kError, ImportError):
    """An optional package needed for what was asked is not installed."""


class DeviceError(So3kError, RuntimeError):
    """The device asked for (e.g. cuda) is not available."""


class StructureError(So3kError, ValueError):
    """A structure the model cannot evaluate (empty, non-finite, overlapping atoms, unknown element)."""


class UnknownElementError(StructureError):
    """An element the model was not trained for."""


class CapabilityError(So3kError, ValueError):
    """A model asked to do what it is not defined for (e.g. non-local attention on a periodic system)."""


class ExportError(So3kError, ValueError):
    """An exported file that cannot be made or used as asked; the message says why."""


class TrainingError(So3kError, RuntimeError):
    """Training cannot go on; the message says why and what to try."""
