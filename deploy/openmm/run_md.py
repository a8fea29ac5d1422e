"""Molecular dynamics with an exported so3k model in OpenMM.

    python deploy/openmm/run_md.py structure.pdb model.pt --steps 10000 --temperature 300
    python deploy/openmm/run_md.py aspirin.xyz model.pt --ensemble nve --timestep 0.5 --platform CPU
    python deploy/openmm/run_md.py ... --out runs/md --resume        # continue an interrupted run

Input: a PDB file, or any file ASE reads (xyz, extxyz, cif, ...; periodic if it has a cell), and
a model made by `so3k export --engine openmm`. Every atom is an ML atom. Writes to --out:
start.pdb (topology and first frame), state.csv (energies, temperature, speed),
trajectory.dcd (or .xtc), checkpoint.chk for --resume, and energy.png (the energy trace).
deploy/openmm/analyse.py plots RMSD and a dihedral from the trajectory with mdtraj.
"""

import argparse
import struct
import sys
import time
from pathlib import Path

import numpy as np


def load_structure(path: Path):
    """(topology, positions in nm, box vectors in nm or None)."""
    from openmm import app, unit

    if path.suffix.lower() == ".pdb":
        pdb = app.PDBFile(str(path))
        box = pdb.topology.getPeriodicBoxVectors()
        return pdb.topology, pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer), box
    from ase.io import read
    from so3k.export.openmm import openmm_box, topology_from_symbols

    from so3k.units import ANGSTROM_TO_NM

    atoms = read(path)
    topology = topology_from_symbols(atoms.get_chemical_symbols())
    box = None
    if atoms.pbc.all():
        from openmm import Vec3

        vectors, rotation = openmm_box(atoms.cell.array)  # OpenMM's reduced triclinic form
        atoms.positions = atoms.positions @ rotation.T
        box = [Vec3(*row) for row in vectors]
        topology.setPeriodicBoxVectors(box)
    elif atoms.pbc.any():
        sys.exit("run_md.py: partially periodic cells are not supported by OpenMM; use a fully periodic box or none")
    return topology, atoms.positions * ANGSTROM_TO_NM, box


# The fixed-size pair search compares all pairs (N^2 work and memory on the device): beyond this
# many atoms the ordinary neighbour list is cheaper than what CUDA graphs save.
GRAPH_MAX_ATOMS = 5000


