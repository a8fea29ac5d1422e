"""examples/benchmarks/stability.py: the quick run end to end, resuming a run, the failure report
on planted failures, and the radial distribution function."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "examples" / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import stability  # noqa: E402

R = 0.5 * (stability.RDF_BINS[1:] + stability.RDF_BINS[:-1])


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("stability")
    results, summary = stability.main(["--quick", "--systems", "ethanol", "water", "--out", str(out), "--quiet"])
    return out, results, summary


def test_quick_run_reports_each_system_and_seed(quick):
    out, results, summary = quick
    report = json.loads((out / "stability.json").read_text())
    assert sorted((r["system"], r["seed"]) for r in report["runs"]) == [("ethanol", 0), ("ethanol", 1), ("water", 0), ("water", 1)]
    table = (out / "stability.md").read_text()
    for system in ("ethanol", "water"):
        for seed in (0, 1):
            assert f"| {system} | so3k | {seed} |" in table
    for r in report["runs"]:
        assert r["ms_per_step"] > 0 and r["steps"] > 0 and r["simulated_ps"] > 0
        assert r["simulated_ps"] <= 0.1 + 1e-9 and r["settings"]["timestep_fs"] == (1.0 if r["system"] == "water" else 0.5)
        if r["failure"] is None:  # then the run went the whole way, and says so
            assert r["steps"] == round(0.1 / r["settings"]["timestep_fs"] * 1000) and "none within" in table
    assert (out / "stability.png").stat().st_size > 20_000
    assert set(summary) == {"ethanol", "water"} and summary["water"]["so3k"]["rdf_first_peak"] is not None
    assert 2.6 < summary["water"]["so3k"]["rdf_first_peak"]["reference"] < 3.0  # O-O in liquid water: about 2.8 Å


def test_the_rdf_of_a_water_run_tends_to_one(quick):
    _, results, _ = quick
    runs = [r for r in results if r["system"] == "water" and r["rdf"] is not None]
    assert runs, "no water run kept a frame"
    g = np.array(runs[0]["rdf"])
    assert abs(g[(R > 6.0) & (R < 8.0)].mean() - 1.0) < 0.12
    assert g[R < 2.0].sum() == 0 and g.max() > 1.5  # no O-O pair closer than 2 Å; a first-shell peak


def test_a_finished_run_is_reused_and_an_interrupted_one_resumes_exactly(quick, tmp_path):
    out, results, _ = quick
    cached = out / "runs" / "ethanol-so3k-s0" / "result.json"
    before = cached.stat().st_mtime_ns
    again, _ = stability.main(["--quick", "--systems", "ethanol", "--out", str(out), "--quiet"])
    assert cached.stat().st_mtime_ns == before
    assert [r["steps"] for r in again] == [r["steps"] for r in results if r["system"] == "ethanol"]

    model = next((out / "models").glob("ethanol-*-openmm.pt"))
    spec = dict(system="ethanol", model="so3k", seed=0, steps=40, timestep_fs=0.5, temperature=500.0, engine="openmm",
                model_path=str(model), chunk_steps=20, platform="CPU", threads=1, quiet=True)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    stability.run_openmm(dict(spec, run_dir=str(whole)))
    stability.run_openmm(dict(spec, run_dir=str(parts), steps=20))  # stopped after one chunk ...
    stability.run_openmm(dict(spec, run_dir=str(parts)))  # ... and continued from its checkpoint
    a, b = stability.trajectory(stability.load_chunks(whole)), stability.trajectory(stability.load_chunks(parts))
    assert len(stability.load_chunks(parts)) == 2 and list(a[2]) == list(b[2]) == [10, 20, 30, 40]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-10)


@pytest.fixture
def ethanol_md():
    """300 reference frames of ethanol as a trajectory: positions, temperatures near 500 K, steps."""
    frames = stability.reference("ethanol")[0][:300]
    positions = np.array([a.positions for a in frames])
    temperatures = 500.0 + np.random.default_rng(0).normal(scale=60.0, size=len(frames))
    return positions, temperatures, 10 * np.arange(1, len(frames) + 1)


def test_the_failure_report_flags_a_planted_broken_bond_and_nan(ethanol_md):
    positions, temperatures, steps = ethanol_md
    clean = stability.analyse("ethanol", positions, temperatures, steps, 0.5, 500.0)
    assert clean["failure"] is None and clean["frames_analysed"] == 300
    assert abs(clean["temperature_mean"] - 500.0) < 15.0 and set(clean["bonds"]) == {"C-C", "C-H", "C-O", "O-H"}

    check = stability.reference_check("ethanol", 500.0)
    i, j = int(check.i[0]), int(check.j[0])
    broken = positions.copy()
    broken[120:, j] = broken[120:, i] + 1.6 * (broken[120:, j] - broken[120:, i])
    result = stability.analyse("ethanol", broken, temperatures, steps, 0.5, 500.0)
    assert result["failure"]["kind"] == "bond broken" and result["failure"]["step"] == 1210
    assert result["failure"]["time_ps"] == pytest.approx(0.605) and result["frames_analysed"] == 120
    assert f"{i}" in result["failure"]["detail"] and "equilibrium" in result["failure"]["detail"]
    run = dict(result, system="ethanol", model="so3k", seed=0, steps=3000, simulated_ps=0.605, ms_per_step=1.0,
               settings={"temperature": 500.0, "timestep_fs": 0.5})
    assert "| 0.605 ps | bond broken:" in stability.run_row(run, 100.0)

    nan = positions.copy()
    nan[77, 3, 1] = np.nan
    result = stability.analyse("ethanol", nan, temperatures, steps, 0.5, 500.0)
    assert (result["failure"]["kind"], result["failure"]["step"]) == ("nan", 780)
    hot = temperatures.copy()
    hot[77] = np.inf
    assert stability.analyse("ethanol", positions, hot, steps, 0.5, 500.0)["failure"]["kind"] == "nan"


def test_a_temperature_runaway_and_an_engine_stop_are_reported(ethanol_md):
    positions, temperatures, steps = ethanol_md
    hot = temperatures.copy()
    hot[50:] = 950.0  # the window (5 ps, 1000 frames) is checked once a quarter full: at frame 250, mean 860 K
    failure = stability.analyse("ethanol", positions, hot, steps, 0.5, 500.0)["failure"]
    assert failure["kind"] == "temperature" and failure["step"] == 2500
    warm = temperatures.copy()
    warm[50:] = 700.0  # hot, but below 1.5 x 500 K: not a runaway
    assert stability.analyse("ethanol", positions, warm, steps, 0.5, 500.0)["failure"] is None
    brief = temperatures.copy()
    brief[150:155] = 2000.0  # a hot instant is not a runaway
    assert stability.analyse("ethanol", positions, brief, steps, 0.5, 500.0)["failure"] is None
    stop = {"kind": "stopped", "detail": "atoms 1 and 2 are 0.49 Å apart", "step": 3010}
    failure = stability.analyse("ethanol", positions, temperatures, steps, 0.5, 500.0, stopped=stop)["failure"]
    assert failure["kind"] == "stopped" and failure["time_ps"] == pytest.approx(1.505)


def test_rdf_of_an_ideal_gas_is_one_and_the_first_peak_is_located():
    rng = np.random.default_rng(1)
    cell = np.array([[9.0, 0.0, 0.0], [2.0, 8.5, 0.0], [-1.0, 1.5, 10.0]])  # triclinic: images beyond the minimum one
    positions = rng.uniform(size=(40, 60, 3)) @ cell
    g = stability.rdf(positions, cell)
    for lo in range(1, 8):
        assert abs(g[(R > lo) & (R < lo + 1)].mean() - 1.0) < 0.08, lo
    peak = 1.0 + 2.0 * np.exp(-((R - 2.83) ** 2) / (2 * 0.12**2)) + 0.05 * np.sin(7 * R)
    assert stability.first_peak(peak) == pytest.approx(2.83, abs=0.01)
    assert stability.first_peak(np.roll(peak, 4)) == pytest.approx(2.93, abs=0.01)  # 4 bins of 0.025 Å further out
