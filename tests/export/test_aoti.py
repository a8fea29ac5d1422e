"""Compiled packages (export/aoti.py, `so3k export --format aoti`): the package against the eager
model in float64 through the ASE calculator and OpenMM's PythonForce, and every refusal."""

import subprocess
import sys

import numpy as np
import openmm
import pytest
import torch
from openmm import unit
from so3k.export import ExportError, export_model
from so3k.export.aoti import CompiledForceField, read_metadata
from so3k.export.metadata import weights_hash
from so3k.export.openmm import create_force, system_from_atoms

import so3k
from so3k.calculators import So3kratesCalculator
from so3k.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

PRESETS = ["euclidean2024", "neurips2022"]


def calculated(calculator, atoms, stress=False):
    atoms = atoms.copy()
    atoms.calc = calculator
    out = {"energy": atoms.get_potential_energy(), "energies": atoms.get_potential_energies(), "forces": atoms.get_forces()}
    if stress:
        out["stress"] = atoms.get_stress()
    return out


def thin_triclinic_water(make_water):
    """A triclinic box thinner than two cutoffs: atoms see their own periodic images."""
    return make_water(n_per_side=2, spacing=3.1, seed=5, skew=True)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("system", ["molecule", "triclinic box"])
def test_package_equals_the_eager_model(compiled_models, preset, system, aspirin, make_water):
    model, path = compiled_models[preset]
    atoms = aspirin if system == "molecule" else thin_triclinic_water(make_water)
    periodic = system != "molecule"
    expected = calculated(So3kratesCalculator(model=model), atoms, stress=periodic)
    got = calculated(So3kratesCalculator(path), atoms, stress=periodic)
    assert got["energy"] == pytest.approx(expected["energy"], rel=1e-10)
    for key in ("energies", "forces") + (("stress",) if periodic else ()):
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=1e-10 * np.abs(expected[key]).max())


def test_owned_atoms_energy_and_forces_for_ghost_shells(compiled_models, aspirin):
    """n_owned (LAMMPS ghosts): the energy of the first atoms only; forces from it act on all."""
    from so3k import keys
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    model, path = compiled_models["euclidean2024"]
    g = build_graph([aspirin], model.config.elements, model.cutoff, torch.float64)
    eager = ForceField(model.eval())(**g.inputs(), n_local=12)
    compiled = CompiledForceField(path)(**g.inputs(), n_local=12)
    assert float(compiled[keys.ENERGY]) == pytest.approx(float(eager[keys.ENERGY]), rel=1e-10)
    assert compiled[keys.ENERGIES].shape == (12,)
    np.testing.assert_allclose(compiled[keys.FORCES].numpy(), eager[keys.FORCES].numpy(), atol=1e-10)


def test_package_metadata_describes_the_model(compiled_models):
    model, path = compiled_models["euclidean2024"]
    meta = read_metadata(path)
    assert meta["engine"] == "aoti" and meta["device"] == "cpu" and meta["dtype"] == "float64"
    assert meta["elements"] == ["H", "C", "O"] and meta["cutoff"] == 5.0 and meta["layers"] == 2
    assert meta["inputs"][0] == "positions" and meta["outputs"] == ["energy", "energies", "forces", "virial"]
    assert meta["torch_version"] == torch.__version__ and meta["aoti"]["AOTI_DEVICE_KEY"] == "cpu"
    assert meta["weights_sha256"] == weights_hash(model.double())


def openmm_state(system, atoms):
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions / NM_TO_ANGSTROM)
    state = context.getState(getEnergy=True, getForces=True)
    kj_nm = unit.kilojoule_per_mole / unit.nanometer
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / EV_TO_KJ_PER_MOL,
            state.getForces(asNumpy=True).value_in_unit(kj_nm) / (EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM))


