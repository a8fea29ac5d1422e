"""The shipped cumulene models: what the local model cannot see, and the shipped table reproduced."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nonlocal_cumulene"
sys.path.insert(0, str(EXAMPLE))

import run  # noqa: E402

from so3k.calculators import So3kratesCalculator  # noqa: E402
from so3k.data.generate.cumulene import build_cumulene, rotate_end  # noqa: E402


def profile(name, n, angles):
    calc = So3kratesCalculator(model=str(EXAMPLE / "models" / f"{name}.ckpt"), dtype=torch.float64)
    start = build_cumulene(n)
    energies = []
    for angle in angles:
        atoms = rotate_end(start, angle)
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
    return np.array(energies)


@pytest.mark.parametrize("n", [16, 30])  # ends 19 and 37 Å apart; 30 carbons is longer than any training chain
def test_local_model_cannot_see_the_far_end_and_the_nonlocal_one_can(n):
    angles = [0.0, 30.0, 60.0, 90.0]
    local = profile("local", n, angles)
    nonlocal_ = profile("nonlocal", n, angles)
    assert np.ptp(local) < 1e-9  # no atom's energy depends on both ends (float64)
    assert np.ptp(nonlocal_) > 1e-3  # the non-local attention reaches the far end


def test_shipped_models_reproduce_the_shipped_table(tmp_path):
    run.evaluate(tmp_path, reach=16.0, models=EXAMPLE / "models")

    def rows(text):
        out = {}
        for line in text.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells and cells[0].isdigit():
                out[int(cells[0])] = [float(c) for c in cells[4:]]  # barrier, then error and range per model
        return out

    shipped = rows((EXAMPLE / "results-45min.md").read_text())
    fresh = rows((tmp_path / "scan.md").read_text())
    assert sorted(fresh) == sorted(shipped) == list(range(3, 25))
    for n in shipped:
        assert fresh[n] == pytest.approx(shipped[n], abs=0.011), n
    far_line = re.search(r"never trained on .*", (tmp_path / "scan.md").read_text()).group()
    assert "15, 16, 19, 20, 23, 24" in far_line
    assert (tmp_path / "scan.png").stat().st_size > 10_000
