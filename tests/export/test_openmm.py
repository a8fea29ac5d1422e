"""Exported models inside real OpenMM Contexts (Reference and CPU platforms) against the eager model."""

import copy
import json
import zipfile

import numpy as np
import openmm
import pytest
import torch
from ase import Atoms
from openmm import unit
from so3k.export import ExportError, export_model, load_exported
from so3k.export.openmm import create_force

import so3k
from so3k.calculators import So3kratesCalculator
from so3k.errors import CapabilityError, UnknownElementError
from so3k.species import species_index
from so3k.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

KJ_NM = unit.kilojoule_per_mole / unit.nanometer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=2).double()
    m.readout.scale.fill_(2.0)
    m.readout.shift.copy_(torch.tensor([-0.5, -1.0, -1.5], dtype=torch.float64))
    return m


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    return {
        (dtype, forces): export_model(model, folder / f"{dtype}-{forces}.pt", dtype=dtype, outputs_forces=forces)
        for dtype in ("float64", "float32")
        for forces in (False, True)
    }


def reference(model, atoms):
    """Eager energy (kJ/mol) and forces (kJ/mol/nm) through the ASE calculator."""
    atoms = atoms.copy()
    atoms.calc = So3kratesCalculator(model=model)
    return atoms.get_potential_energy() * EV_TO_KJ_PER_MOL, atoms.get_forces() * EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM


def openmm_energy_forces(path, atoms, platform="Reference", ml_atoms=None, extra_particles=0, xml=False):
    system = openmm.System()
    for _ in range(len(atoms) + extra_particles):
        system.addParticle(1.0)
    numbers = list(atoms.numbers) + [1] * extra_particles
    periodic = bool(atoms.pbc.any())
    if periodic:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) * 0.1 for row in atoms.cell.array])
    system.addForce(create_force(path, numbers, atoms=ml_atoms, periodic=periodic))
    if xml:
        system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
    positions = np.concatenate([atoms.positions, np.full((extra_particles, 3), 50.0)]) * 0.1
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole), state.getForces(asNumpy=True).value_in_unit(KJ_NM)


def triclinic_water(make_water):
    atoms = make_water(n_per_side=2, spacing=3.3, seed=3, skew=False)
    # OpenMM's reduced form: a = (ax,0,0), b = (bx,by,0), c = (cx,cy,cz), ax >= 2|bx|, ax >= 2|cx|, by >= 2|cy|
    cell = np.array([[6.6, 0.0, 0.0], [1.9, 6.4, 0.0], [-1.5, 2.2, 6.5]])
    atoms.set_cell(cell, scale_atoms=True)
    return atoms


@pytest.mark.parametrize("platform, rtol", [("Reference", 1e-10), ("CPU", 1e-6)])
@pytest.mark.parametrize("outputs_forces", [False, True])
def test_molecule_in_vacuum(model, exported, aspirin, platform, rtol, outputs_forces):
    e0, f0 = reference(model, aspirin)
    e, f = openmm_energy_forces(exported["float64", outputs_forces], aspirin, platform)
    assert e == pytest.approx(e0, rel=rtol)
    np.testing.assert_allclose(f, f0, rtol=0, atol=rtol * np.abs(f0).max() * 10)


