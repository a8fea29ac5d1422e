"""Every GPU check in one command: correctness, OpenMM speed with and without CUDA graphs, the
eager call, a training step, memory per atom, the largest box one call fits, and NVE drift of a
trained model. Writes results-gpu.md, results-gpu.json and results-gpu.png to --out.

    python examples/benchmarks/gpu.py --out runs/gpu           # on a GPU (about 6 minutes on one H200)
    python examples/benchmarks/gpu.py --out runs/gpu --cpu     # the same checks, small, on the CPU (tested in CI)

Each section runs on its own: an error is written into the report and the next section goes on,
so that one scarce GPU run brings back everything that works. Models have random weights unless
said otherwise (the cost does not depend on the weights); the NVE run trains a small model first.
"""

import argparse
import datetime
import json
import math
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_ms, shipped_frame  # noqa: E402

ELEMENTS = ["H", "C", "O"]
GRAPH_MAX_ATOMS = 5000  # as deploy/openmm/run_md.py: beyond it the N^2 pair search costs more than graphs save


def sizes(cpu):
    """(name, data set, repeat) of the systems timed in OpenMM."""
    if cpu:
        return [("aspirin", "aspirin", (1, 1, 1)), ("water-96", "water", (1, 1, 1))]
    return [("aspirin", "aspirin", (1, 1, 1)), ("water-1536", "water", (4, 2, 2)), ("water-12000", "water", (5, 5, 5)),
            ("water-48000", "water", (10, 5, 10))]


def random_model(dtype=torch.float32, device="cpu"):
    import so3k

    torch.manual_seed(0)
    model = so3k.build_model("euclidean2024", elements=ELEMENTS)
    model.readout.scale.fill_(0.2)  # gentle random forces: MD stays sane for the timing runs
    return model.to(device=device, dtype=dtype).eval()


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# sections


def environment(args, device):
    from so3k.doctor import checks

    info = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine(),
    }
    try:
        info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                        capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["driver"] = "n/a"
    try:
        import openmm

        info["openmm"] = openmm.version.version
        info["openmm_platforms"] = [openmm.Platform.getPlatform(k).getName() for k in range(openmm.Platform.getNumPlatforms())]
    except ImportError:
        info["openmm"] = "not installed"
    info["doctor"] = [" ".join(check) for check in checks()]
    return info


def correctness(args, device):
    """Eager energies and forces on the device (float32, float64) against CPU float64."""
    from so3k import keys
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    rows = []
    reference = random_model(torch.float64)
    for name, data, repeat in (("aspirin", "aspirin", (1, 1, 1)), ("water-768", "water", (2, 2, 2))):
        atoms = shipped_frame(data, repeat)
        g = build_graph([atoms], ELEMENTS, reference.cutoff, torch.float64)
        ref = ForceField(reference)(**g.inputs())
        e0, f0 = float(ref[keys.ENERGY][0]), ref[keys.FORCES]
        for dtype in (torch.float64, torch.float32):
            model = random_model(dtype, device)
            g = build_graph([atoms], ELEMENTS, model.cutoff, dtype, device)
            out = ForceField(model)(**g.inputs())
            f = out[keys.FORCES].double().cpu()
            rows.append({"system": name, "dtype": str(dtype).replace("torch.", ""), "device": device,
                         "energy_rel": abs(float(out[keys.ENERGY][0]) - e0) / abs(e0),
                         "forces_rel": float((f - f0).abs().max() / f0.abs().max())})
    return rows


def openmm_context(path, atoms, platform_name, cuda_graphs, precision=None, min_distance=0.0):
    """A Context for the exported model. min_distance 0 by default: random weights make no
    physical MD, and the overlap guard would stop a timing run."""
    import openmm
    from openmm import unit
    from so3k.export.openmm import system_from_atoms

    from so3k.units import ANGSTROM_TO_NM

    box_width = float(np.diag(atoms.cell.array).min()) * ANGSTROM_TO_NM if atoms.pbc.all() else None
    system = system_from_atoms(path, atoms, cuda_graphs=cuda_graphs, box_width=box_width, min_distance=min_distance)
    properties = {"Precision": precision} if precision and platform_name in ("CUDA", "OpenCL") else {}
    integrator = openmm.VerletIntegrator(0.5 * unit.femtoseconds)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform_name), properties)
    context.setPositions(atoms.positions * ANGSTROM_TO_NM)
    return context, integrator


