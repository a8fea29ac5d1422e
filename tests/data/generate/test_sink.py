import json

import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from so3k.data.generate.sink import FrameSink, ResumeError, provenance_path
from so3k.data.io import read_frames


def _frame(k: int) -> Atoms:
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * k]])
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0 - k, forces=[[0, 0, k], [0, 0, -k]])
    return atoms


def test_half_written_frame_is_dropped_on_resume(tmp_path):
    out = tmp_path / "set.extxyz"
    sink = FrameSink(out, {"a": 1})
    for k in range(3):
        sink.append(_frame(k), {"next": k + 1})
    sink.close()
    with open(out, "a") as fh:  # a crash in the middle of writing frame 3
        fh.write("2\nProperties=species:S:1:pos:R:3 energy=-4.0\nH 0 0")
    sink = FrameSink(out, {"a": 1}, resume=True)
    assert sink.n_frames == 3 and sink.extra == {"next": 3}
    sink.append(_frame(3), {"next": 4})
    sink.finish({"command": "test"})
    assert read_frames(out).energy.tolist() == [-1.0, -2.0, -3.0, -4.0]


def test_resume_refuses_other_settings(tmp_path):
    out = tmp_path / "set.extxyz"
    FrameSink(out, {"seed": 1, "n": 2}).close()
    with pytest.raises(ResumeError, match="settings differ from the original run \\(seed: 1 -> 2\\)"):
        FrameSink(out, {"seed": 2, "n": 2}, resume=True)


def test_existing_output_is_not_overwritten_silently(tmp_path):
    out = tmp_path / "set.extxyz"
    out.write_text("precious")
    with pytest.raises(ResumeError, match="exists: pass --resume to continue it or --overwrite"):
        FrameSink(out, {})
    with pytest.raises(ResumeError, match="has no state file"):
        FrameSink(out, {}, resume=True)
    assert out.read_text() == "precious"
    FrameSink(out, {}, overwrite=True).close()
    assert out.read_text() == ""


def test_compressed_target_and_provenance(tmp_path):
    out = tmp_path / "set.extxyz.xz"
    sink = FrameSink(out, {"seed": 0})
    for k in range(2):
        sink.append(_frame(k))
    sink.finish({"command": "so3k data x", "method": "toy"})
    assert out.exists() and not (tmp_path / "set.extxyz").exists()
    record = json.loads(provenance_path(out).read_text())
    assert provenance_path(out).name == "set.provenance.json"
    assert record["command"] == "so3k data x" and record["frames"] == 2 and record["method"] == "toy"
    assert record["statistics"]["n_frames"] == 2 and "ase" in record["software"]
    assert len(read_frames(out)) == 2
    # resuming a finished run does nothing
    assert FrameSink(out, {"seed": 0}, resume=True).complete
