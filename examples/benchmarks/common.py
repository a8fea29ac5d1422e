"""What the engine benchmarks share: the structures, a random model, the eager call and the
OpenMM step, each timed the same way (median after warm-up)."""

import statistics
import time

import torch


def shipped_frame(name, repeat=(1, 1, 1)):
    """The first frame of a shipped data set, repeated; molecules get a non-periodic box."""
    from so3k.data.io import read_frames
    from so3k.datasets import path

    atoms = read_frames(path(name), index=":1").to_atoms()[0]
    if not atoms.pbc.any():
        atoms.center(vacuum=5.0)
    return atoms.repeat(repeat) if any(r > 1 for r in repeat) else atoms


def random_model(preset, atoms, force_scale=1.0):
    """An inference-only model for the elements of `atoms` (the cost does not depend on the weights)."""
    import so3k

    torch.manual_seed(0)
    model = so3k.build_model(preset, elements=sorted(set(atoms.get_chemical_symbols()))).eval()
    model.readout.scale.fill_(force_scale)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def eager_ms(model, atoms, warmup, repeats):
    """Median ms of the Python ForceField call, energy + forces, pair list included (float32)."""
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    force_field = ForceField(model)

    def call():
        graph = build_graph([atoms], model.config.elements, model.cutoff, torch.float32)
        force_field(**graph.inputs())

    return median_ms(call, warmup, repeats)


def median_ms(step, warmup, repeats):
    """Median ms of step() over `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def openmm_step_ms(exported, atoms, platform, warmup, repeats):
    """Mean ms of one 0.5 fs Verlet step of an OpenMM Context holding the exported model."""
    import openmm
    from openmm import unit

    from so3k.export.openmm import system_from_atoms

    integrator = openmm.VerletIntegrator(0.5 * unit.femtoseconds)
    # random weights make no physical MD: the overlap guard (min_distance) would stop a timing run
    system = system_from_atoms(exported, atoms, min_distance=0.0)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    context.setPositions(atoms.positions * 0.1)
    integrator.step(warmup)  # TorchScript optimises the module during its first calls
    start = time.perf_counter()
    integrator.step(repeats)
    return (time.perf_counter() - start) / repeats * 1e3


def report(lines, out, name):
    """Print a markdown table and save it as out/name."""
    table = "\n".join(lines)
    print("\n" + table)
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(table + "\n")
