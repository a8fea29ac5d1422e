"""Stability of trained models in long MD: OpenMM NVT runs, failures, distributions against the reference MD.

    python examples/benchmarks/stability.py --jobs 2                       # 3 seeds: 100 ps aspirin and ethanol at 500 K, 20 ps water at 300 K
    python examples/benchmarks/stability.py --seeds 2 --ps 50 --jobs 2     # a reduced run
    python examples/benchmarks/stability.py --checkpoint aspirin=runs/aspirin/best.ckpt --systems aspirin
    python examples/benchmarks/stability.py --quick --out runs/stability-quick  # tiny models, a few hundred steps (CI)

Models: --checkpoint SYSTEM=PATH (a checkpoint, exported to TorchScript as `so3k export --engine
openmm` does, or an exported file), or else trained here on the shipped set (aspirin and ethanol
with examples/train_euclidean2024.yaml, water with examples/train_water.yaml) for
--train-minutes each and kept under OUT/models/. Each run is the path a user takes: the exported
file in an OpenMM-Torch TorchForce, a LangevinMiddleIntegrator (friction 1/ps) at the reference
MD's time step (0.5 fs for the molecules, 1 fs for water) and at --temperature (molecules) or
--water-temperature, started from a frame of the reference MD (frame seed x 10% of the set) with
velocities drawn for that seed.

Failure (so3k.stability.BondCheck, every reported frame): a bond longer than 1.5 x its equilibrium
length (its mean over the reference MD), two atoms not bonded in the reference closer than their
covalent bond length, a non-finite position or temperature, a temperature runaway (the mean over
the last 5 ps above 1.5 x the bath temperature), or the run stopped by OpenMM or by the model
(NaN, atoms closer than 0.5 Å). A run stops at its first failure; the time to it is reported.

Distributions, over the frames before any failure, against the reference MD of the data set
(so3k/datasets/*.provenance.json): bond lengths by bond type; the kinetic temperature against the
canonical distribution at the bath temperature (the reference frames hold no velocities; their
mean measured temperature is marked); for water the O-O radial distribution function, its first
peak located by a quadratic fit around the maximum (target: within 0.05 Å of the reference).

Runs resume: each writes chunks of frames with an engine checkpoint (OUT/runs/<system>-<model>-s<seed>/),
and a finished run's result.json is reused. --peer-model MODEL:SYSTEM=PATH runs the same MD for a
saved peer model (e.g. a MACE model from peer_train.py) in its own venv through ASE (peer_md.py).
Writes OUT/stability.{md,json,png}; --ship copies them to examples/benchmarks/results-stability.*.
"""

import argparse
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch  # before openmm: libtorch before the OpenMM-Torch plugin

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SYSTEMS = ("aspirin", "ethanol", "water")
CONFIGS = {"aspirin": "train_euclidean2024.yaml", "ethanol": "train_euclidean2024.yaml", "water": "train_water.yaml"}
QUICK_TRAINING = ["data.n_train=20", "data.n_valid=4", "data.n_test=0", "training.max_epochs=3", "model.layers=1",
                  "model.features=32"]
FRICTION = 1.0  # 1/ps
REPORT = 10  # steps between frames (the reference MD kept every 10th step of the molecules)
RUNAWAY = 1.5  # a mean temperature over the last window above this x the bath temperature is a runaway
# 5 ps, not 1: ethanol's 27 degrees of freedom make its 1-ps mean temperature at 500 K swing by
# about 100 K (measured: up to 743 K in a 100 ps run that was otherwise sound), so a 1-ps window
# called healthy runs runaways; a real runaway stays hot, and breaks bonds besides.
RUNAWAY_WINDOW_PS = 5.0
BOND_BINS = np.linspace(0.6, 2.6, 401)  # Å
RDF_BINS = np.linspace(0.0, 8.0, 321)  # Å, 0.025 Å wide
PEAK_TARGET = 0.05  # Å


# ----------------------------------------------------------------------------------- reference MD

@functools.lru_cache(maxsize=None)
def reference(system):
    """(frames as ase.Atoms, provenance) of the shipped data set; shared, not to be changed."""
    from so3k.data.io import read_frames
    from so3k.datasets import path

    provenance = json.loads(path(system).with_name(f"{system}.provenance.json").read_text())
    return read_frames(path(system)).to_atoms(), provenance


@functools.lru_cache(maxsize=None)
def reference_check(system, temperature):
    """A BondCheck with the bonds of the first reference frame, their equilibrium lengths (the mean
    over all reference frames) and the runaway bound for the bath temperature."""
    from so3k.stability import BondCheck, bond_lengths

    frames = reference(system)[0]
    equilibrium = bond_lengths(frames[0], [a.positions for a in frames])[1].mean(axis=0)
    return BondCheck(frames[0], max_temperature=RUNAWAY * temperature, equilibrium=equilibrium)