@pytest.mark.parametrize("outputs_forces", [False, True])
def test_triclinic_water_box_and_molecules_split_across_the_boundary(model, exported, make_water, outputs_forces):
    atoms = triclinic_water(make_water)
    e0, f0 = reference(model, atoms)
    e, f = openmm_energy_forces(exported["float64", outputs_forces], atoms)
    assert e == pytest.approx(e0, rel=1e-10)
    np.testing.assert_allclose(f, f0, atol=1e-9 * np.abs(f0).max())
    # Move whole molecules by lattice vectors: some now straddle the box faces, others lie outside.
    moved = atoms.copy()
    shifts = np.random.default_rng(0).integers(-2, 3, size=(len(atoms) // 3, 3))
    moved.positions += np.repeat(shifts @ atoms.cell.array, 3, axis=0)
    moved.positions[1] += atoms.cell.array[0]  # one H leaves its O's image: the molecule is split
    e1, f1 = openmm_energy_forces(exported["float64", outputs_forces], moved)
    assert e1 == pytest.approx(e0, rel=1e-10)
    np.testing.assert_allclose(f1, f0, atol=1e-9 * np.abs(f0).max())


def test_ml_subset_of_a_larger_system(model, exported, aspirin):
    e0, f0 = reference(model, aspirin)
    n = len(aspirin)
    # The ML atoms are the last n particles of the System; 5 other particles come first.
    order = list(range(5, 5 + n))
    shuffled = Atoms(numbers=[1] * 5 + list(aspirin.numbers), positions=np.concatenate([np.full((5, 3), 30.0), aspirin.positions]))
    e, f = openmm_energy_forces(exported["float64", False], shuffled, ml_atoms=order)
    assert e == pytest.approx(e0, rel=1e-10)
    assert np.all(f[:5] == 0)
    np.testing.assert_allclose(f[5:], f0, atol=1e-9 * np.abs(f0).max())


def test_float32_export(model, exported, aspirin):
    e0, f0 = reference(model, aspirin)
    e, f = openmm_energy_forces(exported["float32", True], aspirin)
    assert e == pytest.approx(e0, rel=1e-5)  # float32 model: ~7 significant digits
    np.testing.assert_allclose(f, f0, atol=1e-4 * np.abs(f0).max())


def test_xml_serialised_system_reloads_with_the_same_energy(exported, aspirin):
    e, _ = openmm_energy_forces(exported["float64", False], aspirin)
    e_xml, _ = openmm_energy_forces(exported["float64", False], aspirin, xml=True)
    assert e_xml == e


def test_exported_file_round_trip_and_metadata(model, exported, aspirin):
    module, meta = load_exported(exported["float64", False])
    assert meta["elements"] == ["H", "C", "O"] and meta["cutoff"] == 5.0 and meta["layers"] == 2
    assert meta["dtype"] == "float64" and meta["units"]["energy"] == "kJ/mol" and len(meta["weights_sha256"]) == 64
    assert meta["model_config"]["preset"] == "euclidean2024"
    module.species = species_index(aspirin.numbers, model.config.elements)
    energy = module(torch.tensor(aspirin.positions * 0.1))
    assert float(energy) == pytest.approx(reference(model, aspirin)[0], rel=1e-12)


def rewrite_metadata(source, target, change):
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("extra/so3k.json"):
                meta = json.loads(data)
                change(meta)
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    return target


def test_bad_files_are_refused_with_the_reason(model, exported, tmp_path, aspirin):
    newer = rewrite_metadata(exported["float64", False], tmp_path / "newer.pt", lambda m: m.update(format_version=99))
    with pytest.raises(ExportError, match=r"made by a newer so3k \(format 99.*reads format 1: upgrade so3k"):
        load_exported(newer)
    other = rewrite_metadata(exported["float64", False], tmp_path / "lammps.pt", lambda m: m.update(engine="lammps"))
    with pytest.raises(ExportError, match="exported for 'lammps', not 'openmm'"):
        load_exported(other)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(plain))
    with pytest.raises(ExportError, match="no so3k.json metadata: it was not made by `so3k export`"):
        load_exported(plain)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a model")
    with pytest.raises(ExportError, match="is not a TorchScript file"):
        load_exported(junk)
    with pytest.raises(FileNotFoundError):
        load_exported(tmp_path / "missing.pt")
    with pytest.raises(UnknownElementError, match=r"element\(s\) \['F'\] \(model .*\) are not known to this model"):
        create_force(exported["float64", False], [6, 9, 1])
    with pytest.raises(ExportError, match="unknown engine 'gromacs'"):
        export_model(model, tmp_path / "x.pt", engine="gromacs")


def openmm_graphs(path, atoms, box_width=None, ml_atoms=None, max_neighbours=None):
    system = openmm.System()
    for _ in range(len(atoms)):
        system.addParticle(1.0)
    periodic = bool(atoms.pbc.any())
    if periodic:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) * 0.1 for row in atoms.cell.array])
    force = create_force(path, atoms.numbers, atoms=ml_atoms, periodic=periodic, cuda_graphs=True, box_width=box_width,
                         max_neighbours=max_neighbours)
    assert force.getProperties()["useCUDAGraphs"] == "true"
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions * 0.1)
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole), state.getForces(asNumpy=True).value_in_unit(KJ_NM)


@pytest.mark.parametrize("outputs_forces", [False, True])
def test_fixed_capacity_pairs_equal_the_neighbour_list(model, exported, aspirin, make_water, outputs_forces):
    path = exported["float64", outputs_forces]
    e0, f0 = reference(model, aspirin)
    e, f = openmm_graphs(path, aspirin)
    assert e == pytest.approx(e0, rel=1e-10)
    np.testing.assert_allclose(f, f0, atol=1e-9 * np.abs(f0).max())
    box = make_water(n_per_side=4, spacing=3.1, seed=2, skew=False)  # 12.4 Å: more than twice the cutoff
    box.set_cell(box.cell.array + np.array([[0, 0, 0], [2.0, 0, 0], [-1.5, 3.0, 0]]), scale_atoms=False)
    box.positions[::3] += box.cell.array[1]  # atoms outside the box
    e0, f0 = reference(model, box)
    e, f = openmm_graphs(path, box, box_width=1.24)  # 80 slots for 191 other atoms: only the nearest
    assert e == pytest.approx(e0, rel=1e-10)
    np.testing.assert_allclose(f, f0, atol=1e-9 * np.abs(f0).max())
    with pytest.raises(ExportError, match="needs a box at least twice the cutoff wide"):
        openmm_graphs(path, triclinic_water(make_water), box_width=0.66)


