import subprocess
import sys

import pytest

import so3k
from so3k.cli import main


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "so3k.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"so3k {so3k.__version__}"


@pytest.mark.parametrize("command", ["stats", "md", "cumulene", "scan", "water", "relabel"])
def test_every_data_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as stop:
        main(["data", command, "--help"])
    assert stop.value.code == 0
    assert "usage: so3k data " + command in capsys.readouterr().out


def test_bad_option_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["data", "cumulene", "--frames", "many"])
    assert stop.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err