def start_frame(frames, seed):
    return frames[(seed * len(frames) // 10) % len(frames)].copy()


def bond_types(check):
    """The label of each bond of a BondCheck, carbon first and hydrogen last: C-H, C-O, O-H ..."""
    order = lambda s: (s == "H", s != "C", s)  # noqa: E731
    return ["-".join(sorted((check.symbols[i], check.symbols[j]), key=order)) for i, j in zip(check.i, check.j)]


# ----------------------------------------------------------------------------------- analysis

def runaway_temperatures(temperatures, frames_per_window):
    """What the temperature check sees for each frame: the mean over the trailing window once it
    is a quarter full (None before, unless the temperature is already non-finite)."""
    t = np.asarray(temperatures, dtype=float)
    seen = []
    with np.errstate(invalid="ignore"):  # after a non-finite temperature (itself a failure) the means are NaN
        cumulative = np.concatenate([[0.0], np.cumsum(t)])
        for k in range(len(t)):
            first = max(0, k + 1 - frames_per_window)
            if not np.isfinite(t[k]):
                seen.append(float(t[k]))
            elif k + 1 - first < max(1, frames_per_window // 4):
                seen.append(None)
            else:
                seen.append(float((cumulative[k + 1] - cumulative[first]) / (k + 1 - first)))
    return seen


def scan(check, positions, temperatures, frames_per_window, start=0):
    """The first failing frame at or after `start`: (index, so3k.stability.Failure) or None."""
    seen = runaway_temperatures(temperatures, frames_per_window)
    for k in range(start, len(positions)):
        failure = check.check(k, np.asarray(positions[k], dtype=float), seen[k])
        if failure is not None:
            return k, failure
    return None


def rdf(positions, cell, bins=RDF_BINS):
    """g(r) of one species in a periodic cell over frames (F, N, 3) in Å, all images up to the last
    bin (not only the minimum image), normalised by the ideal gas at the same density: -> 1 at large r."""
    positions = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    frames, n = positions.shape[:2]
    volume = abs(np.linalg.det(cell))
    widths = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)  # plane spacings
    reach = [int(math.ceil(bins[-1] / w)) + 1 for w in widths]
    shifts = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in reach], indexing="ij"), -1).reshape(-1, 3) @ cell
    inverse = np.linalg.inv(cell)
    counts = np.zeros(len(bins) - 1)
    for r in positions:
        r = r - np.floor(r @ inverse) @ cell  # wrapped into the cell
        d = np.linalg.norm(r[None, :, None, :] - r[:, None, None, :] + shifts[None, None], axis=-1).ravel()
        counts += np.histogram(d[d > 1e-6], bins)[0]
    shell = 4.0 / 3.0 * np.pi * (bins[1:] ** 3 - bins[:-1] ** 3)
    return counts / (frames * n * (n / volume) * shell)


def first_peak(g, bins=RDF_BINS, half_width=0.2):
    """Position (Å) of the highest maximum of g(r): a least-squares parabola over the bins within
    half_width of the highest bin."""
    g = np.asarray(g, dtype=float)
    centres = 0.5 * (bins[1:] + bins[:-1])
    top = int(np.argmax(g))
    near = np.abs(centres - centres[top]) <= half_width
    a, b, _ = np.polyfit(centres[near], g[near], 2)
    return float(-b / (2 * a)) if a < 0 else float(centres[top])


def canonical_temperature(t, temperature, dof):
    """Density of the instantaneous kinetic temperature with `dof` degrees of freedom at `temperature`."""
    k = dof / 2.0
    x = np.asarray(t, dtype=float) * k / temperature
    with np.errstate(divide="ignore"):
        log = (k - 1) * np.log(x) - x - math.lgamma(k)
    return np.exp(log) * k / temperature


def histograms(check, types, positions, cell=None, periodic=False):
    """Bond-length histograms by bond type (counts on BOND_BINS, sums for mean and std), and the
    O-O g(r) for a periodic system."""
    out = {}
    if len(positions):
        lengths = np.array([check.distances(np.asarray(p, dtype=float))[check.i, check.j] for p in positions])
        for label in sorted(set(types)):
            values = lengths[:, [t == label for t in types]].ravel()
            out[label] = {"counts": np.histogram(values, BOND_BINS)[0].tolist(), "n": int(values.size),
                          "sum": float(values.sum()), "sum2": float((values**2).sum())}
    result = {"bonds": out}
    if periodic:
        oxygen = [k for k, s in enumerate(check.symbols) if s == "O"]
        result["rdf_frames"] = len(positions)
        result["rdf"] = rdf(np.asarray(positions)[:, oxygen], cell).tolist() if len(positions) else None
    return result