def test_fixed_capacity_pairs_for_an_ml_subset_and_their_overflow(model, exported, aspirin):
    ml = list(range(0, 21, 2))
    both = aspirin + aspirin[[0]]
    both.positions[-1] = [30.0, 30.0, 30.0]  # an MM particle far away
    e0, f0 = reference(model, aspirin[ml])
    e, f = openmm_graphs(exported["float64", True], both, ml_atoms=ml)
    assert e == pytest.approx(e0, rel=1e-10)
    np.testing.assert_allclose(f[ml], f0, atol=1e-9 * np.abs(f0).max())
    assert np.abs(np.delete(f, ml, axis=0)).max() == 0.0
    energy, forces = openmm_graphs(exported["float64", False], aspirin, max_neighbours=4)  # overflow: NaN, no crash
    assert np.isnan(energy) and np.isnan(forces).all()


SYNCING_OPS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::unique_dim", "aten::_unique2"}


def ops_called(module, *inputs):
    """Names of the ops a call runs, leaving out what runs inside the device-side overflow check
    (on a GPU one kernel; on the CPU it reads its flag at once)."""
    with torch.profiler.profile() as profile:
        module(*inputs)

    def inside_check(event):
        while event is not None:
            if event.name == "aten::_functional_assert_async":
                return True
            event = event.cpu_parent
        return False

    return {event.name for event in profile.events() if not inside_check(event)}


@pytest.mark.parametrize("outputs_forces", [False, True])
def test_cuda_graph_forward_needs_no_host_synchronisation(model, exported, make_water, outputs_forces):
    # What CUDA graphs need, checked on CPU: no op that reads a value back to the host
    # (.item(), bool(tensor)) or makes a data-dependent shape (nonzero, masked_select, unique).
    module, _ = load_exported(exported["float64", outputs_forces])
    box = make_water(n_per_side=4, spacing=3.1, seed=2, skew=False)
    n = len(box)
    module.species = species_index(box.numbers, model.config.elements)
    positions = torch.tensor(box.positions * 0.1)
    cell = torch.tensor(box.cell.array * 0.1)
    dynamic = ops_called(module, positions, cell)
    assert dynamic & SYNCING_OPS  # the neighbour list does synchronise: the check can fail
    dynamic_out = module(positions.clone().requires_grad_(not outputs_forces), cell)
    module.neighbour_slots = torch.zeros(min(64, n - 1))
    graphed = ops_called(module, positions, cell)
    assert "aten::topk" in graphed and not graphed & SYNCING_OPS
    # and the same numbers as the ordinary pair list, in float64
    graphed_out = module(positions.clone().requires_grad_(not outputs_forces), cell)
    for a, b in zip(*(out if outputs_forces else (out,) for out in (graphed_out, dynamic_out))):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-12 * float(b.abs().max()))


def test_non_local_model_in_openmm(tmp_path, make_water):
    """A non-local model exports, gives the eager energies and forces for a molecule, and is
    refused for a periodic system."""
    from so3k.data.generate.cumulene import build_cumulene

    torch.manual_seed(4)
    model = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=2, features=32, cutoff=4.0,
                             nonlocal_attention="fixed", nonlocal_threshold=0.5).double()
    model.readout.scale.fill_(2.0)
    path = export_model(model, tmp_path / "nonlocal.pt", dtype="float64")
    assert load_exported(path)[1]["nonlocal_attention"] is True
    atoms = build_cumulene(12, 35.0)
    atoms.positions += np.random.default_rng(0).normal(scale=0.03, size=atoms.positions.shape)
    energy, forces = openmm_energy_forces(path, atoms)
    e0, f0 = reference(model, atoms)
    assert energy == pytest.approx(e0, rel=1e-10)
    np.testing.assert_allclose(forces, f0, atol=1e-8 * np.abs(f0).max())
    with pytest.raises(CapabilityError, match="cannot run on a periodic system: non-local attention"):
        openmm_energy_forces(path, make_water(n_per_side=2, spacing=3.1))


def test_the_module_exposes_only_what_create_force_sets(exported):
    from so3k.export.openmm import PER_SYSTEM

    for key in exported:
        module, _ = load_exported(exported[key])
        assert sorted(name for name, _ in module.named_buffers(recurse=False)) == sorted(PER_SYSTEM)


def code_of_every_module(module):
    try:
        yield module.code
    except AttributeError:  # a container without forward
        pass
    for child in module.children():
        yield from code_of_every_module(child)


