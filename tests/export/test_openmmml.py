"""The OpenMM-ML entry point: MLPotential('so3krates') builds Systems whose ML energy is the model's."""

import sys

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

import so3k
from so3k.calculators import So3kratesCalculator
from so3k.export import export_model
from so3k.export.openmm import topology_from_symbols
from so3k.units import EV_TO_KJ_PER_MOL


def topology_of(atoms, waters=0):
    topology = topology_from_symbols(atoms.get_chemical_symbols(), "LIG")
    chain = next(topology.chains())
    for _ in range(waters):
        water = topology.addResidue("HOH", chain)
        for name, symbol in (("O", "O"), ("H1", "H"), ("H2", "H")):
            topology.addAtom(name, app.Element.getBySymbol(symbol), water)
    return topology


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(1)
    model = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=2).double()
    model.readout.scale.fill_(2.0)
    return model, export_model(model, tmp_path_factory.mktemp("m") / "model.pt", dtype="float64")


def energy(system, positions, groups=-1):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    return context.getState(getEnergy=True, groups=groups).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def test_entry_point_is_discovered_without_importing_torch_and_builds_a_system(model_file, aspirin):
    import subprocess

    probe = "import sys, openmmml; print('so3krates' in openmmml.MLPotential._implFactories, 'torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.split() == ["True", "False"]

    from openmmml import MLPotential

    model, path = model_file
    system = MLPotential("so3krates", modelPath=str(path)).createSystem(topology_of(aspirin))
    atoms = aspirin.copy()
    atoms.calc = So3kratesCalculator(model=model)
    assert energy(system, aspirin.positions * 0.1) == pytest.approx(atoms.get_potential_energy() * EV_TO_KJ_PER_MOL, rel=1e-10)
    with pytest.raises(ValueError, match="needs modelPath"):
        MLPotential("so3krates")


def test_mixed_system_applies_the_model_to_the_ml_atoms_only(model_file, aspirin):
    from openmmml import MLPotential

    model, path = model_file
    waters = 3
    topology = topology_of(aspirin, waters)
    n_ml = len(aspirin)
    mm = openmm.System()
    nonbonded = openmm.NonbondedForce()
    for atom in topology.atoms():
        mm.addParticle(atom.element.mass)
        nonbonded.addParticle(0.0, 0.3, 0.5)  # LJ only: MM interactions among and with the waters
    mm.addForce(nonbonded)
    rng = np.random.default_rng(0)
    water = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    positions = np.concatenate([aspirin.positions] + [water + rng.uniform(8, 12, size=3) * (k + 1) for k in range(waters)])
    mixed = MLPotential("so3krates", modelPath=str(path)).createMixedSystem(topology, mm, list(range(n_ml)), forceGroup=1)
    ml_only = energy(mixed, positions * 0.1, groups={1})
    atoms = aspirin.copy()
    atoms.calc = So3kratesCalculator(model=model)
    assert ml_only == pytest.approx(atoms.get_potential_energy() * EV_TO_KJ_PER_MOL, rel=1e-10)
    # The waters keep their MM interactions; ML-ML nonbonded pairs are removed by createMixedSystem.
    assert energy(mixed, positions * 0.1) != pytest.approx(ml_only, rel=1e-12)