def analyse(system, positions, temperatures, steps, timestep_fs, temperature, stopped=None):
    """Failure, time to it and distributions of one trajectory: positions (F, N, 3) in Å, kinetic
    temperatures (F,) in K, the MD step of each frame; `stopped`: the engine's own stop (a dict with
    kind, detail and step) if it had one after the last frame. The benchmark's runs and the tests
    both go through here."""
    frames = reference(system)[0]
    check = reference_check(system, temperature)
    types = bond_types(check)
    positions = np.asarray(positions, dtype=float).reshape(-1, len(frames[0]), 3)
    temperatures = np.asarray(temperatures, dtype=float)
    steps = np.asarray(steps)
    per_window = max(1, int(round(RUNAWAY_WINDOW_PS * 1000 / (timestep_fs * max(1, _stride(steps))))))
    found = scan(check, positions, temperatures, per_window)
    failure = None
    good = len(positions)
    if found is not None:
        k, f = found
        good = k
        failure = {"kind": f.kind, "detail": f.detail, "step": int(steps[k]), "time_ps": float(steps[k]) * timestep_fs / 1000}
    elif stopped:
        failure = dict(stopped, time_ps=float(stopped["step"]) * timestep_fs / 1000)
    periodic = bool(frames[0].pbc.all())
    t_ok = temperatures[:good]
    return {
        "frames": int(len(positions)), "frames_analysed": int(good), "failure": failure,
        "temperature_mean": float(t_ok.mean()) if good else None, "temperature_std": float(t_ok.std()) if good else None,
        "temperature_counts": np.histogram(t_ok, temperature_bins(temperature))[0].tolist(),
        **histograms(check, types, positions[:good], np.array(frames[0].cell), periodic),
    }


def short(reason):
    """The model's or OpenMM's message, its numbers rounded, without the advice that follows."""
    import re

    reason = reason.split(": overlapping atoms")[0]
    return re.sub(r"\d+\.\d{3,}", lambda m: f"{float(m.group()):.2f}", reason)


def _stride(steps):
    return int(steps[1] - steps[0]) if len(steps) > 1 else REPORT


def temperature_bins(temperature):
    return np.linspace(0.0, 3.0 * temperature, 121)


def reference_summary(system, frames, provenance):
    config = provenance["config"]
    temperature = float(config["temperature"])
    check = reference_check(system, temperature)
    positions = np.array([a.positions for a in frames])
    out = histograms(check, bond_types(check), positions, np.array(frames[0].cell), bool(frames[0].pbc.all()))
    out.update(temperature=temperature, timestep_fs=float(config["timestep"]), frames=len(frames), atoms=len(frames[0]),
               frame_interval_fs=float(config["timestep"]) * int(config["stride"]), method=provenance.get("method"),
               temperature_measured=(provenance.get("temperature_K_measured") or {}).get("all"))
    found = scan(check, positions, np.full(len(frames), temperature), 1)
    if found is not None:  # the detector must pass the reference MD it is calibrated on
        raise RuntimeError(f"the reference MD of {system} fails its own check: {found[1]}")
    return out


# ----------------------------------------------------------------------------------- runs

def load_chunks(run_dir):
    return [dict(np.load(p, allow_pickle=False)) for p in sorted(run_dir.glob("chunk-*.npz"))]


def save_chunk(run_dir, last, **arrays):
    """Atomically: a killed run never leaves half a chunk."""
    tmp = run_dir / f"chunk-{last:010d}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, run_dir / f"chunk-{last:010d}.npz")


def chunk_stop(chunks):
    """The engine's stop recorded in the last chunk (a dict), or None."""
    text = str(chunks[-1]["stopped"]) if chunks else ""
    return json.loads(text) if text else None


def trajectory(chunks):
    if not chunks:
        return np.zeros((0, 0, 3)), np.zeros(0), np.zeros(0, dtype=int)
    return (np.concatenate([c["positions"] for c in chunks]), np.concatenate([c["temperatures"] for c in chunks]),
            np.concatenate([c["steps"] for c in chunks]))


def progress_bar(spec, done):
    from tqdm import tqdm

    return tqdm(total=spec["steps"], initial=done, desc=f"{spec['system']}/{spec['model']}/s{spec['seed']}", unit="step",
                position=spec.get("position", 0), leave=True, mininterval=2.0, disable=spec.get("quiet", False))