def openmm_state(context):
    from openmm import unit

    state = context.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def openmm_agreement(args, device, folder):
    """The engine platform (CUDA, or CPU in CPU mode), with and without CUDA graphs, against Reference."""
    from so3k.export import export_model

    platform_name = "CUDA" if device == "cuda" else "CPU"
    model = random_model(torch.float64)
    rows = []
    for dtype, precision in (("float64", "double"), ("float32", "mixed")):
        path = export_model(model, folder / f"random-{dtype}.pt", dtype=dtype)
        for name, data, repeat in (("aspirin", "aspirin", (1, 1, 1)), ("water-768", "water", (2, 2, 2))):
            atoms = shipped_frame(data, repeat)
            e0, f0 = openmm_state(openmm_context(folder / "random-float64.pt", atoms, "Reference", False)[0])
            for graphs in (False, True):
                context, integrator = openmm_context(path, atoms, platform_name, graphs, precision)
                if device == "cuda":  # past the CUDA-graph warm-up (10 steps): the replayed graph is checked
                    integrator.step(12)
                    context.setPositions(atoms.positions * 0.1)
                    context.setVelocities(np.zeros((len(atoms), 3)))
                e, f = openmm_state(context)
                rows.append({"system": name, "platform": platform_name, "dtype": dtype, "cuda_graphs": graphs,
                             "energy_rel": abs(e - e0) / abs(e0), "forces_rel": float(np.abs(f - f0).max() / np.abs(f0).max())})
    return rows


def openmm_speed(args, device, folder):
    """ms/step and ns/day (0.5 fs Verlet) of the float32 model in OpenMM, with and without CUDA graphs."""
    from so3k.export import export_model

    platform_name = "CUDA" if device == "cuda" else "CPU"
    model = random_model()
    path = export_model(model, folder / "random-float32-speed.pt", dtype="float32")
    rows = []
    for name, data, repeat in sizes(args.cpu):
        atoms = shipped_frame(data, repeat)
        big = len(atoms) > 5000
        warmup, steps = (5, 10) if args.cpu else (20, 20) if big else (200, 1000)
        too_thin = atoms.pbc.all() and np.diag(atoms.cell.array).min() < 2 * model.cutoff  # the minimum image
        for graphs in (False, True):
            if graphs and (len(atoms) > GRAPH_MAX_ATOMS or too_thin):
                continue
            try:
                context, integrator = openmm_context(path, atoms, platform_name, graphs, "mixed")
                integrator.step(warmup)  # TorchScript's first calls and the CUDA-graph capture
                context.getState(getEnergy=True)
                start = time.perf_counter()
                integrator.step(steps)
                context.getState(getEnergy=True)  # waits for the GPU
                ms = (time.perf_counter() - start) / steps * 1e3
                rows.append({"system": name, "atoms": len(atoms), "cuda_graphs": graphs, "ms_per_step": ms,
                             "ns_per_day": 0.5e-6 * 86400e3 / ms})
            except Exception as error:  # one size failing (memory) must not lose the others
                rows.append({"system": name, "atoms": len(atoms), "cuda_graphs": graphs, "error": f"{type(error).__name__}: {str(error)[:300]}"})
            print(f"  openmm {name} graphs={graphs}: {rows[-1]}", flush=True)
    return rows


def eager_and_memory(args, device):
    """The eager ForceField call (float32, pair list included): ms and peak memory per atom."""
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    model = random_model(torch.float32, device)
    force_field = ForceField(model)
    rows = []
    for name, data, repeat in sizes(args.cpu):
        atoms = shipped_frame(data, repeat)

        def call():
            g = build_graph([atoms], ELEMENTS, model.cutoff, torch.float32, device)
            force_field(**g.inputs())
            sync(device)

        try:
            if device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            big = len(atoms) > 5000
            ms = median_ms(call, 1 if big else 5, 3 if big else 20)
            row = {"system": name, "atoms": len(atoms), "eager_ms": ms}
            if device == "cuda":
                row["peak_MiB"] = torch.cuda.max_memory_allocated() / 2**20
                row["kiB_per_atom"] = torch.cuda.max_memory_allocated() / 2**10 / len(atoms)
            rows.append(row)
        except Exception as error:
            rows.append({"system": name, "atoms": len(atoms), "error": f"{type(error).__name__}: {str(error)[:300]}"})
        print(f"  eager {rows[-1]}", flush=True)
    return rows


