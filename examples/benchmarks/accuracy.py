"""Accuracy within a wall-clock budget: so3k beside so3krates-torch, MACE and NequIP, same frames, same time.

    python examples/benchmarks/accuracy.py --ship                  # the full report: about an hour on 2 cores
    python examples/benchmarks/accuracy.py --quick --no-peers      # so3k only, tiny budgets (CI)
    python examples/benchmarks/accuracy.py --datasets aspirin --models euclidean2024 mace-small --minutes 10

Splits: each data set is split once (seed 0) into test, validation and training frames, written
as <out>/splits/<set>-<train>-<valid>-<test>/{train,valid,test}.extxyz with split.json (frame
indices of the shipped set and SHA-256 of the files). 50 validation and 50 test frames for the
1000-frame sets, a tenth of the frames (at least 10) otherwise. Every model trains on train.extxyz,
selects its weights on valid.extxyz and is scored once on test.extxyz; every run reports the
digests of the files it read.

Runs: one child process per (data set, model), with one thread (OMP_NUM_THREADS=1), --parallel
at a time (one per core), each with --minutes of wall time counted from before the data are
read. so3k trains with examples/train_<preset>.yaml (the budget and the split files set) and
stops after the epoch that passes the budget; a peer trains with peer_train.py inside its own
virtual environment (peer_env.py) with the same loss, EMA and schedule, its package's learning
rate and batch size, least-squares energy shifts and the RMS force as energy scale, and stops at
its first validation after the budget. Energies and forces only: so3k's trainer has no stress
loss, so the water set is trained on energies and forces by every model.

Reported: test energy and force MAE / RMSE of the selected weights, parameter counts, minutes
used, epochs and steps; the validation force MAE against wall time of every run (so3k: one
point per epoch from metrics.csv; peers: every epoch and every budget / 8), and from it the
time to reach a validation force MAE threshold: by default, per data set, the best validation
force MAE of the weakest model (a level every model reached), or --threshold SET=meV/Å.
Learning curve: test force MAE against the number of training frames (nested subsets: the first
N frames of train.extxyz, the same validation and test frames) for --curve-models on
--curve-dataset, --curve-minutes each.

Resumable: a finished run keeps <out>/runs/<set>-<frames>-<minutes>min/<model>/result.json and
is not run again (delete the file to redo it); a failed run is retried. The table says
"failed: <reason>" for a run that failed and "not run" for a model that was skipped. The machine
check (cores used by other processes, see suite.py) is recorded before and after.

Writes <out>/accuracy.md, accuracy.json, accuracy.png (validation force MAE against time) and
accuracy-learning-curve.png; --ship also copies them to examples/benchmarks/results-accuracy*.
"""

import argparse
import contextlib
import csv
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
sys.path.insert(0, str(HERE))

from peer_env import ensure_env  # noqa: E402
from suite import PEER_ENV, busy_cores  # noqa: E402

SO3K = ("euclidean2024", "neurips2022")
MODELS = SO3K + tuple(PEER_ENV)
DEFAULT_MODELS = SO3K + ("so3krates-torch", "mace-small", "nequip")
DATASETS = ("aspirin", "ethanol", "ethanol-dft", "water")
CURVE_FRAMES = (50, 100, 250, 500, 900)
QUICK_CURVE_FRAMES = (10, 20)
SEED = 0


def label(model):
    return f"so3k {model}" if model in SO3K else model


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- splits ---------------------------------------------------------------------------------