def run_openmm(spec):
    """MD of one exported so3k model in OpenMM, in chunks, until spec['steps'] or the first failure."""
    import openmm
    from openmm import unit

    from so3k.export.openmm import openmm_box, system_from_atoms

    sys.path.insert(0, str(ROOT / "deploy" / "openmm"))
    from run_md import model_error

    torch.set_num_threads(spec["threads"])
    run_dir = Path(spec["run_dir"])
    chunks = load_chunks(run_dir)
    done = int(chunks[-1]["end_step"]) if chunks else 0
    if done >= spec["steps"] or chunk_stop(chunks):
        return
    frames = reference(spec["system"])[0]
    atoms = start_frame(frames, spec["seed"])
    rotation = np.eye(3)
    if atoms.pbc.all():
        rotation = openmm_box(atoms.cell.array)[1]  # OpenMM's orientation of the cell; frames are turned back
        atoms.positions = atoms.positions @ rotation.T
        atoms.set_cell(atoms.cell.array @ rotation.T)
    system = system_from_atoms(spec["model_path"], atoms)
    dt = spec["timestep_fs"]
    integrator = openmm.LangevinMiddleIntegrator(spec["temperature"] * unit.kelvin, FRICTION / unit.picosecond,
                                                 dt * unit.femtoseconds)
    integrator.setRandomNumberSeed(spec["seed"] + 1)  # 0 would draw a new seed each time
    platform = openmm.Platform.getPlatformByName(spec["platform"])
    properties = {"Threads": str(spec["threads"])} if spec["platform"] == "CPU" else {}
    context = openmm.Context(system, integrator, platform, properties)
    if chunks:
        context.loadCheckpoint(chunks[-1]["checkpoint"].tobytes())
    else:
        context.setPositions(atoms.positions * 0.1)
        context.setVelocitiesToTemperature(spec["temperature"] * unit.kelvin, spec["seed"] + 1)
    check = reference_check(spec["system"], spec["temperature"])
    per_window = max(1, int(round(RUNAWAY_WINDOW_PS * 1000 / (dt * REPORT))))
    kelvin_per_kj = 2.0 / (3 * len(atoms) * unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin))
    # the kinetic energy from the velocities: getState(getEnergy=True) would evaluate the model once more per report
    masses = np.array([system.getParticleMass(k).value_in_unit(unit.dalton) for k in range(system.getNumParticles())])
    positions, temperatures, steps = (list(a) for a in trajectory(chunks))
    bar = progress_bar(spec, done)
    stopped = None
    while done < spec["steps"] and stopped is None:
        end = min(spec["steps"], done + spec["chunk_steps"])
        first, step = len(positions), done
        start = time.perf_counter()
        while step < end:
            n = min(REPORT, end - step)
            try:
                integrator.step(n)
                state = context.getState(getPositions=True, getVelocities=True)
            except (openmm.OpenMMException, ValueError) as error:  # the model's refusal or OpenMM's NaN check
                reason = short(model_error(error))
                stopped = {"kind": "nan" if "nan" in reason.lower() else "stopped", "detail": reason, "step": step + n}
                step += n
                break
            step += n
            positions.append(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom) @ rotation)
            velocities = state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)
            temperatures.append(0.5 * float((masses[:, None] * velocities**2).sum()) * kelvin_per_kj)  # g/mol nm²/ps² = kJ/mol
            steps.append(step)
            bar.update(n)
        wall = time.perf_counter() - start
        if stopped is None:
            found = scan(check, positions, temperatures, per_window, start=first)
            if found is not None:  # recorded, so that a longer --ps does not continue a failed run
                stopped = {"kind": found[1].kind, "detail": found[1].detail, "step": int(steps[found[0]])}
        save_chunk(run_dir, step, positions=np.array(positions[first:], dtype=np.float32).reshape(-1, len(atoms), 3),
                   temperatures=np.array(temperatures[first:]), steps=np.array(steps[first:], dtype=np.int64), wall_s=wall,
                   n_steps=step - done, end_step=step, stopped=json.dumps(stopped) if stopped else "",
                   checkpoint=np.frombuffer(b"" if stopped else context.createCheckpoint(), dtype=np.uint8))
        done = step
    bar.close()


def run_peer(spec):
    """The same MD for a saved peer model, in its own venv through ASE (peer_md.py), checked for
    failures after each segment of `segment_steps`."""
    run_dir = Path(spec["run_dir"])
    frames = reference(spec["system"])[0]
    start = run_dir / "start.extxyz"
    if not start.exists():
        start_frame(frames, spec["seed"]).write(str(start))
    check = reference_check(spec["system"], spec["temperature"])
    per_window = max(1, int(round(RUNAWAY_WINDOW_PS * 1000 / (spec["timestep_fs"] * REPORT))))
    while True:
        chunks = load_chunks(run_dir)
        done = int(chunks[-1]["end_step"]) if chunks else 0
        positions, temperatures, _ = trajectory(chunks)
        if done >= spec["steps"] or chunk_stop(chunks) or scan(check, positions, temperatures, per_window) is not None:
            return
        target = min(spec["steps"], done + spec["segment_steps"])
        command = [spec["python"], str(HERE / "peer_md.py"), "--model", spec["model_path"], "--structure", str(start),
                   "--out", str(run_dir), "--steps", str(target), "--chunk-steps", str(spec["chunk_steps"]),
                   "--timestep", str(spec["timestep_fs"]), "--temperature", str(spec["temperature"]),
                   "--friction", str(FRICTION), "--interval", str(REPORT), "--seed", str(spec["seed"]),
                   "--threads", str(spec["threads"])]
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            raise RuntimeError(f"peer_md.py failed for {run_dir.name} (exit {finished.returncode}):\n{finished.stderr[-3000:]}")


def pool_map(function, items, jobs):
    """[function(item) for item in items], `jobs` processes at a time."""
    if jobs <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        return list(pool.map(function, items))


def run_any(spec):
    (run_peer if spec["engine"] == "ase" else run_openmm)(spec)
    return spec["run_dir"]