def model_error(error: Exception) -> str:
    """The last line of an error raised inside the model (TorchScript puts its traceback first)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else repr(error)).replace("builtins.ValueError: ", "")


def trim_state_csv(path: Path, step: int) -> int:
    """Drop the rows of a state CSV after `step`; returns the rows kept."""
    if not path.exists():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    rows = [line for line in lines if not line.startswith("#") and line.strip() and int(line.split(",")[0]) <= step]
    path.write_text("".join(header + rows))
    return len(rows)


def trim_trajectory(path: Path, frames: int, topology: Path) -> None:
    """Keep the first `frames` frames of a DCD (truncated in place, header patched as OpenMM
    writes it) or XTC (rewritten with mdtraj) trajectory."""
    if path.suffix == ".xtc":
        import mdtraj

        traj = mdtraj.load(str(path), top=str(topology))
        if traj.n_frames > frames:
            traj[:frames].save_xtc(str(path))
        return
    with path.open("r+b") as f:
        head = f.read(276)
        count, first, interval = struct.unpack("<3i", head[8:20])
        has_box = struct.unpack("<i", head[48:52])[0]
        comments = struct.unpack("<i", head[92:96])[0]
        start = 104 + comments + 8  # OpenMM's DCD header: the title block, then the atom count
        atoms = struct.unpack("<i", head[start - 8:start - 4])[0]
        size = (56 if has_box else 0) + 3 * (8 + 4 * atoms)
        if count <= frames:
            return
        f.truncate(start + frames * size)
        f.seek(8)
        f.write(struct.pack("<i", frames))
        f.seek(20)
        f.write(struct.pack("<i", first + (frames - 1) * interval))


def platform_or_exit(name: str):
    import openmm

    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name not in available:
        failures = "\n  ".join(openmm.Platform.getPluginLoadFailures()) or "(none reported)"
        sys.exit(
            f"run_md.py: the OpenMM platform {name!r} is not available here; available: {', '.join(available)}.\n"
            f"Plugins that failed to load:\n  {failures}"
        )
    return openmm.Platform.getPlatformByName(name)


def plot_energy(csv_path: Path, png: Path) -> None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    key = {k.strip('#"'): k for k in rows[0]}
    t = np.array([float(r[key["Time (ps)"]]) for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in ("Potential Energy (kJ/mole)", "Kinetic Energy (kJ/mole)", "Total Energy (kJ/mole)"):
        values = np.array([float(r[key[name]]) for r in rows])
        ax.plot(t, values - values[0], label=name.split(" (")[0] + " − initial")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("energy (kJ/mol)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("structure", type=Path, help="PDB, or any ASE-readable structure (Å)")
    parser.add_argument("model", type=Path, help="exported model (so3k export --engine openmm), or a compiled package "
                        "(.pt2, so3k export --format aoti), which runs through openmm.PythonForce")
    parser.add_argument("--ensemble", choices=["nvt", "nve"], default="nvt")
    parser.add_argument("--temperature", type=float, default=300.0, help="K: Langevin bath and initial velocities")
    parser.add_argument("--friction", type=float, default=1.0, help="1/ps (NVT)")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--platform", default="CPU", help="Reference, CPU, CUDA or OpenCL")
    parser.add_argument("--cuda-graphs", choices=["auto", "on", "off"], default="auto",
                        help="fixed-size pair list and CUDA graphs; auto: on for the CUDA platform with up to "
                             f"{GRAPH_MAX_ATOMS} atoms and a box at least twice the cutoff wide (or none)")
    parser.add_argument("--max-neighbours", type=int, default=None,
                        help="neighbour slots per atom with CUDA graphs (default: 1.5x liquid-water density within the cutoff)")
    parser.add_argument("--precision", choices=["single", "mixed", "double"], default=None, help="CUDA/OpenCL precision")
    parser.add_argument("--report", type=int, default=10, help="steps between state/trajectory reports")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoint files")
    parser.add_argument("--trajectory", choices=["dcd", "xtc"], default="dcd")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the thermostat and the starting velocities (default 1; 0 lets OpenMM pick a "
                             "different one every run, so the run cannot be repeated)")
    parser.add_argument("--out", type=Path, default=Path("runs/md"))
    parser.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.chk")
    args = parser.parse_args(argv)

    import openmm
    from openmm import app, unit
    from so3k.export import load_exported
    from so3k.export.openmm import create_force

    from so3k.errors import So3kError
    from so3k.units import ANGSTROM_TO_NM

    if not args.structure.exists():
        sys.exit(f"run_md.py: structure {args.structure} not found")
    topology, positions, box = load_structure(args.structure)
    system = openmm.System()
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    compiled = args.model.suffix == ".pt2"  # a compiled package: PythonForce, on the device it was compiled for
    if compiled and args.cuda_graphs == "on":
        sys.exit("run_md.py: --cuda-graphs on needs a TorchScript export (TorchForce); a .pt2 package runs through PythonForce")
    try:
        if compiled:
            from so3k.export.aoti import read_metadata

            cutoff_nm = read_metadata(args.model)["cutoff"] * ANGSTROM_TO_NM
        else:
            cutoff_nm = load_exported(args.model)[1]["cutoff"] * ANGSTROM_TO_NM
    except So3kError as error:  # a missing file, a checkpoint, a LAMMPS export ...: one line, no traceback
        sys.exit(f"run_md.py: {error}")
    box_width = None if box is None else min(box[k][k] for k in range(3))
    fits = topology.getNumAtoms() <= GRAPH_MAX_ATOMS and (box_width is None or box_width >= 2 * cutoff_nm)
    graphs = not compiled and (args.cuda_graphs == "on" or (args.cuda_graphs == "auto" and args.platform == "CUDA" and fits))
    try:
        if compiled:
            force = create_force(args.model, topology, periodic=box is not None, backend="python")
        else:
            force = create_force(args.model, topology, periodic=box is not None, cuda_graphs=graphs, box_width=box_width,
                                 max_neighbours=args.max_neighbours)
        system.addForce(force)
    except So3kError as error:  # an element the model does not know, a box too small for CUDA graphs ...
        sys.exit(f"run_md.py: {error}")

    dt = args.timestep * unit.femtoseconds
    if args.ensemble == "nvt":
        integrator = openmm.LangevinMiddleIntegrator(args.temperature * unit.kelvin, args.friction / unit.picosecond, dt)
        integrator.setRandomNumberSeed(args.seed)
    else:
        integrator = openmm.VerletIntegrator(dt)
    platform = platform_or_exit(args.platform)
    properties = {"Precision": args.precision} if args.precision and args.platform in ("CUDA", "OpenCL") else {}
    simulation = app.Simulation(topology, system, integrator, platform, properties)

    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / "checkpoint.chk"
    state_csv = args.out / "state.csv"
    trajectory = args.out / f"trajectory.{args.trajectory}"
    append = False
    if args.resume:
        if not checkpoint.exists():
            sys.exit(f"run_md.py: --resume but {checkpoint} does not exist")
        simulation.loadCheckpoint(str(checkpoint))
        append = True
        # a run killed after its last checkpoint wrote rows and frames past it: drop them
        kept = trim_state_csv(state_csv, simulation.currentStep)
        if trajectory.exists():
            trim_trajectory(trajectory, kept, args.out / "start.pdb")
        print(f"resumed from {checkpoint} at step {simulation.currentStep} ({kept} reports kept)")
    else:
        if any((args.out / name).exists() for name in ("checkpoint.chk", "state.csv")):
            sys.exit(f"run_md.py: {args.out} already holds a run; continue it with --resume, or choose another --out")
        simulation.context.setPositions(positions)
        try:  # the first force evaluation: a structure the model refuses stops here, not in a traceback
            simulation.context.setVelocitiesToTemperature(args.temperature * unit.kelvin, args.seed)
        except openmm.OpenMMException as error:
            sys.exit(f"run_md.py: the starting structure cannot be used: {model_error(error)}")
        with (args.out / "start.pdb").open("w") as handle:  # the topology for trajectory analysis (mdtraj)
            app.PDBFile.writeFile(topology, positions * unit.nanometer, handle)
    remaining = args.steps - simulation.currentStep
    if remaining <= 0:
        print(f"nothing to do: the run is at step {simulation.currentStep} of {args.steps}")
        return 0

    reporter_cls = app.DCDReporter if args.trajectory == "dcd" else app.XTCReporter
    simulation.reporters.append(reporter_cls(str(trajectory), args.report, append=append and trajectory.exists()))
    fields = dict(step=True, time=True, potentialEnergy=True, kineticEnergy=True, totalEnergy=True, temperature=True, speed=True)
    simulation.reporters.append(app.StateDataReporter(str(state_csv), args.report, append=append, **fields))
    simulation.reporters.append(
        app.StateDataReporter(sys.stdout, max(args.report, args.steps // 20), progress=True, remainingTime=True,
                              totalSteps=args.steps, **fields)
    )
    simulation.reporters.append(app.CheckpointReporter(str(checkpoint), args.checkpoint_every))
    start = time.perf_counter()
    try:
        simulation.step(remaining)
    except KeyboardInterrupt:
        simulation.saveCheckpoint(str(checkpoint))
        sys.exit(f"run_md.py: interrupted at step {simulation.currentStep}; --resume continues from {checkpoint}")
    except (openmm.OpenMMException, ValueError) as error:  # the model's refusal, OpenMM's NaN check, or its reporters'
        reason = model_error(error)
        hint = ""
        if graphs and "NaN" in reason:
            hint = (" With CUDA graphs, NaN also means that two atoms came closer than the model's min_distance, or that "
                    "an atom had more neighbours than the fixed pair list has slots: rerun with a larger --max-neighbours "
                    "(or --cuda-graphs off) to see which.")
        sys.exit(f"run_md.py: the run stopped at step {simulation.currentStep}: {reason}.{hint} The last checkpoint is "
                 f"{checkpoint}; --resume continues from it")
    wall = time.perf_counter() - start
    simulation.saveCheckpoint(str(checkpoint))
    ns_per_day = remaining * args.timestep * 1e-6 / (wall / 86400)
    plot_energy(state_csv, args.out / "energy.png")
    print(f"{remaining} steps in {wall:.1f} s: {ns_per_day:.3f} ns/day on {args.platform} "
          f"(CUDA graphs {'on' if graphs else 'off'}); "
          f"outputs in {args.out}/ (state.csv, {trajectory.name}, checkpoint.chk, energy.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
