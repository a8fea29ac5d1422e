"""OpenMM-ML plugin: `MLPotential('so3krates', modelPath='model.pt')`.

Registered through the `openmmml.potentials` entry point. OpenMM-ML imports every registered
plugin when it is imported, so this module imports nothing heavy until a force is made.

    from openmmml import MLPotential
    potential = MLPotential("so3krates", modelPath="model.pt")
    system = potential.createSystem(topology)                          # everything ML
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms)  # ML/MM
"""


class So3kratesPotentialImplFactory:
    def createImpl(self, name: str, modelPath=None, **args):
        return So3kratesPotentialImpl(name, modelPath)


class So3kratesPotentialImpl:
    def __init__(self, name: str, modelPath):
        if modelPath is None:
            from so3k.errors import ExportError

            raise ExportError("MLPotential('so3krates') needs modelPath='model.pt', a file made by `so3k export --engine openmm`")
        self.name = name
        self.modelPath = str(modelPath)

    def addForces(self, topology, system, atoms, forceGroup: int, **args):
        from so3k.export.openmm import create_force

        periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()
        force = create_force(self.modelPath, topology, atoms=None if atoms is None else list(atoms), periodic=periodic)
        force.setForceGroup(forceGroup)
        system.addForce(force)