def result_of(spec):
    """The analysed run (cached in result.json next to its chunks)."""
    run_dir = Path(spec["run_dir"])
    cached = run_dir / "result.json"
    settings = {k: spec[k] for k in SETTINGS}
    if cached.exists():
        result = json.loads(cached.read_text())
        if result["settings"] == settings:
            return result
    chunks = load_chunks(run_dir)
    positions, temperatures, steps = trajectory(chunks)
    out = analyse(spec["system"], positions, temperatures, steps, spec["timestep_fs"], spec["temperature"],
                  stopped=chunk_stop(chunks))
    n_steps = int(sum(int(c["n_steps"]) for c in chunks))
    wall = float(sum(float(c["wall_s"]) for c in chunks))
    last = int(chunks[-1]["end_step"]) if chunks else 0
    simulated = (out["failure"]["step"] if out["failure"] else last) * spec["timestep_fs"] / 1000
    result = {"system": spec["system"], "model": spec["model"], "seed": spec["seed"], "settings": settings,
              "steps": last, "simulated_ps": simulated, "ms_per_step": 1000 * wall / n_steps if n_steps else None, **out}
    if out["failure"] is not None or last >= spec["steps"]:
        cached.write_text(json.dumps(result))
    return result


SETTINGS = ("system", "model", "seed", "steps", "timestep_fs", "temperature", "model_sha256")


# ----------------------------------------------------------------------------------- models

