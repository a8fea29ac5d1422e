"""Each mistake of issue 16's list ends in one line that says what is wrong and what to do,
never a traceback or torch's own advice."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import so3k
from so3k.checkpoint import save_checkpoint
from so3k.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("messages")
    torch.manual_seed(0)
    model = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=1, features=16, heads=2)
    save_checkpoint(folder / "m.ckpt", {"model_config": model.config.to_dict(), "state_dict": model.state_dict()})
    from so3k.export import export_model

    export_model(model, folder / "openmm.pt")
    export_model(model, folder / "lammps.pt", engine="lammps")
    (folder / "random.bin").write_bytes(bytes(range(256)) * 4)
    text = (ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz").read_text()
    frames = "".join(f"{text.splitlines()[0]}\nenergy={-k}.0 pbc=\"F F F\"\n" + "\n".join(text.splitlines()[2:]) + "\n" for k in range(3))
    (folder / "cut.extxyz").write_text(frames[: len(frames) - 60])  # cut in the last frame
    (folder / "dir").mkdir()
    return folder


def one_line(capsys, *argv):
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("so3k: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv, says", [
    (["data", "stats", "{f}/cut.extxyz"], "Is the file truncated or corrupt?"),
    (["data", "stats", "{f}/cut.extxyz", "--index", "foo"], "--index 'foo' is not a frame selection"),
    (["info", "{f}/random.bin"], "is not a so3k checkpoint: torch cannot read it"),
    (["info", "{f}/openmm.pt"], "is an exported model (TorchScript for an engine), not a checkpoint"),
    (["evaluate", "{f}/lammps.pt", "ethanol"], "is an exported model"),
    (["export", "{f}/openmm.pt", "-o", "{f}/x.pt"], "is an exported model"),
    (["evaluate", "{f}/m.ckpt", "ethanol", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["export", "{f}/m.ckpt", "-o", "{f}/dir"], "is a directory; give a file name"),
    (["train", "--out", "{f}/run"], "so3k train needs a training config"),
    (["train", str(ROOT / "examples" / "train_euclidean2024.yaml"), "--out", "{f}/random.bin"], "is a file; a run folder is a directory"),
    (["train", str(ROOT / "examples" / "train_euclidean2024.yaml"), "--out", "{f}/cuda",
      "--set", "training.device=cuda", "--set", "data.path=ethanol"], "no CUDA device is available"),
])
def test_each_mistake_is_one_line(files, capsys, argv, says):
    if "training.device=cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert says in one_line(capsys, *[a.format(f=files) for a in argv])


@pytest.mark.parametrize("model, says", [
    ("lammps.pt", "was exported for 'lammps', not 'openmm'"),
    ("m.ckpt", "export it first with `so3k export"),
    ("missing.pt", "not found"),
])
def test_run_md_refuses_a_wrong_model_in_one_line(files, model, says, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "openmm" / "run_md.py"), str(ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz"),
                           str(files / model), "--steps", "1", "--platform", "Reference", "--out", str(tmp_path / "md")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_run_md_names_an_unknown_element(files, tmp_path):
    (tmp_path / "hcl.xyz").write_text("2\n\nH 0 0 0\nCl 0 0 1.3\n")
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "openmm" / "run_md.py"), str(tmp_path / "hcl.xyz"), str(files / "openmm.pt"),
                           "--steps", "1", "--platform", "Reference", "--out", str(tmp_path / "md")], capture_output=True, text=True)
    assert done.returncode == 1 and "['Cl']" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_openmm_use_prints_no_simtk_warning(files):
    code = (f"import openmm; from so3k.export.openmm import create_force; create_force({str(files / 'openmm.pt')!r}, [1, 6, 8])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and "simtk" not in done.stderr + done.stdout, done.stderr


def test_a_truncated_generator_state_names_its_file(tmp_path):
    from so3k.data.generate.sink import FrameSink, ResumeError

    target = tmp_path / "out.extxyz"
    sink = FrameSink(target, config={"a": 1}, resume=False)
    sink.state_path.write_text(json.dumps({"config": {"a": 1}})[:10])  # cut short
    with pytest.raises(ResumeError, match=r"out\.extxyz\.state\.json is truncated or corrupt"):
        FrameSink(target, config={"a": 1}, resume=True)