def test_the_module_keeps_its_tensors_movable_for_the_cuda_platform(exported):
    # TorchForce calls module.to(device) and then freezes the module itself: a module frozen at
    # export keeps its weights as graph constants, which .to() leaves on the CPU
    for key in exported:
        module, _ = load_exported(exported[key])
        assert not any("CONSTANTS." in code for code in code_of_every_module(module))
        assert sum(p.numel() for p in module.parameters()) > 1000
        frozen = torch.jit.freeze(module.eval())  # what TorchForce does after moving it
        assert any("CONSTANTS." in code for code in code_of_every_module(frozen))  # the check can fail


def test_system_from_atoms_reduces_a_triclinic_cell_for_openmm(model, exported, make_water):
    from so3k.export.openmm import system_from_atoms

    atoms = make_water(n_per_side=2, spacing=3.3, seed=5, skew=False)
    # the same lattice as OpenMM's reduced form would have, but b_x > a_x / 2: OpenMM refuses it as given
    atoms.set_cell([[6.6, 0.0, 0.0], [4.5, 6.4, 0.0], [-1.5, 2.2, 6.5]], scale_atoms=True)
    e0, f0 = reference(model, atoms)
    system = system_from_atoms(exported["float64", False], atoms)
    a, b, c = system.getDefaultPeriodicBoxVectors()
    assert b[0].value_in_unit(unit.nanometer) == pytest.approx((4.5 - 6.6) * 0.1)
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions * 0.1)
    state = context.getState(getEnergy=True, getForces=True)
    assert state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(e0, rel=1e-10)
    np.testing.assert_allclose(state.getForces(asNumpy=True).value_in_unit(KJ_NM), f0, atol=1e-9 * np.abs(f0).max())
    rotated = atoms.copy()
    rotated.rotate(30, "z", rotate_cell=True)
    with pytest.raises(ExportError, match="rotate the structure first"):
        system_from_atoms(exported["float64", False], rotated)


def test_export_refuses_options_it_cannot_honour(model, tmp_path):
    from so3k.checkpoint import save_checkpoint

    with pytest.raises(ExportError, match="--outputs-forces is an OpenMM option"):
        export_model(model, tmp_path / "l.pt", engine="lammps", outputs_forces=True)
    checkpoint = tmp_path / "m.ckpt"
    save_checkpoint(checkpoint, {"model_config": model.config.to_dict(), "state_dict": model.state_dict()})
    before = checkpoint.read_bytes()
    with pytest.raises(ExportError, match="is the checkpoint itself"):
        export_model(checkpoint, checkpoint)
    assert checkpoint.read_bytes() == before


def test_a_nan_model_is_refused_unless_forced(model, tmp_path):
    from so3k.checkpoint import save_checkpoint

    content = {"model_config": model.config.to_dict(), "state_dict": model.state_dict(),
               "history": [{"epoch": 1, "valid_loss": 0.5}, {"epoch": 2, "valid_loss": float("nan")}]}
    save_checkpoint(tmp_path / "nan-metrics.ckpt", content)
    with pytest.raises(ExportError, match="validation loss of this checkpoint's epoch 2 is nan"):
        export_model(tmp_path / "nan-metrics.ckpt", tmp_path / "a.pt")
    assert not (tmp_path / "a.pt").exists()
    assert export_model(tmp_path / "nan-metrics.ckpt", tmp_path / "a.pt", force=True).exists()
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.readout.scale.fill_(float("nan"))
    with pytest.raises(ExportError, match="non-finite weights"):
        export_model(broken, tmp_path / "b.pt")


def test_float32_export_far_from_the_origin(model, exported, aspirin):
    e0, f0 = reference(model, aspirin)
    far = aspirin.copy()
    far.positions += 1e4  # Å; OpenMM passes float64 positions on Reference and CPU
    e, f = openmm_energy_forces(exported["float32", False], far)
    assert e == pytest.approx(e0, rel=1e-5)
    np.testing.assert_allclose(f, f0, rtol=0, atol=1e-4 * np.abs(f0).max())


def test_overlapping_atoms_stop_openmm(exported, aspirin):
    close = aspirin.copy()
    close.positions[1] = close.positions[0] + [0.2, 0.0, 0.0]
    with pytest.raises(openmm.OpenMMException, match=r"atoms 0 and 1 are 0\.2.* Å apart, closer than min_distance = 0\.5 Å"):
        openmm_energy_forces(exported["float64", False], close)
    energy, _ = openmm_graphs(exported["float64", True], close)  # fixed-size pairs: NaN, no host read
    assert np.isnan(energy)
    system = openmm.System()
    for _ in close:
        system.addParticle(1.0)
    system.addForce(create_force(exported["float64", False], close.numbers, min_distance=0.0))  # the check off
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(close.positions * 0.1)
    assert np.isfinite(context.getState(getEnergy=True).getPotentialEnergy()._value)
