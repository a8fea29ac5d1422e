"""Building and finding the plugin: version string, build record, entry point, make and CLI."""

import importlib.metadata
import json
import shutil
import subprocess

from so3k.cli import main
from so3k.lammps import lammps_version_string, lmp_environment, plugin_dir, plugin_status
from so3k.lammps.build import PLUGIN, STAMP


def test_version_string_is_the_one_lmp_reports(lmp):
    assert lammps_version_string("2025.7.22.4.0") == "22 Jul 2025"
    assert lammps_version_string("2024.8.29.1.0") == "29 Aug 2024"
    done = subprocess.run([str(lmp.bin / "lmp"), "-h"], capture_output=True, text=True, env=lmp_environment())
    assert f"Parallel Simulator - {lammps_version_string()} - Update" in done.stdout


def test_build_record_detects_a_missing_or_stale_plugin(plugin, tmp_path):
    assert plugin_status(plugin.parent) == "ok"
    assert plugin_status(tmp_path) == "missing"
    shutil.copy(plugin, tmp_path / PLUGIN)
    assert plugin_status(tmp_path) == "stale: no build record"
    record = json.loads((plugin.parent / STAMP).read_text())
    (tmp_path / STAMP).write_text(json.dumps(dict(record, torch="2.0.0", sources_sha256="0")))
    assert plugin_status(tmp_path) == "stale: sources_sha256, torch changed"


def test_the_wheel_finds_the_plugin_through_the_entry_point(plugin, monkeypatch, tmp_path, capsys):
    (entry,) = [ep for ep in importlib.metadata.entry_points(group="lammps.plugins") if ep.name == "so3k"]
    assert entry.load()() == str(plugin.parent)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("SO3K_LAMMPS_PLUGIN_DIR", str(tmp_path))
    assert plugin_dir() == str(tmp_path)
    assert "is missing; run `so3k lammps build`" in capsys.readouterr().err


def test_make_and_cli_report_an_up_to_date_plugin(plugin, lmp, capsys):
    import sys

    done = subprocess.run(["make", "-C", str(lmp.root / "deploy" / "lammps"), f"PYTHON={sys.executable}"], capture_output=True, text=True)
    assert done.returncode == 0 and "the plugin is up to date" in done.stdout, done.stdout + done.stderr
    assert main(["lammps", "status"]) == 0
    out = capsys.readouterr().out
    assert f"{PLUGIN}: ok" in out and "22 Jul 2025" in out