@pytest.mark.parametrize("system", ["molecule", "triclinic box"])
def test_openmm_python_force_equals_the_calculator(compiled_models, system, aspirin, make_water):
    model, path = compiled_models["euclidean2024"]
    atoms = aspirin if system == "molecule" else thin_triclinic_water(make_water)
    if system != "molecule":  # OpenMM's reduced form (system_from_atoms refuses a cell it would have to rotate)
        from so3k.export.openmm import openmm_box

        box, rotation = openmm_box(atoms.cell.array)
        atoms.positions = atoms.positions @ rotation.T
        atoms.set_cell(box * NM_TO_ANGSTROM, scale_atoms=False)
    expected = calculated(So3kratesCalculator(model=model), atoms)
    system_ = system_from_atoms(path, atoms, backend="python")
    e, f = openmm_state(system_, atoms)
    assert e == pytest.approx(expected["energy"], rel=1e-10)
    np.testing.assert_allclose(f, expected["forces"], atol=1e-9 * np.abs(expected["forces"]).max())
    # XmlSerializer saves the PythonForce by pickling its computation: the reloaded System agrees
    reloaded = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system_))
    assert openmm_state(reloaded, atoms)[0] == e


def test_openmm_python_force_on_an_ml_subset(compiled_models, aspirin):
    model, path = compiled_models["euclidean2024"]
    expected = calculated(So3kratesCalculator(model=model), aspirin)
    system = openmm.System()
    numbers = [8] * 4 + list(aspirin.numbers)
    for _ in numbers:
        system.addParticle(1.0)
    system.addForce(create_force(path, numbers, atoms=list(range(4, 4 + len(aspirin))), periodic=False, backend="python"))
    positions = np.concatenate([np.full((4, 3), 40.0), aspirin.positions])
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions / NM_TO_ANGSTROM)
    state = context.getState(getEnergy=True, getForces=True)
    f = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    assert state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(
        expected["energy"] * EV_TO_KJ_PER_MOL, rel=1e-10)
    assert np.all(f[:4] == 0)
    np.testing.assert_allclose(f[4:], expected["forces"] * EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM,
                               atol=1e-9 * np.abs(f).max())


def test_packages_for_another_device_or_torch_are_refused_with_the_reason(compiled_models, rewritten_package, tmp_path):
    _, path = compiled_models["euclidean2024"]
    with pytest.raises(ExportError, match="compiled for cpu, not cuda.*--device cuda"):
        CompiledForceField(path, device="cuda")
    cuda_package = rewritten_package(path, tmp_path / "cuda.pt2", {"device": "cuda"})
    with pytest.raises(ExportError, match="compiled for cuda, not cpu"):
        CompiledForceField(cuda_package, device="cpu")
    old = rewritten_package(path, tmp_path / "old.pt2", {"torch_version": "2.3.1"})
    with pytest.raises(ExportError, match=r"compiled with torch 2\.3\.1.*export the checkpoint again"):
        So3kratesCalculator(old)


def test_files_that_are_not_packages_are_refused(compiled_models, tmp_path):
    model, path = compiled_models["euclidean2024"]
    torchscript = export_model(model, tmp_path / "model.pt", dtype="float64")
    with pytest.raises(ExportError, match="not an AOTInductor package"):
        CompiledForceField(torchscript)
    text = tmp_path / "notes.pt2"
    text.write_text("not a package")
    with pytest.raises(ExportError, match="not a compiled package"):
        So3kratesCalculator(text)
    with pytest.raises(ExportError, match="compiled package: use create_force\\(\\.\\.\\., backend='python'\\)"):
        create_force(path, [1, 1])
    with pytest.raises(ExportError, match="python backend runs the compiled package"):
        create_force(path, [1, 1], backend="python", cuda_graphs=True)