def under_aten(event):
    """Whether a profiler event runs inside another aten operator (backward ops sit under autograd nodes)."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


def profile(args, device):
    """Where one energy + forces call's time goes (pair list built once, outside): wall time,
    operators and kernels launched per call, and the time the GPU is busy in kernels. Wall time far
    above kernel time means the call is bound by launches (what CUDA graphs and fused kernels lift)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from so3k.forces import ForceField
    from so3k.graph import build_graph

    model = random_model(torch.float32, device)
    force_field = ForceField(model)
    rows = []
    for name, data, repeat in sizes(args.cpu)[:2]:
        atoms = shipped_frame(data, repeat)
        inputs = build_graph([atoms], ELEMENTS, model.cutoff, torch.float32, device).inputs()

        def call():
            force_field(**inputs)
            sync(device)

        ms = median_ms(call, 5, 10 if args.cpu else 50)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        calls = 3
        with torch_profile(activities=activities) as prof:
            for _ in range(calls):
                call()
        events = prof.events()
        ops = [e for e in events if e.device_type == DeviceType.CPU and e.name.startswith("aten::") and not under_aten(e)]
        kernels = [e for e in events if e.device_type == DeviceType.CUDA]
        row = {"system": name, "atoms": len(atoms), "pairs": int(inputs["idx_i"].numel()), "wall_ms": ms,
               "aten_ops_per_call": len(ops) / calls}
        if device == "cuda":
            row["kernels_per_call"] = len(kernels) / calls
            row["kernel_ms_per_call"] = sum(e.time_range.elapsed_us() for e in kernels) / calls / 1e3
            row["gpu_busy"] = row["kernel_ms_per_call"] / ms
        table_text = prof.key_averages().table(sort_by="self_cuda_time_total" if device == "cuda" else "self_cpu_time_total", row_limit=12)
        row["top_ops"] = table_text[-6000:]
        rows.append(row)
        print(f"  profile {name}: { {k: v for k, v in row.items() if k != 'top_ops'} }", flush=True)
    return rows


