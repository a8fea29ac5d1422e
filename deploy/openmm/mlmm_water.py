"""ML/MM: a small molecule as the ML region in a box of TIP3P water, via OpenMM-ML's
createMixedSystem.

    python deploy/openmm/mlmm_water.py runs/demo/model-openmm.pt --steps 2000
    python deploy/openmm/mlmm_water.py model.pt --molecule ethanol --padding 1.2 --platform CPU

The water is OpenMM's own TIP3P (amber14/tip3p.xml, rigid, PME electrostatics). The molecule
(a built-in so3k geometry) gets Lennard-Jones parameters by element and no charges for its MM
interactions with the water — a mechanical-embedding sketch, not a production force field;
createMixedSystem removes all MM terms inside the ML region, where the model acts alone.
Writes OUT/state.csv, OUT/trajectory.dcd and OUT/start.pdb.
"""

import argparse
import sys
from pathlib import Path

# Lennard-Jones sigma (nm) and epsilon (kJ/mol) by element for the ML atoms' MM interactions
# (typical GAFF values).
LJ = {"H": (0.26, 0.07), "C": (0.34, 0.36), "N": (0.325, 0.71), "O": (0.30, 0.88), "S": (0.356, 1.05)}


def ligand_template_generator(residue_name: str):
    """Give the ML residue a template with one atom type per atom, LJ by element, zero charge."""

    def generator(forcefield, residue):
        if residue.name != residue_name:
            return False
        from openmm.app import ForceField

        template = ForceField._TemplateData(residue.name)
        for atom in residue.atoms():
            symbol = atom.element.symbol
            type_name = f"so3k-ml-{symbol}"
            if type_name not in forcefield._atomTypes:
                forcefield.registerAtomType({"name": type_name, "class": type_name, "mass": atom.element.mass, "element": atom.element})
                sigma, epsilon = LJ.get(symbol, (0.32, 0.5))
                nonbonded = [g for g in forcefield.getGenerators() if type(g).__name__ == "NonbondedGenerator"][0]
                nonbonded.registerAtom({"type": type_name, "charge": "0.0", "sigma": str(sigma), "epsilon": str(epsilon)})
            template.atoms.append(ForceField._TemplateAtomData(atom.name, type_name, atom.element))
        forcefield.registerResidueTemplate(template)
        return True

    return generator


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="exported model (so3k export --engine openmm) that knows the molecule's elements")
    parser.add_argument("--molecule", default="aspirin", help="a built-in molecule (aspirin, ethanol, malonaldehyde, uracil)")
    parser.add_argument("--padding", type=float, default=1.2, help="box edge = molecule size + padding (nm)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--timestep", type=float, default=1.0, help="fs (rigid water)")
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--report", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("runs/mlmm"))
    args = parser.parse_args(argv)

    import openmm
    import torch  # noqa: F401  (libtorch before the OpenMM-Torch plugin)
    from openmm import app, unit
    from openmmml import MLPotential
    from so3k.export.openmm import topology_from_symbols

    from so3k.data.molecules import load_molecule
    from so3k.units import ANGSTROM_TO_NM

    molecule = load_molecule(args.molecule)
    topology = topology_from_symbols(molecule.get_chemical_symbols(), "MLR")
    forcefield = app.ForceField("amber14/tip3p.xml")
    forcefield.registerTemplateGenerator(ligand_template_generator("MLR"))
    modeller = app.Modeller(topology, molecule.positions * ANGSTROM_TO_NM * unit.nanometer)
    modeller.addSolvent(forcefield, model="tip3p", padding=args.padding * unit.nanometer)
    box = min(v[i] for i, v in enumerate(modeller.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)))
    cutoff = min(0.9, 0.49 * box)  # PME needs the cutoff below half the box
    mm_system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff * unit.nanometer,
                                        constraints=app.HBonds, rigidWater=True)
    ml_atoms = [atom.index for atom in modeller.topology.atoms() if atom.residue.name == "MLR"]
    system = MLPotential("so3krates", modelPath=str(args.model)).createMixedSystem(modeller.topology, mm_system, ml_atoms)
    integrator = openmm.LangevinMiddleIntegrator(args.temperature * unit.kelvin, 1 / unit.picosecond, args.timestep * unit.femtoseconds)
    simulation = app.Simulation(modeller.topology, system, integrator, openmm.Platform.getPlatformByName(args.platform))
    simulation.context.setPositions(modeller.positions)
    simulation.minimizeEnergy(maxIterations=200)
    simulation.context.setVelocitiesToTemperature(args.temperature * unit.kelvin, 0)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "start.pdb").open("w") as handle:
        app.PDBFile.writeFile(modeller.topology, simulation.context.getState(getPositions=True).getPositions(), handle)
    fields = dict(step=True, potentialEnergy=True, temperature=True, speed=True)
    simulation.reporters.append(app.StateDataReporter(str(args.out / "state.csv"), args.report, **fields))
    simulation.reporters.append(app.StateDataReporter(sys.stdout, args.report, **fields))
    simulation.reporters.append(app.DCDReporter(str(args.out / "trajectory.dcd"), args.report))
    n_water = sum(1 for r in modeller.topology.residues() if r.name == "HOH")
    print(f"{args.molecule}: {len(ml_atoms)} ML atoms in {n_water} TIP3P waters ({modeller.topology.getNumAtoms()} atoms)")
    simulation.step(args.steps)
    print(f"done: {args.out}/ (state.csv, trajectory.dcd, start.pdb)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
