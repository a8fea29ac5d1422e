"""The ASE calculator: same numbers as the model, ASE's own finite differences, clear refusals."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

import so3k
from so3k.calculators import So3kratesCalculator
from so3k.errors import StructureError


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=2)
    m.readout.scale.fill_(3.0)
    return m


def test_energy_forces_energies_match_the_model(model, aspirin, run_model):
    atoms = aspirin.copy()
    atoms.calc = So3kratesCalculator(model=model)
    e, f, _ = run_model(model, [aspirin])
    assert atoms.get_potential_energy() == pytest.approx(e[0], rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f, atol=1e-12)
    assert atoms.get_potential_energies().sum() == pytest.approx(e[0], rel=1e-12)


def test_periodic_forces_and_stress_match_ase_finite_differences(model, make_water):
    atoms = make_water(n_per_side=1, spacing=3.6, seed=1)
    atoms.calc = So3kratesCalculator(model=model)
    np.testing.assert_allclose(atoms.get_stress(), calculate_numerical_stress(atoms, eps=1e-5), atol=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-7)


def test_float32_calculator(model, aspirin):
    atoms = aspirin.copy()
    atoms.calc = So3kratesCalculator(model=model, dtype=torch.float32)
    reference = aspirin.copy()
    reference.calc = So3kratesCalculator(model=model)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is left alone
    assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), abs=1e-3)


def test_stress_of_a_molecule_is_not_available(model, aspirin):
    aspirin.calc = So3kratesCalculator(model=model)
    with pytest.raises(PropertyNotImplementedError, match="periodic in all three"):
        aspirin.get_stress()


@pytest.mark.parametrize(
    "atoms, message",
    [
        (Atoms(), "empty structure"),
        (Atoms("CH", positions=[[0, 0, 0], [np.nan, 0, 0]]), r"non-finite \(NaN or inf\) positions for atom\(s\) \[1\]"),
        (Atoms("CF", positions=[[0, 0, 0], [1.3, 0, 0]]), r"element\(s\) \['F'\] are not known to this model"),
        (Atoms("CH", positions=[[0, 0, 0], [0.1, 0, 0]]), "0.100 Å apart.*overlapping atoms"),
        (Atoms("CH", positions=[[0, 0, 0], [1.0, 0, 0]], pbc=True), "zero-volume cell"),
    ],
)
def test_bad_structures_are_refused_with_the_reason(model, atoms, message):
    atoms.calc = So3kratesCalculator(model=model)
    with pytest.raises(StructureError, match=message):
        atoms.get_potential_energy()


def test_calculator_needs_a_model():
    with pytest.raises(ValueError, match="needs a model"):
        So3kratesCalculator()


def test_slab_with_zero_vacuum_vector_equals_explicit_vacuum(model, make_water):
    slab = make_water(n_per_side=2, spacing=3.2, seed=5, skew=False)
    slab.pbc = [True, True, False]
    explicit = slab.copy()
    explicit.cell[2] = [0.0, 0.0, 40.0]
    zero = slab.copy()
    zero.cell[2] = [0.0, 0.0, 0.0]
    energies = []
    for atoms in (explicit, zero):
        atoms.calc = So3kratesCalculator(model=model)
        energies.append(atoms.get_potential_energy())
    assert energies[1] == pytest.approx(energies[0], rel=1e-12)
    bad = slab.copy()
    bad.pbc = True
    bad.cell[2] = [0.0, 0.0, 0.0]
    bad.calc = So3kratesCalculator(model=model)
    with pytest.raises(StructureError, match="give every periodic direction a cell vector"):
        bad.get_potential_energy()


def test_atoms_without_neighbours_have_zero_forces_and_stress(model):
    lone = Atoms("O", positions=[[0.0, 0.0, 0.0]])
    lone.calc = So3kratesCalculator(model=model)
    far = Atoms("OH", positions=[[0.0, 0.0, 0.0], [12.0, 0.0, 0.0]], cell=[25.0, 25.0, 25.0], pbc=True)
    far.calc = So3kratesCalculator(model=model)
    assert np.all(lone.get_forces() == 0) and np.isfinite(lone.get_potential_energy())
    assert np.all(far.get_forces() == 0) and np.all(far.get_stress() == 0)
    hydrogen = Atoms("H", positions=[[0.0, 0.0, 0.0]])
    hydrogen.calc = So3kratesCalculator(model=model)
    # Without neighbours each atom contributes its element's isolated-atom energy.
    assert far.get_potential_energy() == pytest.approx(lone.get_potential_energy() + hydrogen.get_potential_energy(), rel=1e-12)


@pytest.mark.parametrize("offset", [1e4, 1e6])
def test_float32_accuracy_does_not_depend_on_the_distance_from_the_origin(model, aspirin, offset):
    reference = aspirin.copy()
    reference.calc = So3kratesCalculator(model=model, dtype=torch.float64)
    f0 = reference.get_forces()
    far = aspirin.copy()
    far.positions += offset
    far.calc = So3kratesCalculator(model=model, dtype=torch.float32)
    np.testing.assert_allclose(far.get_forces(), f0, rtol=0, atol=1e-4 * np.abs(f0).max())
    assert far.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=1e-5)