def test_export_refusals(compiled_models, tmp_path):
    model, _ = compiled_models["euclidean2024"]
    nonlocal_model = so3k.build_model("euclidean2024", elements=["H", "O"], layers=1, nonlocal_attention="fixed")
    with pytest.raises(ExportError, match="does not take non-local models yet.*TorchScript"):
        export_model(nonlocal_model, tmp_path / "nl.pt2", format="aoti")
    with pytest.raises(ExportError, match="a compiled package is a .pt2 file"):
        export_model(model, tmp_path / "model.pt", format="aoti")
    with pytest.raises(ExportError, match="--outputs-forces is for TorchScript"):
        export_model(model, tmp_path / "m.pt2", format="aoti", outputs_forces=True)
    with pytest.raises(ExportError, match="--device is for compiled packages"):
        export_model(model, tmp_path / "m.pt", device="cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ExportError, match="needs a visible CUDA GPU"):
            export_model(model, tmp_path / "m.pt2", format="aoti", device="cuda")
    assert not list(tmp_path.glob("*.pt2"))  # nothing half-written


def test_cli_compiles_a_trained_checkpoint_in_float32(trained_ethanol, tmp_path):
    from so3k.data.molecules import load_molecule

    out = tmp_path / "ethanol.pt2"
    done = subprocess.run([sys.executable, "-m", "so3k.cli", "export", str(trained_ethanol), "--format", "aoti", "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "compiled" in done.stdout and "checked against the model" in done.stdout and out.exists()
    assert read_metadata(out)["dtype"] == "float32"
    atoms = load_molecule("ethanol")
    expected = calculated(So3kratesCalculator(trained_ethanol), atoms)
    got = calculated(So3kratesCalculator(out), atoms)
    assert got["energy"] == pytest.approx(expected["energy"], rel=1e-5)
    np.testing.assert_allclose(got["forces"], expected["forces"], atol=1e-4 * np.abs(expected["forces"]).max())


def test_the_isolated_check_runs_the_package_in_a_child_process(compiled_models, tmp_path, monkeypatch):
    """CUDA packages are checked in a child process (a package that crashes when loaded must not
    take the exporter with it); the same check, forced on the CPU, passes, and a crash is reported."""
    from so3k.export.aoti import Entry, check_against_eager

    model, path = compiled_models["euclidean2024"]
    model = model.double().eval()
    errors = check_against_eager(path, Entry(model), model, torch.device("cpu"), isolated=True)
    assert set(errors) == {f"{k}/{o}" for k in ("box", "molecule") for o in ("energy", "energies", "forces", "virial")}
    assert max(errors.values()) < 1e-10
    broken = tmp_path / "broken.pt2"
    broken.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip: loading fails in the child
    with pytest.raises(ExportError, match="the package compiled, but it failed"):
        check_against_eager(broken, Entry(model), model, torch.device("cpu"), isolated=True)
    # a child that dies of a signal, as the CUDA package loader did on the H200: the error names the frame
    crashing = tmp_path / "crashing-python"
    crashing.write_text("#!/bin/sh\necho 'Current thread 0x1 (most recent call first):' >&2\n"
                        "echo '  File \"package.py\", line 1045 in _load_aoti' >&2\nkill -SEGV $$\n")
    crashing.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(crashing))
    with pytest.raises(ExportError, match=r"it crashed \(signal 11; in File \"package.py\", line 1045 in _load_aoti\)"):
        check_against_eager(path, Entry(model), model, torch.device("cpu"), isolated=True)


def test_a_failed_compile_is_an_export_error_and_leaves_no_file(tmp_path, monkeypatch):
    import torch._inductor

    def broken(*args, **kwargs):
        raise RuntimeError("C++ compile error: cc1plus: out of memory")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", broken)
    model = so3k.build_model("euclidean2024", elements=["H", "O"], layers=1)
    with pytest.raises(ExportError, match="could not compile the model .*out of memory.*TorchScript"):
        export_model(model, tmp_path / "model.pt2", dtype="float64", format="aoti")
    assert list(tmp_path.iterdir()) == []
