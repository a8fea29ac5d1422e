"""Files written before the engine boundary was reshaped (so3k 0.1.0, checkpoint and export
format 1; made by format1/make_format1.py) still load and give the same numbers: the
checkpoint through the calculator, the OpenMM export in a real Context, the LAMMPS export's
two entry points."""

import lzma
from pathlib import Path

import numpy as np
import openmm
import pytest
import torch
from openmm import unit
from so3k.export import load_exported
from so3k.export.openmm import create_force

from so3k.calculators import So3kratesCalculator
from so3k.checkpoint import model_from_checkpoint
from so3k.species import species_index
from so3k.units import ANGSTROM_TO_NM, EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

FILES = Path(__file__).resolve().parent / "format1"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("format1")
    for name in ("format1.ckpt", "format1-openmm.pt", "format1-lammps.pt"):
        (folder / name).write_bytes(lzma.decompress((FILES / f"{name}.xz").read_bytes()))
    return folder


@pytest.fixture(scope="module")
def expected(files, aspirin_module):
    atoms = aspirin_module.copy()
    atoms.calc = So3kratesCalculator(files / "format1.ckpt")
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_potential_energies()


@pytest.fixture(scope="module")
def aspirin_module():
    from so3k.data.molecules import load_molecule

    atoms = load_molecule("aspirin")
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def test_the_checkpoint_loads_with_its_weights(files, expected):
    model = model_from_checkpoint(files / "format1.ckpt")
    assert model.config.features == 8 and next(model.parameters()).dtype == torch.float64
    assert abs(expected[0]) > 1.0 and np.abs(expected[1]).max() > 0.01  # a model that does something


def test_the_openmm_export_runs_in_a_context(files, expected, aspirin_module):
    system = openmm.System()
    for _ in aspirin_module:
        system.addParticle(1.0)
    system.addForce(create_force(files / "format1-openmm.pt", aspirin_module.numbers))
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(aspirin_module.positions * ANGSTROM_TO_NM)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    assert energy == pytest.approx(expected[0] * EV_TO_KJ_PER_MOL, rel=1e-10)
    f0 = expected[1] * EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM
    np.testing.assert_allclose(forces, f0, rtol=0, atol=1e-9 * np.abs(f0).max())


def test_the_lammps_export_answers_both_entry_points(files, expected, aspirin_module):
    module, meta = load_exported(files / "format1-lammps.pt", "lammps")
    positions = torch.tensor(aspirin_module.positions)
    species = species_index(aspirin_module.numbers, meta["elements"])
    n = len(aspirin_module)
    energy, forces, atom_energies = (t.detach() for t in module(positions, species, n))
    assert float(energy[0]) == pytest.approx(expected[0], rel=1e-12)
    np.testing.assert_allclose(forces.numpy(), expected[1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(atom_energies.numpy(), expected[2], rtol=0, atol=1e-10)
    cell = torch.eye(3, dtype=torch.float64) * 40.0
    energy, forces, _, virial = (t.detach() for t in module.single_domain(positions, species, cell, torch.zeros(3, dtype=torch.bool)))
    assert float(energy[0]) == pytest.approx(expected[0], rel=1e-12)
    rf = aspirin_module.positions.T @ expected[1]
    np.testing.assert_allclose(virial.numpy(), [rf[0, 0], rf[1, 1], rf[2, 2], rf[0, 1], rf[0, 2], rf[1, 2]], rtol=0, atol=1e-8)
