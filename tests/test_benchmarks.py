"""The speed suite's own parts: structure shapes, the busy-machine refusal, one so3k case."""

import json
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "examples" / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import suite  # noqa: E402


def test_repeat_shapes_are_near_cubic():
    assert suite.repeat_shape(125) == (5, 5, 5)
    assert sorted(suite.repeat_shape(16)) == [2, 2, 4]
    assert suite.repeat_shape(1) == (1, 1, 1)


def test_busy_cores_sees_another_process_spinning():
    # a child that keeps one core busy for the whole measurement must be counted as about one core
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 5\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)
        busy = suite.busy_cores(seconds=1.0)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy >= 0.7


def test_suite_refuses_to_report_on_a_busy_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["suite.py", "--no-peers", "--no-engines", "--out", str(tmp_path), "--max-busy", "-1"])
    with pytest.raises(SystemExit, match="busy .*no report"):
        suite.main()
    assert not (tmp_path / "suite.md").exists()
    assert len(ase.io.read(tmp_path / "structures" / "water-12000.extxyz")) == 12000


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_one_so3k_case_prints_its_measurement(tmp_path, mode):
    from so3k.data.molecules import load_molecule

    structures = tmp_path / "structures"
    structures.mkdir()
    ase.io.write(structures / "aspirin.extxyz", load_molecule("aspirin"))
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "so3k_cases.py"), "--case", "aspirin", "--structures", str(structures),
         "--warmup", "1", "--repeats", "2", "--threads", "1", "--mode", mode],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["atoms"] == 21 and row["params"] == 283_773 and row["ms"] > 0 and row["pairs"] > 0 and row["mode"] == mode
    if mode == "compiled":  # compiled once, kept beside the structures for the next rounds
        assert len(list((tmp_path / "packages").glob("*.pt2"))) == 1


def test_engine_timing_with_random_weights_is_not_stopped_by_the_overlap_guard(tmp_path):
    # random weights drive atoms together within a few hundred steps: the timing runs switch the
    # min_distance guard off, which would otherwise stop them (as it should stop real MD)
    import common

    from so3k.export import export_model

    atoms = common.shipped_frame("aspirin")
    path = export_model(common.random_model("euclidean2024", atoms), tmp_path / "m.pt", dtype="float32")
    assert common.openmm_step_ms(path, atoms, "CPU", 30, 300) > 0


def test_memory_benchmark_counts_saved_activations_per_pair(capsys):
    import memory

    rows = memory.main(["--quick"])
    assert [r["preset"] for r in rows] == ["euclidean2024", "neurips2022"]
    for r in rows:  # float32 activations: kilobytes per pair, a box of thousands of waters in 24 GB
        assert 1e3 < r["bytes_per_pair"] < 1e5 and r["pairs"] > r["atoms"] and r["largest_waters"] > 1000
    assert rows[1]["bytes_per_pair"] > rows[0]["bytes_per_pair"]  # neurips2022 is the wider model
    assert "kB per pair" in capsys.readouterr().out
