"""The So3krates energy model: symmetry, smoothness, batching, TorchScript, padding, parameters."""

import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation

import so3k
from so3k.forces import ForceField
from so3k.graph import build_graph
from so3k.model import count_parameters

PRESETS = ["neurips2022", "euclidean2024"]


def small(preset, elements=("C", "H", "O"), **overrides):
    """The preset's architecture at reduced depth, random weights, float64; readout scaled up so
    energies are O(1) and relative errors meaningful."""
    torch.manual_seed(0)
    model = so3k.build_model(preset, elements=elements, layers=2, **overrides).double()
    model.readout.scale.fill_(2.0)
    model.readout.shift.copy_(torch.linspace(-1.0, 1.0, len(model.config.elements)))
    return model


@pytest.mark.parametrize("preset", PRESETS)
def test_invariance_and_force_equivariance(preset, aspirin, run_model):
    model = small(preset)
    e0, f0, _ = run_model(model, [aspirin])
    rng = np.random.default_rng(1)
    rotation = Rotation.random(random_state=2).as_matrix()
    reflection = np.diag([1.0, -1.0, 1.0]) @ rotation
    for q in (rotation, reflection):
        moved = aspirin.copy()
        moved.positions = aspirin.positions @ q.T + rng.normal(size=3) * 10.0
        e, f, _ = run_model(model, [moved])
        assert abs(e[0] - e0[0]) <= 1e-10 * abs(e0[0])
        np.testing.assert_allclose(f, f0 @ q.T, atol=1e-10 * np.abs(f0).max())
    perm = rng.permutation(len(aspirin))
    e, f, _ = run_model(model, [aspirin[perm]])
    assert abs(e[0] - e0[0]) <= 1e-10 * abs(e0[0])
    np.testing.assert_allclose(f, f0[perm], atol=1e-10 * np.abs(f0).max())


@pytest.mark.parametrize("preset", PRESETS)
def test_periodic_invariance(preset, water, run_model):
    model = small(preset, elements=("H", "O"))
    e0, f0, s0 = run_model(model, [water], stress=True)
    q = Rotation.random(random_state=3).as_matrix()
    moved = water.copy()
    moved.set_cell(water.cell.array @ q.T, scale_atoms=False)
    moved.positions = water.positions @ q.T + np.array([0.3, -7.0, 2.2])  # atoms leave the cell
    e, f, s = run_model(model, [moved], stress=True)
    assert abs(e[0] - e0[0]) <= 1e-10 * abs(e0[0])
    np.testing.assert_allclose(f, f0 @ q.T, atol=1e-10 * np.abs(f0).max())
    np.testing.assert_allclose(s[0], q @ s0[0] @ q.T, atol=1e-10 * np.abs(s0).max())


@pytest.mark.parametrize("preset", PRESETS)
def test_forces_are_minus_energy_gradient(preset, aspirin, run_model):
    model = small(preset)
    atoms = aspirin[:9]  # fewer atoms, same chemistry: keeps 54 finite differences cheap
    _, f, _ = run_model(model, [atoms])
    h = 1e-5
    numeric = np.zeros_like(f)
    for a in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, k] += h
            minus.positions[a, k] -= h
            numeric[a, k] = -(run_model(model, [plus])[0][0] - run_model(model, [minus])[0][0]) / (2 * h)
    np.testing.assert_allclose(f, numeric, atol=1e-7 * max(1.0, np.abs(f).max()))


@pytest.mark.parametrize("preset", PRESETS)
def test_stress_is_strain_derivative(preset, make_water, run_model):
    model = small(preset, elements=("H", "O"))
    water = make_water(n_per_side=1, spacing=3.4)  # 3.4 Å cell, 5 Å cutoff: atoms see their own images
    _, _, stress = run_model(model, [water], stress=True)
    volume = water.get_volume()
    h = 1e-5
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[a, b] = eps[b, a] = sign * h / (1 if a == b else 2)
                strained = water.copy()
                strained.set_cell(water.cell.array @ (np.eye(3) + eps), scale_atoms=True)
                energies.append(run_model(model, [strained])[0][0])
            numeric[a, b] = (energies[0] - energies[1]) / (2 * h) / volume
    np.testing.assert_allclose(stress[0], numeric, atol=1e-8)
    np.testing.assert_allclose(stress[0], stress[0].T, atol=1e-12)


