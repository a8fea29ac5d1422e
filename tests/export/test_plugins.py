"""OpenMM-Torch works whatever the import order: each order in a fresh process gives the same
energy in a real Context."""

import json
import subprocess
import sys

import pytest
import torch
from so3k.export import export_model
from so3k.export.plugins import failed_torch_plugins

import so3k

SCRIPT = """
import importlib, json, sys
for name in {order!r}:
    importlib.import_module(name)
import numpy as np, openmm
from so3k.data.molecules import load_molecule
from so3k.export.openmm import system_from_atoms
atoms = load_molecule("ethanol")
context = openmm.Context(system_from_atoms({path!r}, atoms), openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
context.setPositions(atoms.positions * 0.1)
print(json.dumps(context.getState(getEnergy=True).getPotentialEnergy()._value))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=1, features=16, heads=2)
    model.readout.scale.fill_(2.0)
    return export_model(model, tmp_path_factory.mktemp("plugins") / "m.pt", dtype="float64")


def energy_after(order, path):
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(order=order, path=str(path))], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_any_import_order_gives_working_forces(exported):
    orders = [["openmm", "torch"], ["openmm", "openmmtorch"], ["openmmml", "openmm"], ["openmm.app", "so3k"], ["torch", "openmm"]]
    energies = [energy_after(order, exported) for order in orders]
    assert energies[0] != 0.0
    assert all(e == energies[0] for e in energies), energies


def test_only_torchforce_plugins_are_reloaded():
    failures = (
        "Error loading library /env/OpenMM.libs/lib/plugins/libOpenMMTorchCUDA.so: libnvrtc.so.12: cannot open shared object file",
        "Error loading library /env/OpenMM.libs/lib/plugins/libOpenMMOpenCL.so: libOpenCL.so.1: cannot open shared object file",
        "Error loading library /env/OpenMM.libs/lib/plugins/libOpenMMTorchReference.so: libtorch_cpu.so: cannot open shared object file",
    )
    assert failed_torch_plugins(failures) == [
        "/env/OpenMM.libs/lib/plugins/libOpenMMTorchCUDA.so", "/env/OpenMM.libs/lib/plugins/libOpenMMTorchReference.so",
    ]
