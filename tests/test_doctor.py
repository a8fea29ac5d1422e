"""`so3k doctor` on this machine: what it finds, and that it flags what is wrong."""

import subprocess
import sys

import torch

import so3k.doctor


def test_doctor_reports_this_environment(plugin_built):
    done = subprocess.run([sys.executable, "-m", "so3k.cli", "doctor"], capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(line.startswith("ok") and "torch" in line and torch.__version__ in line for line in lines)
    assert any(line.startswith("ok") and "OpenMM-Torch" in line and "acellera-openmmtorch-cpu 1.10" in line for line in lines)
    assert any(line.startswith("ok") and "TorchForce kernels" in line and "Reference" in line for line in lines)
    assert any(line.startswith("ok") and "LAMMPS plugin" in line for line in lines)
    gpu = [line for line in lines if " GPU" in line]
    assert gpu and (gpu[0].startswith("ok") == torch.cuda.is_available())


def test_doctor_flags_two_openmm_torch_builds(monkeypatch, capsys):
    installed = {"openmm": "8.5.2", "acellera-openmmtorch-cpu": "1.10", "acellera-openmmtorch-cu12": "1.10"}
    monkeypatch.setattr(so3k.doctor, "_version", lambda name: installed.get(name, ""))
    assert so3k.doctor.doctor() == 1
    out = capsys.readouterr().out
    assert "!!  OpenMM-Torch" in out and "overwrite each other's files" in out


def test_doctor_reports_the_cpp_compiler_compiled_packages_need(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    status, what, detail = so3k.doctor.compiler_check()
    assert status == "ok" and what == "C++ compiler" and "compiled packages" in detail  # this machine builds the plugin
    monkeypatch.setattr("shutil.which", lambda name: None)
    status, _, detail = so3k.doctor.compiler_check()
    assert status == "--" and "--format aoti" in detail and "apt install g++" in detail