@pytest.mark.parametrize("cutoff_function", ["cosine", "polynomial"])
@pytest.mark.parametrize("preset", PRESETS)
def test_energy_continuous_across_cutoff(preset, cutoff_function, run_model):
    model = small(preset, cutoff_function=cutoff_function)
    r_c = model.cutoff
    # A CH fragment moves along z so that its C crosses the cutoff sphere of atom 0 while its
    # H keeps it company (no atom becomes isolated, where the averaged SPHC init is undefined).
    base = np.array([[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [0.3, 1.0, 0.2]])
    delta = 1e-6
    energies, forces = [], []
    for d in (r_c - delta, r_c + delta):
        atoms = Atoms("COHCH", positions=np.concatenate([base, [[0.0, 0.0, d], [0.0, 1.1, d]]]))
        e, f, _ = run_model(model, [atoms])
        energies.append(e[0])
        forces.append(f)
    # The fragment also feels atoms inside its cutoff: remove that smooth first-order change.
    smooth = -(forces[0][3:, 2].sum() + forces[1][3:, 2].sum()) / 2 * (2 * delta)
    assert abs(energies[1] - energies[0] - smooth) < 1e-12
    np.testing.assert_allclose(forces[0], forces[1], atol=1e-5)


def test_batch_equals_separate_without_cross_gradients(aspirin, make_water, run_model):
    model = small("neurips2022")
    structures = [aspirin, make_water(n_per_side=1, seed=4), aspirin[:7]]
    e_batch, f_batch, _ = run_model(model, structures)
    start = 0
    for b, atoms in enumerate(structures):
        e, f, _ = run_model(model, [atoms])
        assert abs(e_batch[b] - e[0]) <= 1e-12 * abs(e[0])
        np.testing.assert_allclose(f_batch[start : start + len(atoms)], f, atol=1e-12)
        start += len(atoms)
    graph = build_graph(structures, model.config.elements, model.cutoff, torch.float64)
    positions = graph.positions.clone().requires_grad_(True)
    energy = model(positions, graph.species, graph.idx_i, graph.idx_j, graph.shifts(), graph.batch, 3)
    (grad,) = torch.autograd.grad(energy[0], positions)
    assert torch.all(grad[len(aspirin) :] == 0)


@pytest.mark.parametrize("preset", PRESETS)
def test_scripted_equals_eager(preset, aspirin, water, run_model, tmp_path):
    model = small(preset)
    scripted = torch.jit.script(ForceField(model))
    path = tmp_path / "model.pt"
    torch.jit.save(scripted, str(path))
    reloaded = torch.jit.load(str(path))
    frozen = torch.jit.freeze(torch.jit.script(ForceField(model).eval()))
    for structures in ([aspirin], [water]):
        periodic = bool(structures[0].pbc.any())
        reference = run_model(model, structures, stress=periodic)
        for module in (scripted, reloaded, frozen):
            result = run_model(model, structures, stress=periodic, scripted=module)
            for a, b in zip(reference, result):
                if a is not None:
                    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("preset", PRESETS)
def test_padding_pairs_change_nothing_and_stay_finite(preset, make_water):
    # H2 has identical even-degree SPHCs on both atoms (zero SPHC distance): the singular case
    # of |chi_j - chi_i|; padding pairs of zero length add coincident "atoms" to the pair list.
    model = small(preset)
    model.train()
    atoms = Atoms("HHO", positions=[[0, 0, 0], [0.74, 0, 0], [0.37, 2.5, 0.1]])
    graph = build_graph([atoms], model.config.elements, model.cutoff, torch.float64)
    pad = torch.tensor([0, 0, 1, 2])
    idx_i = torch.cat([graph.idx_i, pad])
    idx_j = torch.cat([graph.idx_j, pad])
    shifts = torch.cat([graph.shifts(), torch.zeros(len(pad), 3, dtype=torch.float64)])
    results = []
    for i, j, s in ((graph.idx_i, graph.idx_j, graph.shifts()), (idx_i, idx_j, shifts)):
        model.zero_grad()
        positions = graph.positions.clone().requires_grad_(True)
        energy = model(positions, graph.species, i, j, s, graph.batch, 1)
        (forces,) = torch.autograd.grad(energy.sum(), positions, create_graph=True)
        (forces**2).sum().backward()  # a force loss: second derivatives reach the parameters
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert torch.isfinite(forces).all()
        results.append((energy.detach(), forces.detach()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("preset", PRESETS)
def test_float32_close_to_float64(preset, aspirin, run_model):
    model = small(preset)
    e64, f64, _ = run_model(model, [aspirin], dtype=torch.float64)
    e32, f32, _ = run_model(model, [aspirin], dtype=torch.float32)
    assert abs(e32[0] - e64[0]) < 1e-4 * max(1.0, abs(e64[0]))
    np.testing.assert_allclose(f32, f64, atol=1e-4 * max(1.0, np.abs(f64).max()))


def test_parameter_count_reconciles_with_the_authors():
    # The authors' NeurIPS model has 715,435 parameters: a 100-row embedding (13,200), 6 layers
    # of 114,091 and a 17,689 readout. Ours allocates only the 5 parity-allowed SelfMix coupling
    # coefficients instead of a 3x3x3 array of 27 (22 fewer per layer) and one embedding row per
    # element the model knows.
    model = so3k.build_model("neurips2022", elements=list(range(1, 101)))
    assert model.embedding.table.weight.numel() == 13_200
    assert sum(p.numel() for p in model.readout.parameters()) == 17_689
    assert [count_parameters(layer) for layer in model.layers] == [114_091 - 22] * 6
    assert count_parameters(model) == 715_435 - 6 * 22
    assert count_parameters(so3k.build_model("neurips2022", elements=["C", "H", "O"])) == 715_435 - 6 * 22 - 97 * 132
    # Guards the documented count of the 2024 preset against silent architecture changes.
    assert count_parameters(so3k.build_model("euclidean2024", elements=["C", "H", "O"])) == 283_773
