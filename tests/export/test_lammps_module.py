"""The module for the LAMMPS pair style: owned + ghost atoms reproduce the periodic model exactly."""

import itertools

import numpy as np
import pytest
import torch
from so3k.export import export_model, load_exported

import so3k
from so3k.species import species_index


def with_ghosts(atoms, shell):
    """Owned atoms (wrapped into the cell) followed by every periodic image within `shell` Å of
    the cell's atoms, as LAMMPS would hold them; and the owner of each ghost."""
    owned = atoms.copy()
    owned.wrap()
    cell = owned.cell.array
    spacing = 1.0 / np.linalg.norm(np.linalg.inv(cell).T, axis=1)
    reach = [int(np.ceil(shell / h)) for h in spacing]
    positions, owners = [owned.positions], [np.arange(len(owned))]
    for n in itertools.product(*[range(-m, m + 1) for m in reach]):
        if n == (0, 0, 0):
            continue
        image = owned.positions + np.array(n) @ cell
        distance = np.linalg.norm(image[:, None, :] - owned.positions[None, :, :], axis=-1).min(axis=1)
        keep = distance <= shell
        positions.append(image[keep])
        owners.append(np.flatnonzero(keep))
    return owned, np.concatenate(positions), np.concatenate(owners)


@pytest.mark.parametrize("preset", ["euclidean2024", "neurips2022"])
def test_owned_plus_ghosts_equal_the_periodic_model(preset, make_water, run_model, tmp_path):
    torch.manual_seed(0)
    model = so3k.build_model(preset, elements=["H", "O"], layers=2).double()
    model.readout.scale.fill_(2.0)
    path = export_model(model, tmp_path / "lammps.pt", engine="lammps", dtype="float64")
    module, meta = load_exported(path, "lammps")
    # 2 layers x 5 Å, plus 5 Å when the SPHCs start as neighbour averages (NeurIPS)
    assert meta["ghost_cutoff"] == (15.0 if preset == "neurips2022" else 10.0) and meta["units"]["style"] == "metal"

    atoms = make_water(n_per_side=2, spacing=3.1, seed=6)  # skewed 6.2 Å cell: many images per atom
    owned, positions, owners = with_ghosts(atoms, meta["ghost_cutoff"])
    n_local = len(owned)
    species = species_index(owned.numbers[owners], model.config.elements)
    energy, forces, atom_energies = module(torch.tensor(positions), species, n_local)
    energy, forces, atom_energies = energy.detach(), forces.detach(), atom_energies.detach()

    e0, f0, s0 = run_model(model, [owned], stress=True)
    assert float(energy.detach()) == pytest.approx(e0[0], rel=1e-10)
    assert float(atom_energies.sum()) == pytest.approx(e0[0], rel=1e-10)
    # newton on: LAMMPS adds every ghost's force to its owner
    summed = np.zeros((n_local, 3))
    np.add.at(summed, owners, forces.numpy())
    np.testing.assert_allclose(summed, f0, atol=1e-9 * np.abs(f0).max())
    # fdotr virial: sum over owned and ghost atoms of r_i f_i equals -dE/d(strain) = V * (-stress)
    virial = positions.T @ forces.numpy()
    np.testing.assert_allclose(0.5 * (virial + virial.T), -s0[0] * owned.get_volume(), atol=1e-8)


def test_a_ghost_shell_of_layers_times_cutoff_is_too_thin_for_averaged_sphc_init(make_water, run_model, tmp_path):
    torch.manual_seed(0)
    model = so3k.build_model("neurips2022", elements=["H", "O"], layers=2).double()
    module, _ = load_exported(export_model(model, tmp_path / "lammps.pt", engine="lammps", dtype="float64"), "lammps")
    atoms = make_water(n_per_side=2, spacing=3.1, seed=6)
    owned, positions, owners = with_ghosts(atoms, 2 * model.cutoff)
    energy = module(torch.tensor(positions), species_index(owned.numbers[owners], model.config.elements), len(owned))[0]
    assert abs(float(energy.detach()) - run_model(model, [owned])[0][0]) > 1e-8


def test_pruned_layers_give_the_owned_energies_of_the_full_evaluation(make_water):
    """atomic_energies(n_local): layers skip pairs that cannot reach the owned atoms, exactly."""
    torch.manual_seed(1)
    model = so3k.build_model("euclidean2024", elements=["H", "O"], layers=3, cutoff=3.0).double()
    owned, positions, owners = with_ghosts(make_water(n_per_side=2, spacing=3.1, seed=2), 9.0)
    r = torch.tensor(positions)
    species = species_index(owned.numbers[owners], model.config.elements)
    idx_i, idx_j, offsets = so3k.neighbors.neighbor_list(r, model.cutoff)
    full = model.atomic_energies(r, species, idx_i, idx_j, offsets)
    pruned = model.atomic_energies(r, species, idx_i, idx_j, offsets, n_local=len(owned))
    torch.testing.assert_close(pruned[: len(owned)], full[: len(owned)], rtol=0, atol=1e-12)
    assert not torch.allclose(pruned, full)  # the ghosts' own energies are not computed


@pytest.mark.parametrize("periodic", [True, False])
def test_single_domain_equals_the_calculator(periodic, make_water, aspirin, run_model, tmp_path):
    """The one-rank path: owned atoms + cell, virial from the strain derivative."""
    torch.manual_seed(2)
    atoms = make_water(n_per_side=2, spacing=3.1, seed=3) if periodic else aspirin
    model = so3k.build_model("euclidean2024", elements=sorted(set(atoms.get_chemical_symbols())), layers=2).double()
    module, _ = load_exported(export_model(model, tmp_path / "lammps.pt", engine="lammps", dtype="float64"), "lammps")
    cell = torch.tensor(atoms.cell.array if periodic else np.zeros((3, 3)))
    pbc = torch.tensor([periodic] * 3)
    species = species_index(atoms.numbers, model.config.elements)
    out = module.single_domain(torch.tensor(atoms.positions), species, cell, pbc)
    energy, forces, atom_energies, virial = (t.detach() for t in out)
    e0, f0, s0 = run_model(model, [atoms], stress=periodic)
    assert float(energy) == pytest.approx(e0[0], rel=1e-12)
    assert float(atom_energies.sum()) == pytest.approx(e0[0], rel=1e-12)
    np.testing.assert_allclose(forces.numpy(), f0, atol=1e-12 * np.abs(f0).max())
    w = -s0[0] * atoms.get_volume() if periodic else atoms.positions.T @ f0
    want = np.array([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])
    np.testing.assert_allclose(virial.numpy(), want, atol=1e-10 * np.abs(want).max())


def test_cli_exports_for_lammps(trained_ethanol, tmp_path, capsys):
    from so3k.cli import main

    out = tmp_path / "model-lammps.pt"
    assert main(["export", str(trained_ethanol), "--engine", "lammps", "-o", str(out), "--dtype", "float64"]) == 0
    text = capsys.readouterr().out
    assert "pair_coeff * * " in text and "ghost cutoff 10.0 Å" in text
    module, meta = load_exported(out, "lammps")
    assert meta["units"]["style"] == "metal" and meta["elements"] == ["H", "C", "O"] and meta["nonlocal_attention"] is False
