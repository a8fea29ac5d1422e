"""deploy/openmm/run_md.py end to end, and energy conservation of an exported trained model in OpenMM."""

import csv
import importlib.util
from pathlib import Path

import numpy as np
import openmm
import pytest
from openmm import unit
from so3k.export import export_model
from so3k.export.openmm import system_from_atoms

from so3k.data.molecules import load_molecule

ROOT = Path(__file__).resolve().parents[2]


def script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / "openmm" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run_md():
    return script("run_md")


@pytest.fixture(scope="module")
def trained(trained_ethanol, tmp_path_factory):
    """The small trained ethanol model exported for OpenMM in float64."""
    return export_model(trained_ethanol, tmp_path_factory.mktemp("openmm") / "model.pt", dtype="float64")


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def rows_written(path):
    """Complete rows of a state.csv another process is writing (0 before its header is flushed)."""
    if not path.exists():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    return max(0, sum(1 for line in lines if line.endswith("\n")) - 1)


def test_run_md_writes_outputs_and_resumes(trained, tmp_path, capsys):
    main = run_md()
    structure = ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz"
    out = tmp_path / "md"
    assert main([str(structure), str(trained), "--steps", "30", "--report", "5", "--checkpoint-every", "10",
                 "--platform", "Reference", "--out", str(out)]) == 0
    assert "ns/day on Reference (CUDA graphs off)" in capsys.readouterr().out
    for name in ("state.csv", "trajectory.dcd", "checkpoint.chk", "energy.png"):
        assert (out / name).stat().st_size > 0
    assert len(read_rows(out / "state.csv")) == 6
    assert main([str(structure), str(trained), "--steps", "40", "--report", "5", "--platform", "Reference",
                 "--out", str(out), "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    rows = read_rows(out / "state.csv")
    assert len(rows) == 8 and int(rows[-1]['#"Step"']) == 40

    assert script("analyse")([str(out), "--dihedral", "0", "1", "2", "3"]) == 0
    text = capsys.readouterr().out
    assert "8 frames, 9 atoms" in text and "dihedral 0-1-2-3" in text and (out / "analysis.png").exists()



def test_cuda_graph_mode_follows_the_same_trajectory(trained, tmp_path, capsys):
    # the fixed-size pair list (what CUDA graphs need) on the Reference platform: same states
    main = run_md()
    structure = ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz"
    for mode in ("off", "on"):
        assert main([str(structure), str(trained), "--steps", "20", "--report", "10", "--platform", "Reference",
                     "--ensemble", "nve", "--cuda-graphs", mode, "--out", str(tmp_path / mode)]) == 0
        assert f"(CUDA graphs {mode})" in capsys.readouterr().out
    off, on = read_rows(tmp_path / "off" / "state.csv"), read_rows(tmp_path / "on" / "state.csv")
    key = "Potential Energy (kJ/mole)"
    assert [float(r[key]) for r in on] == pytest.approx([float(r[key]) for r in off], rel=1e-9)


def test_a_compiled_package_runs_through_python_force_and_resumes(trained_ethanol, trained, tmp_path, capsys):
    """run_md.py with a .pt2: the NVE trajectory of the TorchScript export (float64), then --resume."""
    package = export_model(trained_ethanol, tmp_path / "model.pt2", dtype="float64", format="aoti")
    main = run_md()
    structure = ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz"
    for name, model in (("torchscript", trained), ("package", package)):
        assert main([str(structure), str(model), "--steps", "20", "--report", "5", "--platform", "Reference",
                     "--ensemble", "nve", "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    key = "Potential Energy (kJ/mole)"
    expected = [float(r[key]) for r in read_rows(tmp_path / "torchscript" / "state.csv")]
    assert [float(r[key]) for r in read_rows(tmp_path / "package" / "state.csv")] == pytest.approx(expected, rel=1e-9)
    assert main([str(structure), str(package), "--steps", "30", "--report", "5", "--platform", "Reference", "--ensemble", "nve",
                 "--out", str(tmp_path / "package"), "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert int(read_rows(tmp_path / "package" / "state.csv")[-1]['#"Step"']) == 30
    with pytest.raises(SystemExit, match="--cuda-graphs on needs a TorchScript export"):
        main([str(structure), str(package), "--steps", "5", "--cuda-graphs", "on", "--out", str(tmp_path / "graphs")])


def test_too_few_neighbour_slots_stop_the_run_with_the_reason(trained, tmp_path):
    main = run_md()
    structure = ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz"
    with pytest.raises(SystemExit, match="the run stopped at step .*rerun with a larger --max-neighbours"):
        main([str(structure), str(trained), "--steps", "20", "--report", "5", "--platform", "Reference",
              "--cuda-graphs", "on", "--max-neighbours", "2", "--out", str(tmp_path / "md")])


def test_a_resumed_run_drops_what_was_written_after_its_checkpoint(trained, tmp_path, capsys):
    import shutil

    import mdtraj

    main = run_md()
    structure = str(ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz")
    common = [structure, str(trained), "--report", "10", "--platform", "Reference", "--ensemble", "nve"]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    assert main(common + ["--steps", "50", "--out", str(killed)]) == 0
    shutil.copy(killed / "checkpoint.chk", tmp_path / "at-50.chk")
    assert main(common + ["--steps", "80", "--out", str(killed), "--resume"]) == 0
    # as if killed at step 80 before the checkpoint of step 80 was written
    shutil.copy(tmp_path / "at-50.chk", killed / "checkpoint.chk")
    assert main(common + ["--steps", "100", "--out", str(killed), "--resume"]) == 0
    assert "at step 50 (5 reports kept)" in capsys.readouterr().out
    assert main(common + ["--steps", "100", "--out", str(whole)]) == 0
    steps = [int(row['#"Step"']) for row in read_rows(killed / "state.csv")]
    assert steps == [int(row['#"Step"']) for row in read_rows(whole / "state.csv")] == list(range(10, 101, 10))
    frames = mdtraj.load(str(killed / "trajectory.dcd"), top=str(killed / "start.pdb"))
    assert frames.n_frames == mdtraj.load(str(whole / "trajectory.dcd"), top=str(whole / "start.pdb")).n_frames == 10
    energies = [float(row["Potential Energy (kJ/mole)"]) for row in read_rows(killed / "state.csv")]
    assert energies == pytest.approx([float(row["Potential Energy (kJ/mole)"]) for row in read_rows(whole / "state.csv")], rel=1e-9)


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_continue(trained, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "md"
    command = [sys.executable, str(ROOT / "deploy" / "openmm" / "run_md.py"), str(ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz"),
               str(trained), "--steps", "1000000", "--report", "10", "--platform", "Reference", "--out", str(out)]
    # a shell's background job ignores SIGINT, and Python keeps an ignored SIGINT ignored: restore
    # the default so that the signal below acts as a Ctrl-C wherever the suite runs
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and rows_written(out / "state.csv") < 3:
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 1 and "interrupted at step" in err and "--resume continues from" in err, err[-2000:]
    assert "Traceback" not in err and (out / "checkpoint.chk").exists()


def test_sigkill_then_resume_gives_the_rows_and_frames_of_an_uninterrupted_run(trained, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import mdtraj

    out = tmp_path / "md"
    command = [sys.executable, str(ROOT / "deploy" / "openmm" / "run_md.py"), str(ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz"),
               str(trained), "--report", "10", "--checkpoint-every", "30", "--platform", "Reference", "--out", str(out)]
    run = subprocess.Popen(command + ["--steps", "1000000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and rows_written(out / "state.csv") < 8:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=60)
    killed_at = len(read_rows(out / "state.csv"))
    total = (killed_at + 5) * 10
    done = subprocess.run(command + ["--steps", str(total), "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [int(row['#"Step"']) for row in read_rows(out / "state.csv")]
    assert steps == list(range(10, total + 1, 10))  # strictly increasing, none twice, none missing
    assert mdtraj.load(str(out / "trajectory.dcd"), top=str(out / "start.pdb")).n_frames == len(steps)


def test_an_existing_run_is_never_overwritten(trained, tmp_path):
    main = run_md()
    structure = str(ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz")
    out = tmp_path / "md"
    assert main([structure, str(trained), "--steps", "10", "--platform", "Reference", "--out", str(out)]) == 0
    before = (out / "state.csv").read_text()
    with pytest.raises(SystemExit, match="already holds a run; continue it with --resume"):
        main([structure, str(trained), "--steps", "10", "--platform", "Reference", "--out", str(out)])
    assert (out / "state.csv").read_text() == before


def test_overlapping_atoms_stop_the_run_with_the_step_and_the_atoms(trained, tmp_path):
    from ase.io import read, write

    atoms = read(ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz")
    atoms.positions[1] = atoms.positions[0] + [0.25, 0.0, 0.0]
    write(tmp_path / "overlap.xyz", atoms)
    with pytest.raises(SystemExit, match=r"starting structure cannot be used: atoms 0 and 1 are 0\.2\d* Å apart, closer than min_distance"):
        run_md()([str(tmp_path / "overlap.xyz"), str(trained), "--steps", "10", "--platform", "Reference", "--out", str(tmp_path / "md")])


def test_missing_platform_says_what_is_available(trained, capsys):
    main = run_md()
    structure = ROOT / "so3k" / "data" / "molecules" / "ethanol.xyz"
    with pytest.raises(SystemExit, match="platform 'NoSuchPlatform' is not available here; available: Reference"):
        main([str(structure), str(trained), "--platform", "NoSuchPlatform"])


def test_nve_conserves_energy(trained):
    atoms = load_molecule("ethanol")
    system = system_from_atoms(trained, atoms)
    timestep = 0.25  # fs
    context = openmm.Context(system, openmm.VerletIntegrator(timestep * unit.femtoseconds), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions * 0.1)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    total, kinetic = [], []
    for _ in range(60):
        context.getIntegrator().step(5)
        state = context.getState(getEnergy=True)
        k = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        kinetic.append(k)
        total.append(k + state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    total, kinetic = np.array(total), np.array(kinetic)
    print(f"total energy std {total.std():.2e}, drift {total[-1] - total[0]:.2e}, kinetic std {kinetic.std():.2e} kJ/mol")
    # Velocity Verlet conserves a shadow energy: the total energy fluctuates by O(dt^2) around it
    # and does not drift. Bound: fluctuations far below the kinetic energy's own fluctuations.
    assert total.std() < 0.01 * kinetic.std()
    assert abs(total[-1] - total[0]) < 0.02 * kinetic.std()


def test_mlmm_molecule_in_tip3p_water(trained, tmp_path, capsys):
    out = tmp_path / "mlmm"
    assert script("mlmm_water")([str(trained), "--molecule", "ethanol", "--padding", "0.8", "--steps", "10",
                                 "--report", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ethanol: 9 ML atoms in" in text and "TIP3P waters" in text
    assert len(read_rows(out / "state.csv")) == 2 and (out / "trajectory.dcd").stat().st_size > 0