def kernels_per_call(call, calls=3):
    """(CUDA kernels launched, ms of kernel time) per call() under the profiler."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    call()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            call()
    kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    return len(kernels) / calls, sum(e.time_range.elapsed_us() for e in kernels) / calls / 1e3


def graphed_ms(call, device):
    """ms per replay of call() captured in a CUDA graph (fixed inputs), or None off the GPU."""
    if device != "cuda":
        return None
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
        for _ in range(3):
            call()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call()
    return median_ms(lambda: (graph.replay(), sync(device)), 10, 100)


def compiled_package(args, device, folder):
    """The compiled package (so3k export --format aoti, compiled here for this device) against the
    eager call, float32, pair list built once: compile time, ms per call, with and without a CUDA
    graph around the call, and the force difference."""
    from so3k.export import export_model
    from so3k.export.aoti import CompiledForceField

    from so3k import keys
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    start = time.perf_counter()
    path = export_model(random_model(torch.float32), folder / "random-float32.pt2", dtype="float32", format="aoti", device=device)
    compile_s = time.perf_counter() - start
    package = CompiledForceField(path, device)
    force_field = ForceField(random_model(torch.float32, device))
    rows = []
    for name, data, repeat in sizes(args.cpu)[:2 if args.cpu else 3]:
        atoms = shipped_frame(data, repeat)
        inputs = build_graph([atoms], ELEMENTS, force_field.model.cutoff, torch.float32, device).inputs()
        row = {"system": name, "atoms": len(atoms), "compile_s": compile_s}
        try:
            big = len(atoms) > 5000
            warm, reps = (2, 5) if big else (5, 10 if args.cpu else 50)
            row["eager_ms"] = median_ms(lambda: (force_field(**inputs), sync(device)), warm, reps)
            row["package_ms"] = median_ms(lambda: (package(**inputs), sync(device)), warm, reps)
            row["speedup"] = row["eager_ms"] / row["package_ms"]
            expected, got = force_field(**inputs)[keys.FORCES], package(**inputs)[keys.FORCES]
            row["forces_rel"] = float((got - expected).abs().max() / expected.abs().max())
            if device == "cuda":
                row["package_kernels"], row["package_kernel_ms"] = kernels_per_call(lambda: (package(**inputs), sync(device)))
            if not big:
                row["eager_graph_ms"] = graphed_ms(lambda: force_field(**inputs), device)
                row["package_graph_ms"] = graphed_ms(lambda: package.run(
                    inputs["positions"], inputs["species"], inputs["idx_i"], inputs["idx_j"], inputs["offsets"],
                    inputs["cell"][0], torch.tensor(len(atoms), device=device)), device)
        except Exception as error:
            row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
        rows.append(row)
        print(f"  package {row}", flush=True)
    return rows


def compiled(args, device, deadline):
    """torch.compile of the eager call (inductor; on a GPU also with CUDA graphs): compile time and
    ms per call against eager, float32, pair list built once. Skipped when the budget is spent."""
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    rows = []
    model = random_model(torch.float32, device)
    for p in model.parameters():
        p.requires_grad_(False)
    modes = ["default"] + (["reduce-overhead"] if device == "cuda" else [])
    for name, data, repeat in sizes(args.cpu)[:1 if args.cpu else 2]:  # compiling costs minutes on 2 cores
        atoms = shipped_frame(data, repeat)
        inputs = build_graph([atoms], ELEMENTS, model.cutoff, torch.float32, device).inputs()
        eager = ForceField(model)

        def run(fn):
            def call():
                fn(**inputs)
                sync(device)
            return call

        base = median_ms(run(eager), 5, 10 if args.cpu else 50)
        for mode in modes:
            if time.monotonic() > deadline - 120:
                rows.append({"system": name, "mode": mode, "error": "skipped: budget spent"})
                continue
            try:
                torch._dynamo.reset()
                fn = torch.compile(ForceField(model), mode=mode, dynamic=False)
                t0 = time.perf_counter()
                run(fn)()
                compile_s = time.perf_counter() - t0
                ms = median_ms(run(fn), 5, 10 if args.cpu else 50)
                rows.append({"system": name, "mode": mode, "compile_s": compile_s, "eager_ms": base, "compiled_ms": ms,
                             "speedup": base / ms})
            except Exception as error:
                rows.append({"system": name, "mode": mode, "error": f"{type(error).__name__}: {str(error)[:300]}"})
            print(f"  compiled {rows[-1]}", flush=True)
    return rows


def largest_box(args, device, deadline):
    """Water boxes of doubling size until one energy + forces call no longer fits (GPU only)."""
    if device != "cuda":
        return {"note": "GPU only"}
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    model = random_model(torch.float32, device)
    force_field = ForceField(model)
    fitted, failed = 0, None
    repeat = [10, 5, 10]
    while time.monotonic() < deadline:
        atoms = shipped_frame("water", tuple(repeat))
        try:
            torch.cuda.empty_cache()
            g = build_graph([atoms], ELEMENTS, model.cutoff, torch.float32, device)
            force_field(**g.inputs())
            sync(device)
            fitted = len(atoms)
            del g
        except torch.OutOfMemoryError:
            failed = len(atoms)
            break
        repeat[repeat.index(min(repeat))] *= 2
        print(f"  largest box: {fitted} atoms fit", flush=True)
    torch.cuda.empty_cache()
    return {"largest_atoms": fitted, "first_that_failed": failed, "gpu_GiB": torch.cuda.get_device_properties(0).total_memory / 2**30}


def training_step(args, device):
    """Structures per second of a training step (energy + force loss, backward, Adam), float32."""
    from so3k import keys
    from so3k.data.io import read_frames
    from so3k.datasets import path
    from so3k.forces import ForceField
    from so3k.graph import build_graph

    frames = read_frames(path("aspirin"), index=":32").to_atoms()
    torch.manual_seed(0)
    import so3k

    model = so3k.build_model("euclidean2024", elements=ELEMENTS).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    # training.compile beside the eager step on the GPU, where the step is launch-bound (on 2 CPU
    # cores it gained only 1.1-1.2x, and its compile would double the --cpu test's time)
    variants = {"eager": ForceField(model)}
    if torch.device(device).type == "cuda":
        from so3k.train.compiled import CompiledForces

        variants["compiled"] = CompiledForces(model)
    rows = []
    for batch in (8, 32):
        g = build_graph(frames[:batch], ELEMENTS, model.cutoff, torch.float32, device)
        ref_f = torch.zeros_like(g.positions)
        row = {"batch": batch}
        for name, force_field in variants.items():
            def step():
                out = force_field(**g.inputs())
                loss = (out[keys.ENERGY] ** 2).mean() * 0.01 + ((out[keys.FORCES] - ref_f) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                sync(device)

            start = time.perf_counter()
            step()  # the compiled variant traces and compiles here (once for both batch sizes)
            first = time.perf_counter() - start
            ms = median_ms(step, 3, 5 if args.cpu else 20)
            if name == "eager":
                row.update(ms_per_step=ms, structures_per_s=batch / ms * 1e3)
            else:
                row.update(compiled_ms_per_step=ms, compiled_first_step_s=first)
        rows.append(row)
    return rows


def nve_drift(args, device, folder):
    """Train a small model briefly, then NVE of aspirin in OpenMM (float32 model; CUDA graphs on a GPU)."""
    from openmm import unit
    from so3k.export import export_model

    from so3k.train import load_config, train

    minutes = 0.15 if args.cpu else 1.5
    config = load_config(None, [
        "model.preset=euclidean2024", "model.layers=2", "model.features=64", "data.path=aspirin", "data.n_train=450",
        "data.n_valid=50", "training.batch_size=5", "training.lr=2e-3", f"training.max_minutes={minutes}",
        f"training.device={device}",
    ])
    best = train(config, folder / "nve-train", progress=False)
    path = export_model(best, folder / "nve-float32.pt", dtype="float32")
    atoms = shipped_frame("aspirin")
    platform_name = "CUDA" if device == "cuda" else "CPU"
    context, integrator = openmm_context(path, atoms, platform_name, device == "cuda", "mixed", min_distance=0.5)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    steps = 400 if args.cpu else 10000
    chunk = steps // 40
    times, totals = [], []
    for k in range(40):
        integrator.step(chunk)
        state = context.getState(getEnergy=True)
        e = (state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole)
        times.append((k + 1) * chunk * 0.5e-3)  # ps
        totals.append(e)
    slope = float(np.polyfit(times, totals, 1)[0])  # kJ/mol/ps
    return {"steps": steps, "ps": steps * 0.5e-3, "atoms": len(atoms), "drift_kJ_mol_per_ns": slope * 1e3,
            "drift_meV_per_atom_per_ps": slope / 96.485 * 1e3 / len(atoms),
            "fluctuation_kJ_mol": float(np.std(totals)), "cuda_graphs": device == "cuda"}


# ---------------------------------------------------------------------------------------------
# report


def table(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, row.get("error", "") if c == columns[-1] else "")
            v = " ".join(v.split()) if isinstance(v, str) else v  # one table line
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(results, out):
    env = results.get("environment", {})
    md = [f"# so3k on {env.get('device', '?')}", "",
          f"{env.get('date')}; torch {env.get('torch')} (CUDA {env.get('cuda')}), driver {env.get('driver')}, "
          f"OpenMM {env.get('openmm')}, Python {env.get('python')}. Command: `python examples/benchmarks/gpu.py`"
          + (" --cpu" if results.get("cpu") else "") + ".", ""]
    if results.get("rerun"):
        md += [f"Sections {', '.join(results['rerun'])} come from a second run on the same machine "
               "(`--sections ... --merge` of the first run's results-gpu.json).", ""]
    sections = [
        ("correctness", "Eager model on the device against CPU float64 (max force error relative to the largest force)",
         ["system", "dtype", "device", "energy_rel", "forces_rel"]),
        ("openmm_agreement", "OpenMM against the Reference platform (float64 model)",
         ["system", "platform", "dtype", "cuda_graphs", "energy_rel", "forces_rel"]),
        ("openmm_speed", "OpenMM step, 0.5 fs Verlet, float32 model", ["system", "atoms", "cuda_graphs", "ms_per_step", "ns_per_day"]),
        ("eager", "Eager energy + forces call (pair list included), float32", ["system", "atoms", "eager_ms", "peak_MiB", "kiB_per_atom"]),
        ("profile", "Where the call's time goes (pair list built outside; per call)",
         ["system", "atoms", "pairs", "wall_ms", "aten_ops_per_call", "kernels_per_call", "kernel_ms_per_call", "gpu_busy"]),
        ("training", "Training step (energy + forces loss, backward, Adam), float32", ["batch", "ms_per_step", "structures_per_s", "compiled_ms_per_step", "compiled_first_step_s"]),
        ("package", "Compiled package (so3k export --format aoti) against eager, float32, pair list built outside",
         ["system", "atoms", "compile_s", "eager_ms", "package_ms", "speedup", "eager_graph_ms", "package_graph_ms",
          "package_kernels", "package_kernel_ms", "forces_rel"]),
        ("compiled", "torch.compile of the call against eager (pair list built outside), float32",
         ["system", "mode", "compile_s", "eager_ms", "compiled_ms", "speedup"]),
    ]
    for key, title, columns in sections:
        md += [f"## {title}", ""]
        value = results.get(key)
        md += [table(value, columns) if isinstance(value, list) else f"not run: {value}", ""]
    for key, title in (("largest_box", "Largest water box in one call"), ("nve", "NVE of a briefly trained model (aspirin, OpenMM)")):
        md += [f"## {title}", "", "```", json.dumps(results.get(key), indent=1), "```", ""]
    if isinstance(results.get("profile"), list):
        md += ["## Profile: top operators", ""]
        for row in results["profile"]:
            md += [f"{row['system']}:", "", "```", row.get("top_ops", ""), "```", ""]
    errors = results.get("errors", {})
    if errors:
        md += ["## Errors", ""] + [f"- {k}: `{v.splitlines()[-1] if v else ''}`" for k, v in errors.items()] + [""]
    (out / "results-gpu.md").write_text("\n".join(md))
    (out / "results-gpu.json").write_text(json.dumps(results, indent=1, default=str))
    plot(results, out / "results-gpu.png")


def plot(results, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results.get("openmm_speed", []) if "ms_per_step" in r] if isinstance(results.get("openmm_speed"), list) else []
    fig, ax = plt.subplots(figsize=(7, 4))
    names = sorted({r["system"] for r in rows}, key=lambda n: next(r["atoms"] for r in rows if r["system"] == n))
    for k, graphs in enumerate((False, True)):
        values = [next((r["ms_per_step"] for r in rows if r["system"] == n and r["cuda_graphs"] == graphs), math.nan) for n in names]
        ax.bar(np.arange(len(names)) + 0.4 * k - 0.2, values, width=0.4, label="fixed-size pairs (CUDA graphs on a GPU)" if graphs else "neighbour list")
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_yscale("log")
    ax.set_ylabel("ms per MD step (OpenMM)")
    ax.set_title(f"so3k on {results.get('environment', {}).get('device', '?')}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/gpu"))
    parser.add_argument("--cpu", action="store_true", help="small sizes on the CPU (what CI runs)")
    parser.add_argument("--minutes", type=float, default=7.5, help="budget; the largest-box search stops at it")
    parser.add_argument("--sections", help="comma-separated sections to run (default: all)")
    parser.add_argument("--merge", type=Path, help="an earlier results-gpu.json: its sections are kept unless rerun")
    args = parser.parse_args(argv)
    start = time.monotonic()
    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    args.cpu = args.cpu or device == "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    work.mkdir(exist_ok=True)
    results = {"cpu": args.cpu, "errors": {}}
    if args.merge:
        results = json.loads(args.merge.read_text())
    sections = [
        ("environment", lambda: environment(args, device)),
        ("correctness", lambda: correctness(args, device)),
        ("openmm_agreement", lambda: openmm_agreement(args, device, work)),
        ("openmm_speed", lambda: openmm_speed(args, device, work)),
        ("eager", lambda: eager_and_memory(args, device)),
        ("profile", lambda: profile(args, device)),
        ("training", lambda: training_step(args, device)),
        ("nve", lambda: nve_drift(args, device, work)),
        ("compiled", lambda: compiled(args, device, start + args.minutes * 60)),
        ("largest_box", lambda: largest_box(args, device, start + args.minutes * 60)),
        # last: loading a CUDA package crashed the whole process on the H200 (torch 2.11), and a
        # crash must not cost the sections above (each is written to the report as it ends)
        ("package", lambda: compiled_package(args, device, work)),
    ]
    chosen = args.sections.split(",") if args.sections else [name for name, _ in sections]
    unknown = set(chosen) - {name for name, _ in sections}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {[name for name, _ in sections]}")
    if args.merge:
        results["rerun"] = sorted(set(results.get("rerun", [])) | set(chosen))
    for name, run in sections:
        if name not in chosen:
            continue
        results["errors"].pop(name, None)
        t0 = time.monotonic()
        print(f"[{time.monotonic() - start:6.0f} s] {name}", flush=True)
        try:
            results[name] = run()
        except Exception:
            results[name] = "failed (see Errors)"
            results["errors"][name] = traceback.format_exc()
            print(results["errors"][name], flush=True)
        results.setdefault("seconds", {})[name] = round(time.monotonic() - t0, 1)
        write_report(results, args.out)  # after every section: a killed run still brings back what it did
    print((args.out / "results-gpu.md").read_text())
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