def split_sizes(n_frames, quick):
    """(train, valid, test) frames: 50 + 50 held back from 1000, a tenth (at least 10) of smaller sets."""
    held = 5 if quick else min(50, max(10, n_frames // 10))
    train = n_frames - 2 * held
    return (min(train, 20) if quick else train), held, held


def write_split(dataset, out, quick):
    """The split files of a shipped data set (written once; the folder name holds the sizes)."""
    import ase.io
    import numpy as np

    from so3k.data.io import read_frames
    from so3k.datasets import path

    frames = read_frames(path(dataset))
    n_train, n_valid, n_test = split_sizes(len(frames), quick)
    folder = out / "splits" / f"{dataset}-{n_train}-{n_valid}-{n_test}"
    if (folder / "split.json").exists():
        return json.loads((folder / "split.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(SEED).permutation(len(frames))
    parts = {"train": order[n_valid + n_test :][:n_train], "valid": order[n_test : n_test + n_valid], "test": order[:n_test]}
    split = {"dataset": dataset, "folder": str(folder), "indices": {}, "files": {}, "digests": {}}
    for name, indices in parts.items():  # training frames in random order: the first N are a random subset
        file = folder / f"{name}.extxyz"
        ase.io.write(file, frames.subset(indices).to_atoms(), format="extxyz")
        split["indices"][name] = [int(k) for k in indices]
        split["files"][name] = str(file)
        split["digests"][name] = sha256(file)
    (folder / "split.json").write_text(json.dumps(split))  # last: marks the split complete
    return split


def train_subset(split, frames):
    """The first `frames` training frames as a file of their own (for the learning curve)."""
    import ase.io

    full = Path(split["files"]["train"])
    if frames >= len(split["indices"]["train"]):
        return full
    file = full.with_name(f"train-{frames}.extxyz")
    if not file.exists():
        tmp = file.with_suffix(".tmp")
        ase.io.write(tmp, ase.io.read(full, index=f":{frames}"), format="extxyz")
        tmp.replace(file)
    return file


# -- one run (child process) ----------------------------------------------------------------

def so3k_child(preset, train_file, valid_file, test_file, minutes, run):
    """Train one so3k preset on the split files into `run` and score it on the test file."""
    import torch

    from so3k.checkpoint import model_from_checkpoint
    from so3k.data.io import read_frames
    from so3k.evaluate import evaluate
    from so3k.model import count_parameters
    from so3k.train import load_config, train

    torch.set_num_threads(1)
    run = Path(run)
    if run.exists():  # an interrupted run: start again (a finished one has result.json and is not rerun)
        shutil.rmtree(run)
    config = load_config(
        EXAMPLES / f"train_{preset}.yaml",
        [f"data.path={train_file}", f"data.valid_path={valid_file}", "data.n_train=null", "data.n_test=0",
         f"training.max_minutes={minutes}"],
    )
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON line
        best = train(config, run, progress=False)
        test = evaluate(best, test_file, progress=False)
    with (run / "metrics.csv").open() as handle:
        history = list(csv.DictReader(handle))
    split = json.loads((run / "split.json").read_text())
    from importlib.metadata import version

    return {
        "model": preset, "params": count_parameters(model_from_checkpoint(best)),
        "test": {k: v for k, v in test.items() if k != "frames"},
        "curve": [[float(h["time_s"]), float(h["valid_forces_mae_meV_A"])] for h in history],
        "time_s": float(history[-1]["time_s"]), "epochs": int(history[-1]["epoch"]), "steps": int(history[-1]["step"]),
        "threads": torch.get_num_threads(),
        "frames": {"train": len(split["train"]), "valid": len(read_frames(valid_file)), "test": int(test["frames"])},
        "digests": {"train": sha256(train_file), "valid": sha256(valid_file), "test": sha256(test_file)},
        "settings": {"config": f"examples/train_{preset}.yaml", "max_minutes": minutes},
        "versions": {"torch": version("torch"), "so3k": version("so3k")},
    }


class Job:
    def __init__(self, dataset, model, split, frames, minutes, out):
        self.dataset, self.model, self.split, self.frames, self.minutes = dataset, model, split, frames, minutes
        self.train = train_subset(split, frames)
        self.run = out / "runs" / f"{dataset}-{frames}-{minutes:g}min" / model
        self.key = (dataset, model, frames, minutes)

    def command(self, pythons):
        files = [str(self.train), self.split["files"]["valid"], self.split["files"]["test"]]
        if self.model in SO3K:
            return [sys.executable, str(Path(__file__).resolve()), "--so3k-child", self.model, *files, str(self.minutes), str(self.run)]
        return [str(pythons[self.model]), str(HERE / "peer_train.py"), "--model", self.model, "--train", files[0],
                "--valid", files[1], "--test", files[2], "--minutes", str(self.minutes), "--threads", "1"]


def run_job(job, pythons, slot, pin):
    """Run (or reuse) one job; returns its result dict, with "error" when it failed."""
    result_file = job.run / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    if isinstance(pythons.get(job.model), Exception):
        return {"error": str(pythons[job.model])}
    job.run.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = job.command(pythons)
    if pin:  # one core per slot
        command = ["taskset", "-c", str(sorted(os.sched_getaffinity(0))[slot % len(os.sched_getaffinity(0))]), *command]
    print(f"start  {job.dataset} / {label(job.model)} / {job.frames} frames / {job.minutes:g} min", file=sys.stderr, flush=True)
    start = time.perf_counter()
    with (job.run.parent / f"{job.model}.log").open("w") as log:
        try:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env, check=False,
                                  timeout=job.minutes * 180 + 900)
        except subprocess.TimeoutExpired:
            return {"error": "timed out"}
    if done.returncode != 0:
        return {"error": failure_reason((job.run.parent / f"{job.model}.log").read_text(), done.returncode)}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(dataset=job.dataset, n_train=job.frames, minutes=job.minutes, run=str(job.run),
                  wall_s=round(time.perf_counter() - start, 1))
    result_file.write_text(json.dumps(result))
    print(f"done   {job.dataset} / {label(job.model)} / {job.frames} frames: test forces MAE "
          f"{result['test']['forces_mae_meV_A']:.1f} meV/Å", file=sys.stderr, flush=True)
    return result


def failure_reason(log, returncode):
    """The last exception line of a child's stderr (with its message's first line), else its last line."""
    lines = [x.strip() for x in log.splitlines() if x.strip()]
    for k in range(len(lines) - 1, -1, -1):
        match = re.match(r"^([\w.]*(?:Error|Exception|Interrupt|Exit)):\s*(.*)$", lines[k])
        if match:
            message = match.group(2) or (lines[k + 1] if k + 1 < len(lines) else "")
            return f"{match.group(1).split('.')[-1]}: {message}"[:200]
    return (lines[-1] if lines else f"exit status {returncode}")[:200]


def run_all(jobs, pythons, parallel, pin):
    slots = list(range(parallel))
    lock = threading.Lock()

    def work(job):
        with lock:
            slot = slots.pop(0)
        try:
            return run_job(job, pythons, slot, pin)
        finally:
            with lock:
                slots.append(slot)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return dict(zip([j.key for j in jobs], pool.map(work, jobs)))


# -- report ---------------------------------------------------------------------------------

def time_to(curve, threshold):
    """Seconds to the first validation force MAE at or below the threshold (None if never)."""
    for t, mae in curve:
        if mae <= threshold:
            return t
    return None


def thresholds(rows, given):
    """Per data set: the given value, else the best validation force MAE of the weakest model."""
    out = {}
    for dataset in {r["dataset"] for r in rows}:
        if dataset in given:
            out[dataset] = given[dataset]
            continue
        bests = [min(m for _, m in r["curve"]) for r in rows if r["dataset"] == dataset and r.get("curve")]
        bests = [b for b in bests if math.isfinite(b)]
        if bests:
            out[dataset] = max(bests)
    return out


def fmt(value, digits=1):
    return "" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def markdown(report):
    c = report["conditions"]
    lines = [
        "# Accuracy within a wall-clock budget\n",
        f"{c['minutes']:g} min per run (learning curve: {c['curve_minutes']:g} min), 1 thread per run, {c['parallel']} run(s) at "
        f"a time on {c['cpus']} cores, float32, torch {c['torch']}. Machine checks (cores used by other processes; "
        "1-minute load average): " + "; ".join(f"{w}: {b:.2f}, {load:.2f}" for w, b, load in c["checks"]) + "."
        + (" **The machine was busy: other work slowed the runs.**" if c["busy"] else ""),
        "",
        "Splits (frames train / valid / test): "
        + "; ".join(f"{d} {s['sizes'][0]} / {s['sizes'][1]} / {s['sizes'][2]}" for d, s in report["splits"].items()) + ".",
        "",
        "## Test errors of the selected weights\n",
        ("| data | model | params | minutes used | epochs | steps | energy MAE (meV) | energy RMSE (meV) | energy MAE (meV/atom) "
         "| force MAE (meV/Å) | force RMSE (meV/Å) | minutes to valid force MAE ≤ threshold |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        head = f"| {r['dataset']} | {label(r['model'])} |"
        if r["status"] != "ok":
            lines.append(head + f" {r['status']} |" + " |" * 9)
            continue
        t = r["test"]
        reach = r.get("minutes_to_threshold")
        lines.append(
            head + f" {r['params']:,} | {r['time_s'] / 60:.1f} | {r['epochs']} | {r['steps']:,} | {fmt(t['energy_mae_meV'])} | "
            f"{fmt(t['energy_rmse_meV'])} | {fmt(t['energy_mae_meV_atom'], 2)} | {fmt(t['forces_mae_meV_A'])} | "
            f"{fmt(t['forces_rmse_meV_A'])} | {'not reached' if reach is None else fmt(reach, 2)} |"
        )
    lines.append("\nThresholds (validation force MAE, meV/Å; default: the best of the weakest model): "
                 + "; ".join(f"{d} {v:.1f}" for d, v in sorted(report["thresholds"].items())) + ".")
    if report["curve"]:
        frames = sorted({p["n_train"] for p in report["curve"]})
        lines += [(f"\n## Learning curve: test force MAE (meV/Å) against training frames ({report['curve_dataset']}, "
                   f"{c['curve_minutes']:g} min per run)\n"),
                  "| model | " + " | ".join(str(n) for n in frames) + " |", "|---|" + "---:|" * len(frames)]
        for model in dict.fromkeys(p["model"] for p in report["curve"]):
            cells = []
            for n in frames:
                p = next((p for p in report["curve"] if p["model"] == model and p["n_train"] == n), None)
                cells.append("" if p is None else fmt(p["forces_mae_meV_A"]) if p["status"] == "ok" else p["status"])
            lines.append(f"| {label(model)} | " + " | ".join(cells) + " |")
    versions = {label(r["model"]): r["versions"] for r in report["rows"] if r["status"] == "ok" and r.get("versions")}
    if versions:
        lines.append("\nVersions: " + "; ".join(f"{m}: " + ", ".join(f"{k} {v}" for k, v in sorted(vs.items()))
                                                  for m, vs in versions.items()) + ".")
    return "\n".join(lines)


def plots(report, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = {m: f"C{k}" for k, m in enumerate(MODELS)}
    datasets = list(dict.fromkeys(r["dataset"] for r in report["rows"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for r in report["rows"]:
            if r["dataset"] == dataset and r["status"] == "ok" and r["curve"]:
                t, mae = zip(*r["curve"])
                ax.plot([x / 60 for x in t], mae, "o-", ms=3, color=colors[r["model"]], label=label(r["model"]))
        threshold = report["thresholds"].get(dataset)
        if threshold:
            ax.axhline(threshold, color="grey", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xlabel("wall time (min, 1 thread)")
        ax.set_title(dataset)
    axes[0][0].set_ylabel("validation force MAE (meV/Å)")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=120)
    plt.close(fig)

    if not any(p["status"] == "ok" for p in report["curve"]):
        return
    fig, ax = plt.subplots(figsize=(5, 4))
    for model in dict.fromkeys(p["model"] for p in report["curve"]):
        points = sorted((p["n_train"], p["forces_mae_meV_A"]) for p in report["curve"] if p["model"] == model and p["status"] == "ok")
        if points:
            ax.plot(*zip(*points), "o-", color=colors[model], label=label(model))
    ax.set_xscale("log")
    ax.set_yscale("log")
    frames = sorted({p["n_train"] for p in report["curve"]})
    if frames:
        ax.set_xticks(frames, [str(n) for n in frames])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("training frames")
    ax.set_ylabel("test force MAE (meV/Å)")
    ax.set_title(f"{report['curve_dataset']}, {report['conditions']['curve_minutes']:g} min per run")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "accuracy-learning-curve.png", dpi=120)
    plt.close(fig)


def row(dataset, model, result, skipped):
    base = {"dataset": dataset, "model": model}
    if skipped:
        return {**base, "status": f"not run ({skipped})"}
    if "error" in result:
        return {**base, "status": f"failed: {result['error'][:120]}"}
    return {**base, "status": "ok", **result}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/accuracy"))
    parser.add_argument("--envs", type=Path, default=Path("runs/benchmarks/peer-envs"),
                        help="where the peer venvs live (default: where suite.py puts them with its default --out)")
    parser.add_argument("--minutes", type=float, default=None, help="budget per run (default 4; --quick 0.2)")
    parser.add_argument("--curve-minutes", type=float, default=None, help="budget per learning-curve run (default 2; --quick 0.1)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(DEFAULT_MODELS))
    parser.add_argument("--curve-models", nargs="*", choices=MODELS, default=["euclidean2024", "mace-small"],
                        help="models of the learning curve (none: no curve)")
    parser.add_argument("--curve-frames", nargs="*", type=int, default=None,
                        help=f"training frames of the learning curve (default {' '.join(map(str, CURVE_FRAMES))}; --quick "
                             f"{' '.join(map(str, QUICK_CURVE_FRAMES))})")
    parser.add_argument("--curve-dataset", choices=DATASETS, default="aspirin")
    parser.add_argument("--threshold", nargs="*", default=[], metavar="SET=MEV_A",
                        help="validation force MAE whose time to reach is reported, e.g. aspirin=60")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time, one thread each")
    parser.add_argument("--pin", action="store_true", help="pin each run to a core of its own (taskset)")
    parser.add_argument("--quick", action="store_true", help="tiny splits (20 training frames) and budgets, for CI")
    parser.add_argument("--no-peers", action="store_true", help="so3k only (peer rows say 'not run')")
    parser.add_argument("--ship", action="store_true", help="also copy the results to examples/benchmarks/results-accuracy*")
    args = parser.parse_args(argv)
    if args.minutes is None:
        args.minutes = 0.2 if args.quick else 4.0
    if args.curve_minutes is None:
        args.curve_minutes = 0.1 if args.quick else 2.0
    if args.curve_frames is None:
        args.curve_frames = list(QUICK_CURVE_FRAMES if args.quick else CURVE_FRAMES)
    try:
        args.threshold = {k: float(v) for k, v in (item.split("=", 1) for item in args.threshold)}
    except ValueError:
        parser.error("--threshold takes SET=VALUE, e.g. aspirin=60")
    return args


def main(argv=None):
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pythons = {}  # peer -> its venv's python, or the reason the venv could not be made
    wanted_peers = sorted({m for m in args.models + args.curve_models if m not in SO3K})
    if wanted_peers and not args.no_peers:
        env_python = {}
        for name in sorted({PEER_ENV[m] for m in wanted_peers}):
            try:
                env_python[name] = ensure_env(name, args.envs)
            except Exception as error:  # reported in the peer's rows; so3k and the other peers still run
                env_python[name] = RuntimeError(f"environment {name}: {error}"[:200])
        pythons = {m: env_python[PEER_ENV[m]] for m in wanted_peers}

    datasets = list(dict.fromkeys(args.datasets + ([args.curve_dataset] if args.curve_models and args.curve_frames else [])))
    splits = {d: write_split(d, args.out, args.quick) for d in datasets}
    jobs, skipped = {}, {}
    for dataset in args.datasets:
        for model in args.models:
            if model in SO3K or not args.no_peers:
                job = Job(dataset, model, splits[dataset], len(splits[dataset]["indices"]["train"]), args.minutes, args.out)
                jobs.setdefault(job.key, job)
    curve_keys = []
    for model in args.curve_models:
        for frames in args.curve_frames:
            if frames > len(splits[args.curve_dataset]["indices"]["train"]):
                skipped[(model, frames)] = f"the split has only {len(splits[args.curve_dataset]['indices']['train'])} training frames"
            elif model not in SO3K and args.no_peers:
                skipped[(model, frames)] = "--no-peers"
            else:
                job = Job(args.curve_dataset, model, splits[args.curve_dataset], frames, args.curve_minutes, args.out)
                jobs.setdefault(job.key, job)
                curve_keys.append(((model, frames), job.key))

    import torch

    checks = []

    def check(when):
        checks.append((when, round(busy_cores(), 2), round(os.getloadavg()[0], 2)))

    check("before")
    results = run_all(list(jobs.values()), pythons, args.parallel, args.pin)
    check("after")

    rows = []
    for dataset in args.datasets:
        for model in args.models:
            key = (dataset, model, len(splits[dataset]["indices"]["train"]), args.minutes)
            rows.append(row(dataset, model, results.get(key, {}), None if key in results else "--no-peers"))
    limits = thresholds([r for r in rows if r["status"] == "ok"], args.threshold)
    for r in rows:
        if r["status"] == "ok" and r["dataset"] in limits:
            reached = time_to(r["curve"], limits[r["dataset"]])
            r["minutes_to_threshold"] = None if reached is None else reached / 60
    curve = []
    for model in args.curve_models:
        for frames in args.curve_frames:
            key = dict(curve_keys).get((model, frames))
            r = row(args.curve_dataset, model, results.get(key, {}), skipped.get((model, frames)))
            point = {"model": model, "n_train": frames, "status": r["status"]}
            if r["status"] == "ok":
                point.update(r["test"], params=r["params"], time_s=r["time_s"], run=r["run"], digests=r["digests"])
            curve.append(point)
    report = {
        "conditions": {"minutes": args.minutes, "curve_minutes": args.curve_minutes, "parallel": args.parallel, "threads": 1,
                       "cpus": os.cpu_count(), "torch": torch.__version__, "checks": checks, "quick": args.quick,
                       "busy": any(b > 0.25 for _, b, _ in checks)},
        "splits": {d: {"sizes": [len(s["indices"][k]) for k in ("train", "valid", "test")], "folder": s["folder"],
                       "digests": s["digests"]} for d, s in splits.items()},
        "thresholds": limits, "curve_dataset": args.curve_dataset, "rows": rows, "curve": curve,
    }
    text = markdown(report)
    print("\n" + text)
    (args.out / "accuracy.md").write_text(text + "\n")
    (args.out / "accuracy.json").write_text(relative_paths(json.dumps(report, indent=1), args.out))
    plots(report, args.out)
    if args.ship:
        for name in ("accuracy.md", "accuracy.json", "accuracy.png", "accuracy-learning-curve.png"):
            if (args.out / name).exists():
                shutil.copyfile(args.out / name, HERE / f"results-{name}")
    print(f"\nwrote {args.out / 'accuracy.md'}, accuracy.json, accuracy.png, accuracy-learning-curve.png", file=sys.stderr)
    return report


def relative_paths(text, out):
    """The JSON text with the run and split paths relative to --out (the file travels without them)."""
    prefix = json.dumps(str(out) + os.sep)[1:-1]
    return text.replace(f'"{prefix}', '"')


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--so3k-child":
        preset, train_file, valid_file, test_file, minutes, run = sys.argv[2:8]
        print(json.dumps(so3k_child(preset, train_file, valid_file, test_file, float(minutes), run)), flush=True)
    else:
        main()
