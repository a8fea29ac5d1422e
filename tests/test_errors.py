"""One error family: the CLI prints a user's mistake as one line, and lets a bug keep its traceback."""

import pytest

from so3k.cli import main
from so3k.errors import So3kError


def test_a_user_error_is_one_line_and_exit_status_2(capsys, tmp_path):
    assert main(["export", str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("so3k: error: checkpoint") and "not found" in err


def test_a_bug_is_not_swallowed_as_a_user_error(monkeypatch):
    import so3k.export

    def broken(*args, **kwargs):
        raise ValueError("an internal inconsistency")  # not a So3kError: a bug

    monkeypatch.setattr(so3k.export, "export_model", broken)
    with pytest.raises(ValueError, match="an internal inconsistency"):
        main(["export", "x.ckpt", "-o", "y.pt"])


def test_every_subsystem_error_is_a_so3k_error():
    from so3k.checkpoint import CheckpointError
    from so3k.data.generate.sink import ResumeError
    from so3k.data.validate import DataError
    from so3k.errors import CapabilityError, ConfigError, ExportError, InputError, StructureError, UnknownElementError
    from so3k.lammps import PluginBuildError
    from so3k.neighbors import NeighborListError
    from so3k.train.trainer import TrainingError

    for error in (CheckpointError, ResumeError, DataError, CapabilityError, ConfigError, ExportError, InputError,
                  StructureError, UnknownElementError, PluginBuildError, NeighborListError, TrainingError):
        assert issubclass(error, So3kError), error


def test_bad_units_and_generator_options_are_user_errors():
    from so3k.data.generate.md import MDConfig
    from so3k.units import energy_to_ev

    with pytest.raises(So3kError, match="unknown energy unit 'furlongs'"):
        energy_to_ev("furlongs")
    with pytest.raises(So3kError, match="temperature must be > 0 K"):
        MDConfig(molecule="ethanol", temperature=-1.0)