def file_sha256(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def prepare_model(system, args):
    """(exported TorchScript file, SHA-256 of the checkpoint, description) of the so3k model for a system: given, or trained here."""
    from so3k.checkpoint import load_checkpoint
    from so3k.export import export_model, load_exported
    from so3k.train import load_config, train

    torch.set_num_threads(args.threads)
    models = args.out / "models"
    models.mkdir(parents=True, exist_ok=True)
    given = args.checkpoint.get(system)
    if given is not None and given.suffix != ".ckpt":
        load_exported(given)  # an exported file: used as it is
        identity = file_sha256(given)
        return given, identity, f"given export {given.name} (SHA-256 {identity[:12]})"
    if given is None:
        run = models / system
        checkpoint, finished = run / "best.ckpt", run / "finished"
        if not finished.exists():
            budget = "3 epochs on 20 frames (--quick)" if args.quick else f"{args.train_minutes:g} min"
            print(f"\n== training {system} ({CONFIGS[system]}, {budget})", flush=True)
            if (run / "last.ckpt").exists():  # an interrupted training continues
                train(None, run, resume=True, progress=False)
            else:
                overrides = [f"data.path={system}", f"training.max_minutes={args.train_minutes}"]
                config = load_config(ROOT / "examples" / CONFIGS[system], overrides + (QUICK_TRAINING if args.quick else []))
                train(config, run, progress=False)
            finished.write_text("")
    else:
        checkpoint = given
    identity = file_sha256(checkpoint)  # of the checkpoint: an export's bytes differ from one export to the next
    exported = models / f"{system}-{identity[:12]}-openmm.pt"
    if not exported.exists():
        tmp = exported.with_suffix(".tmp.pt")
        export_model(checkpoint, tmp, engine="openmm", dtype="float32")
        os.replace(tmp, exported)
    history = load_checkpoint(checkpoint).get("history") or [{}]
    mae = history[-1].get("valid_forces_mae_meV_A")
    trained = f"epoch {history[-1].get('epoch')} after {history[-1]['time_s'] / 60:.1f} min" if "time_s" in history[-1] else ""
    origin = (f"given checkpoint {checkpoint.name} (SHA-256 {identity[:12]}" if given else f"trained here ({CONFIGS[system]}") + (
        f"; {trained})" if trained else ")")
    return exported, identity, origin + (
        f", validation force MAE {mae:.1f} meV/Å" if mae is not None else "")


def peer_python(model, args):
    if args.peer_python:
        return str(args.peer_python)
    from peer_env import ensure_env

    return str(ensure_env(model.split("-")[0], args.envs or args.out / "peer-envs"))


# ----------------------------------------------------------------------------------- report

def combine(results):
    """Sum the histograms of several runs of one (system, model)."""
    out = {"bonds": {}, "temperature_counts": None, "rdf": None, "rdf_frames": 0}
    for r in results:
        for label, h in r["bonds"].items():
            acc = out["bonds"].setdefault(label, {"counts": np.zeros(len(BOND_BINS) - 1), "n": 0, "sum": 0.0, "sum2": 0.0})
            acc["counts"] = acc["counts"] + np.array(h["counts"])
            for key in ("n", "sum", "sum2"):
                acc[key] += h[key]
        counts = np.array(r["temperature_counts"])
        out["temperature_counts"] = counts if out["temperature_counts"] is None else out["temperature_counts"] + counts
        if r.get("rdf") is not None and r["rdf_frames"]:
            g = np.array(r["rdf"]) * r["rdf_frames"]
            out["rdf"] = g if out["rdf"] is None else out["rdf"] + g
            out["rdf_frames"] += r["rdf_frames"]
    if out["rdf"] is not None:
        out["rdf"] = out["rdf"] / out["rdf_frames"]
    return out


def model_order(results, system):
    return sorted({r["model"] for r in results if r["system"] == system}, key=lambda m: (m != "so3k", m))


def bond_stats(h):
    if not h["n"]:
        return None, None
    mean = h["sum"] / h["n"]
    return mean, math.sqrt(max(0.0, h["sum2"] / h["n"] - mean**2))


def failure_text(result, target_ps):
    f = result["failure"]
    if f is None:
        return f"none within {result['simulated_ps']:.3g} ps", "–" if result["simulated_ps"] >= target_ps else "(unfinished)"
    return f"{f['time_ps']:.3g} ps", f"{f['kind']}: {f['detail']}"


def run_row(r, target_ps):
    when, what = failure_text(r, target_ps)
    ms = f"{r['ms_per_step']:.2f}" if r["ms_per_step"] else "–"
    return (f"| {r['system']} | {r['model']} | {r['seed']} | {r['settings']['temperature']:g} | {r['settings']['timestep_fs']:g} | "
            f"{r['steps']:,} | {r['simulated_ps']:.3g} | {when} | {what} | {ms} |")


def summarise(systems, results, references, settings, models):
    """(markdown, JSON-ready summary)."""
    lines = [
        f"OpenMM {settings['platform']} platform, {settings['threads']} thread(s) per run, {settings['jobs']} run(s) at a time; "
        f"Langevin (LangevinMiddleIntegrator) at friction {FRICTION:g}/ps; a frame every {REPORT} steps; load average "
        f"{settings['load_before']:.2f} before, {os.getloadavg()[0]:.2f} after.",
        "",
    ]
    for system, text in models.items():
        lines.append(f"- {system}: {text}")
    lines += ["", "| system | model | seed | T (K) | dt (fs) | steps | simulated (ps) | first failure | failure | ms/step |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    summary = {}
    for r in results:
        lines.append(run_row(r, settings["ps"][r["system"]]))
    lines += ["", "| system | model | runs | failed | median time to failure (ps) | ⟨T⟩ (K) | bond lengths, mean ± std (Å): model / reference | "
              "O-O g(r) first peak (Å): model / reference / difference |", "|---|---|---:|---:|---:|---:|---|---|"]
    for system in systems:
        ref = references[system]
        for model in model_order(results, system):
            runs = [r for r in results if r["system"] == system and r["model"] == model]
            times = [r["failure"]["time_ps"] for r in runs if r["failure"]]
            both = combine(runs)
            temps = [(r["temperature_mean"], r["frames_analysed"]) for r in runs if r["temperature_mean"] is not None]
            t_mean = sum(t * n for t, n in temps) / sum(n for _, n in temps) if temps else None
            bonds = {}
            for label in sorted(ref["bonds"]):
                bonds[label] = {"model": bond_stats(both["bonds"][label]) if label in both["bonds"] else (None, None),
                                "reference": bond_stats(ref["bonds"][label])}
            bond_text = "; ".join(
                f"{label} {b['model'][0]:.3f} ± {b['model'][1]:.3f} / {b['reference'][0]:.3f} ± {b['reference'][1]:.3f}"
                if b["model"][0] is not None else f"{label} – / {b['reference'][0]:.3f}" for label, b in bonds.items())
            peak = None
            if ref.get("rdf") is not None and both["rdf"] is not None:
                model_peak, ref_peak = first_peak(both["rdf"]), first_peak(ref["rdf"])
                peak = {"model": model_peak, "reference": ref_peak, "difference": model_peak - ref_peak,
                        "within_target": abs(model_peak - ref_peak) <= PEAK_TARGET}
            peak_text = (f"{peak['model']:.3f} / {peak['reference']:.3f} / {peak['difference']:+.3f} "
                         f"({'within' if peak['within_target'] else 'outside'} {PEAK_TARGET} Å)") if peak else "–"
            lines.append(f"| {system} | {model} | {len(runs)} | {len(times)} | {np.median(times):.3g} |" if times else
                         f"| {system} | {model} | {len(runs)} | 0 | – |")
            lines[-1] += f" {t_mean:.0f} |" if t_mean is not None else " – |"
            lines[-1] += f" {bond_text} | {peak_text} |"
            summary.setdefault(system, {})[model] = {
                "runs": len(runs), "failed": len(times), "failure_times_ps": times, "temperature_mean": t_mean,
                "bonds": bonds, "rdf_first_peak": peak}
    lines += ["", "Reference MD (the data sets' provenance): " + "; ".join(
        f"{s} {references[s]['method']} at {references[s]['temperature']:g} K, {references[s]['timestep_fs']:g} fs, "
        f"{references[s]['frames']} frames {references[s]['frame_interval_fs']:g} fs apart"
        + (f", measured ⟨T⟩ {references[s]['temperature_measured']:g} K" if references[s]["temperature_measured"] else "")
        for s in systems) + "."]
    return "\n".join(lines), summary


def plot(systems, results, references, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(len(references[s]["bonds"]) + 1 + (references[s].get("rdf") is not None) for s in systems)
    fig, axes = plt.subplots(len(systems), columns, figsize=(3.2 * columns, 2.8 * len(systems)), squeeze=False)
    centres = 0.5 * (BOND_BINS[1:] + BOND_BINS[:-1])
    width = BOND_BINS[1] - BOND_BINS[0]
    for row, system in zip(axes, systems):
        ref = references[system]
        models = model_order(results, system)
        combined = {m: combine([r for r in results if r["system"] == system and r["model"] == m]) for m in models}
        column = 0
        for label in sorted(ref["bonds"]):
            ax = row[column]
            h = np.array(ref["bonds"][label]["counts"], dtype=float)
            keep = h > 0
            for m in models:
                mh = combined[m]["bonds"].get(label)
                if mh is not None and mh["n"]:
                    keep |= np.array(mh["counts"]) > 0
            lo, hi = (centres[keep].min(), centres[keep].max()) if keep.any() else (BOND_BINS[0], BOND_BINS[-1])
            ax.fill_between(centres, h / max(h.sum() * width, 1), step="mid", color="0.8", label="reference MD")
            for m in models:
                mh = combined[m]["bonds"].get(label)
                if mh is not None and mh["n"]:
                    ax.step(centres, np.array(mh["counts"]) / (mh["n"] * width), where="mid", label=m)
            ax.set_xlim(lo - 0.02, hi + 0.02)
            ax.set_title(f"{system}: {label}", fontsize=9)
            ax.set_xlabel("bond length (Å)")
            if column == 0:
                ax.set_ylabel("probability density")
            column += 1
        ax = row[column]
        bath = next((r["settings"]["temperature"] for r in results if r["system"] == system), ref["temperature"])
        t_bins = temperature_bins(bath)
        t_centres = 0.5 * (t_bins[1:] + t_bins[:-1])
        ax.plot(t_centres, canonical_temperature(t_centres, bath, 3 * ref["atoms"]), color="0.5",
                label=f"canonical, {bath:g} K")
        if ref["temperature_measured"]:
            ax.axvline(ref["temperature_measured"], color="0.5", ls=":", label="reference MD, mean T")
        for m in models:
            counts = combined[m]["temperature_counts"]
            if counts is not None and counts.sum():
                ax.step(t_centres, counts / (counts.sum() * (t_bins[1] - t_bins[0])), where="mid", label=m)
        ax.set_title(f"{system}: kinetic temperature", fontsize=9)
        ax.set_xlabel("T (K)")
        column += 1
        if ref.get("rdf") is not None:
            ax = row[column]
            r_centres = 0.5 * (RDF_BINS[1:] + RDF_BINS[:-1])
            ax.plot(r_centres, ref["rdf"], color="0.5", label="reference MD")
            for m in models:
                if combined[m]["rdf"] is not None:
                    ax.plot(r_centres, combined[m]["rdf"], label=m)
            ax.axhline(1.0, color="0.8", lw=0.5)
            ax.set_xlim(2.0, RDF_BINS[-1])
            ax.set_title(f"{system}: O-O g(r)", fontsize=9)
            ax.set_xlabel("r (Å)")
            column += 1
        row[0].legend(fontsize=7)
        row[column - 1].legend(fontsize=7)
        for ax in row[column:]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)



# ----------------------------------------------------------------------------------- main

def parse_pairs(values, what):
    out = {}
    for value in values or []:
        key, sep, path = value.partition("=")
        if not sep or not path:
            sys.exit(f"stability.py: {what} takes NAME=PATH, got {value!r}")
        out[key] = Path(path)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--checkpoint", nargs="+", metavar="SYSTEM=PATH", help="a checkpoint (.ckpt) or an OpenMM export per system")
    parser.add_argument("--peer-model", nargs="+", default=[], metavar="MODEL:SYSTEM=PATH",
                        help="a saved peer model (torch.save) for one system, e.g. mace-small:aspirin=runs/peers/aspirin.model")
    parser.add_argument("--peer-python", type=Path, help="the peer venv's python (default: peer_env.py's venv under --envs)")
    parser.add_argument("--envs", type=Path, default=None, help="where the peer venvs live (default <out>/peer-envs)")
    parser.add_argument("--ps", type=float, default=None, help="ps per molecule run (default 100; --quick 0.1)")
    parser.add_argument("--water-ps", type=float, default=None, help="ps per water run (default 20; --quick 0.1)")
    parser.add_argument("--seeds", type=int, default=None, help="runs per system and model (default 3; --quick 2)")
    parser.add_argument("--temperature", type=float, default=500.0, help="K, the molecules (the reference MD's 500 K)")
    parser.add_argument("--water-temperature", type=float, default=300.0, help="K, the water box (its reference MD's)")
    parser.add_argument("--chunk-ps", type=float, default=None, help="ps between saved chunks (default 1; --quick 0.05)")
    parser.add_argument("--train-minutes", type=float, default=30.0, help="training budget per system without --checkpoint")
    parser.add_argument("--platform", default="auto", help="OpenMM platform: auto (CUDA if available, else CPU), CPU, CUDA, ...")
    parser.add_argument("--threads", type=int, default=1, help="threads per run (OpenMM CPU platform and torch)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one process each)")
    parser.add_argument("--quick", action="store_true", help="tiny models trained for 3 epochs on 20 frames, 0.1 ps runs: the CI check")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/stability"))
    parser.add_argument("--ship", action="store_true", help="copy the results to examples/benchmarks/results-stability.*")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    args.checkpoint = parse_pairs(args.checkpoint, "--checkpoint")
    peers = {}
    for key, path in parse_pairs(args.peer_model, "--peer-model").items():
        model, sep, system = key.partition(":")
        if not sep or system not in SYSTEMS:
            sys.exit(f"stability.py: --peer-model takes MODEL:SYSTEM=PATH with SYSTEM one of {', '.join(SYSTEMS)}, got {key!r}")
        peers.setdefault(system, {})[model] = path
    ps = {"aspirin": args.ps, "ethanol": args.ps, "water": args.water_ps}
    for system in ps:
        ps[system] = ps[system] if ps[system] is not None else (0.1 if args.quick else (20.0 if system == "water" else 100.0))
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 3)
    chunk_ps = args.chunk_ps or (0.05 if args.quick else 1.0)

    import openmm

    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    platform = args.platform if args.platform != "auto" else ("CUDA" if "CUDA" in available else "CPU")
    if platform not in available:
        sys.exit(f"stability.py: the OpenMM platform {platform!r} is not available here; available: {', '.join(available)}")
    os.environ.setdefault("OPENMM_CPU_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    prepared = pool_map(functools.partial(prepare_model, args=args), args.systems, args.jobs)  # trains in parallel too
    references, specs, models = {}, [], {}
    for system, (exported, identity, models[f"{system} so3k"]) in zip(args.systems, prepared):
        frames, provenance = reference(system)
        references[system] = reference_summary(system, frames, provenance)
        temperature = args.water_temperature if system == "water" else args.temperature
        dt = references[system]["timestep_fs"]
        steps = int(round(ps[system] * 1000 / dt))
        chunk_steps = max(REPORT, int(round(chunk_ps * 1000 / dt)) // REPORT * REPORT)
        entries = [("so3k", "openmm", str(exported), identity)]
        for model, path in peers.get(system, {}).items():
            sha = file_sha256(path)
            entries.append((model, "ase", str(path.resolve()), sha))
            models[f"{system} {model}"] = f"peer model {path.name} (SHA-256 {sha[:12]}), ASE Langevin in its own venv"
        for model, engine, path, sha in entries:
            for seed in range(seeds):
                run_dir = args.out / "runs" / f"{system}-{model}-s{seed}"
                run_dir.mkdir(parents=True, exist_ok=True)
                spec = dict(system=system, model=model, seed=seed, steps=steps, timestep_fs=dt, temperature=temperature,
                            model_sha256=sha, engine=engine, model_path=path, run_dir=str(run_dir), chunk_steps=chunk_steps,
                            platform=platform, threads=args.threads, quiet=args.quiet, position=len(specs) % max(1, args.jobs))
                if engine == "ase":
                    spec.update(python=peer_python(model, args), segment_steps=10 * chunk_steps)
                meta = run_dir / "settings.json"
                fixed = {k: spec[k] for k in SETTINGS if k != "steps"}
                if meta.exists() and json.loads(meta.read_text()) != fixed:
                    sys.exit(f"stability.py: {run_dir} holds a run with other settings ({meta}); delete it or choose another --out")
                meta.write_text(json.dumps(fixed))
                specs.append(spec)

    todo = [s for s in specs if not (Path(s["run_dir"]) / "result.json").exists() or
            json.loads((Path(s["run_dir"]) / "result.json").read_text())["settings"] != {k: s[k] for k in SETTINGS}]
    print(f"{len(specs)} runs, {len(todo)} to do on {platform} ({args.jobs} at a time)", flush=True)
    pool_map(run_any, todo, args.jobs)
    results = [result_of(spec) for spec in specs]

    settings = {"platform": platform, "threads": args.threads, "jobs": args.jobs, "load_before": load_before, "ps": ps,
                "seeds": seeds, "temperature": args.temperature, "water_temperature": args.water_temperature,
                "friction_per_ps": FRICTION, "report_steps": REPORT, "quick": args.quick, "cpu_count": os.cpu_count()}
    table, summary = summarise(args.systems, results, references, settings, models)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stability.md").write_text(table + "\n")
    plot(args.systems, results, references, args.out / "stability.png")
    slim = [{k: v for k, v in r.items() if k not in ("bonds", "rdf", "temperature_counts")} for r in results]
    (args.out / "stability.json").write_text(json.dumps({"settings": settings, "models": models, "runs": slim, "summary": summary},
                                                        indent=1, default=float) + "\n")
    if args.ship:
        for ext in ("md", "json", "png"):
            shutil.copy(args.out / f"stability.{ext}", HERE / f"results-stability.{ext}")
    return results, summary


if __name__ == "__main__":
    main()
