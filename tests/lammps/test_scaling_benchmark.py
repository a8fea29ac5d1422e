"""The smallest case of examples/benchmarks/lammps_scaling.py: every row, ghosts and files."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "examples" / "benchmarks"


def test_quick_scaling_run_has_every_row(plugin, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("lammps_scaling", None)
    import lammps_scaling

    rows = lammps_scaling.main(["--quick", "--out", str(tmp_path)])
    cases = [(r["kind"], r["ranks"], r["case"]) for r in rows]
    assert [c[:2] for c in cases] == [("strong", 1), ("strong", 2), ("strong", 2), ("weak", 1)]
    exchange, shell = rows[1], rows[2]
    assert "exchange" in exchange["case"] and "shell" in shell["case"]
    # one cutoff of ghosts against the receptive field: several times fewer, and a far cheaper step
    assert exchange["ghosts"] < 0.5 * shell["ghosts"] and exchange["ms"] < shell["ms"]
    assert 0 < exchange["exchange_share"] < 1 and shell["exchange_share"] == 0
    assert all(r["ms"] > 0 and r["peak_MB"] > 100 for r in rows)
    for name in ("lammps_scaling.md", "lammps_scaling.json", "lammps_scaling.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "per-layer exchange" in (tmp_path / "lammps_scaling.md").read_text()
