"""examples/benchmarks/gpu.py in its CPU mode: every section runs and reports numbers, so that the
scarce GPU run only measures."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "benchmarks" / "gpu.py"


def test_the_gpu_check_runs_every_section_on_the_cpu(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu", "--out", str(tmp_path)], capture_output=True, text=True)
    results = json.loads((tmp_path / "results-gpu.json").read_text())
    assert done.returncode == 0 and not results["errors"], done.stdout[-3000:] + done.stderr[-3000:]
    assert results["environment"]["torch"] and results["environment"]["openmm"].startswith("8.")
    for row in results["correctness"]:  # float64 on the device equals the CPU; float32 close to it
        assert row["forces_rel"] < (1e-10 if row["dtype"] == "float64" else 1e-3), row
    graphs = {row["cuda_graphs"] for row in results["openmm_agreement"]}
    assert graphs == {False, True}
    for row in results["openmm_agreement"]:
        assert row["forces_rel"] < (1e-10 if row["dtype"] == "float64" else 1e-3), row
    assert all(row["ms_per_step"] > 0 and row["ns_per_day"] > 0 for row in results["openmm_speed"])
    assert {row["cuda_graphs"] for row in results["openmm_speed"]} == {False, True}
    assert all(row["eager_ms"] > 0 for row in results["eager"]) and all(row["structures_per_s"] > 0 for row in results["training"])
    assert results["nve"]["steps"] > 0 and abs(results["nve"]["drift_kJ_mol_per_ns"]) < 1e3
    for row in results["profile"]:  # operators counted per call, forward and backward
        assert row["wall_ms"] > 0 and row["aten_ops_per_call"] > 100, row
    assert [row["system"] for row in results["compiled"]] == ["aspirin"]
    text = (tmp_path / "results-gpu.md").read_text()
    assert "OpenMM step" in text and "NVE" in text and (tmp_path / "results-gpu.png").stat().st_size > 1000


def test_sections_rerun_into_an_earlier_report(tmp_path):
    """--sections with --merge reruns what failed and keeps the rest of an earlier (GPU) report."""
    earlier = {"cpu": True, "errors": {"training": "Traceback ...\nRuntimeError: boom"}, "training": "failed (see Errors)",
               "environment": {"device": "earlier machine", "torch": "2.11"}, "correctness": [{"system": "kept", "forces_rel": 0.5}]}
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu", "--sections", "training", "--merge", str(tmp_path / "earlier.json"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results-gpu.json").read_text())
    assert results["errors"] == {} and results["training"][0]["structures_per_s"] > 0
    assert results["environment"]["device"] == "earlier machine" and results["correctness"][0]["system"] == "kept"
    wrong = subprocess.run([sys.executable, str(SCRIPT), "--cpu", "--sections", "nope", "--out", str(tmp_path / "x")],
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "unknown sections" in wrong.stderr
