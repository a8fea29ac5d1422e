"""The speed suite: so3k beside so3krates-torch, MACE and NequIP, one command.

    python examples/benchmarks/suite.py                 # about 20 minutes on 2 quiet cores
    python examples/benchmarks/suite.py --quick         # one round, fewer repeats, no float64: 10 minutes
    python examples/benchmarks/suite.py --no-peers      # so3k only (no peer environments)

Every measurement runs in a fresh child process (so3k_cases.py for so3k, peer_models.py inside a
peer's own virtual environment, created on first use by peer_env.py), one case at a time, all
with --threads threads, float32 unless stated, random weights, r_c = 5 Å. The cases are run in
rounds, each round visiting every (model, case) once, so slow drifts of the machine hit all
models alike; a case's time is the median over rounds of each child's median. Ratios are formed
from these medians. The so3k-only series (scaling, engines) run once, after the rounds. Cases:
  aspirin (21 atoms), water-192, water-1536 (boxes at 1 g/cm^3): one energy + forces call,
      pair list built outside the timed call (as the peers are timed);
  train-aspirin5: one training step on 5 aspirin frames (energy + forces, MSE loss, Adam);
  scaling: so3k euclidean2024 on water boxes of 96 to 12,000 atoms, pair list included;
  engines: the exported model's OpenMM step and LAMMPS step beside the eager call.
Before every round and after the last, the suite measures how busy the machine is while it is
idle itself (cores' worth of CPU used by other processes over 3 s, from /proc/stat): above
--max-busy it stops without reporting (a busy machine makes every ratio meaningless); --force
reports anyway and marks the tables. The 1-minute load average is recorded too. Writes <out>/suite.{md,json} and suite-{speed,scaling}.png.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peer_env import ensure_env  # noqa: E402

PEER_ENV = {"so3krates-torch": "mace", "mace-small": "mace", "mace-medium": "mace", "nequip": "nequip"}
SPEED_CASES = ("aspirin", "water-192", "water-1536", "train-aspirin5")
SCALING = (1, 2, 4, 8, 16, 32, 64, 125)  # copies of the shipped 96-atom water box: 96 .. 12,000 atoms
SO3K = ("euclidean2024", "neurips2022")
TARGETS = """Targets (issue: float32, euclidean2024): inference >= 4.5x faster than so3krates-torch on
aspirin and >= 3x on water-1536, >= 10x faster than MACE small on both; training step >= 2x
faster than so3krates-torch; cost per atom at 12,000 atoms within 1.2x of 1,536; OpenMM step
within 1.15x and LAMMPS step within 1.25x of the eager call."""


def load_average():
    return os.getloadavg()[0]


def busy_cores(seconds=3.0):
    """Cores' worth of CPU time used by other processes over a few seconds while the suite
    itself is idle (from /proc/stat): unlike the load average, not inflated by our own runs."""

    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return (1.0 - (idle1 - idle0) / max(total1 - total0, 1)) * os.cpu_count()


def write_structures(folder):
    """The cases' structures as extxyz files (what the peers read too)."""
    import ase.io

    from so3k.data.io import read_frames
    from so3k.datasets import path

    folder.mkdir(parents=True, exist_ok=True)
    aspirin = read_frames(path("aspirin"), index=":5").to_atoms()
    water = read_frames(path("water"), index=":1").to_atoms()[0]
    ase.io.write(folder / "aspirin.extxyz", aspirin[0])
    ase.io.write(folder / "train-aspirin5.extxyz", aspirin)
    ase.io.write(folder / "water-192.extxyz", water.repeat((2, 1, 1)))
    ase.io.write(folder / "water-1536.extxyz", water.repeat((4, 2, 2)))
    for n in SCALING:
        ase.io.write(folder / f"water-{96 * n}.extxyz", water.repeat(repeat_shape(n)))


def repeat_shape(n):
    """Near-cubic (a, b, c) with a * b * c = n."""
    best = (n, 1, 1)
    for a in range(1, n + 1):
        for b in range(1, n // a + 1):
            if n % (a * b) == 0:
                c = n // (a * b)
                if (max(a, b, c), a + b + c) < (max(best), sum(best)):
                    best = (a, b, c)
    return best


def child(command, timeout):
    """Run one measurement; its last stdout line is JSON. Failures are reported, not fatal."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": " / ".join(tail)[-300:], "wall_s": time.perf_counter() - start}
    return json.loads(done.stdout.strip().splitlines()[-1])


def plan(args):
    """[(key, command)] of one round, in a fixed interleaved order, and [(key, command)] run once
    after the rounds (so3k only: the scaling series and the engines beside the eager call)."""
    structures = ["--structures", str(args.out / "structures"), "--threads", str(args.threads)]
    ours = [sys.executable, str(HERE / "so3k_cases.py")]
    jobs = []
    dtypes = ["float32"] if args.quick else ["float32", "float64"]
    for case in SPEED_CASES:
        train = case.startswith("train")
        reps = ["--warmup", "2", "--repeats", str(3 if "1536" in case else args.repeats)]
        for dtype in dtypes:
            if dtype == "float64" and case in ("water-1536",):
                continue
            for preset in SO3K:
                modes = ["train", "train_compiled"] if train else ["eager", "exported", "compiled"]
                for mode in modes:
                    jobs.append(((f"so3k {preset}", mode, case, dtype),
                                 ours + ["--preset", preset, "--mode", mode, "--case", case, "--dtype", dtype] + structures + reps))
            for peer, python in args.peers.items():
                if peer == "mace-medium" and case == "water-1536" and not args.full:
                    continue  # about 45 s per call; --full includes it
                jobs.append(((peer, "train" if train else "eager", case, dtype),
                             [str(python), str(HERE / "peer_models.py"), "--model", peer, "--case", case, "--dtype", dtype]
                             + structures + reps))
    once = []
    for n in SCALING:
        # two untimed calls: the first touches all the memory a call needs (18 GB at 12,000 atoms)
        reps = ["--warmup", "2" if n <= 16 else "1", "--repeats", "3" if n <= 16 else "2"]
        once.append((("so3k euclidean2024", "scaling", f"water-{96 * n}", "float32"),
                     ours + ["--mode", "eager", "--with-pairs", "--case", f"water-{96 * n}"] + structures + reps))
    if not args.no_engines:
        for case in ("aspirin", "water-1536"):
            steps = ["--warmup", "5", "--repeats", "20" if case == "aspirin" else "3"]
            for mode in ("openmm", "lammps"):
                once.append((("so3k euclidean2024", mode, case, "float32"),
                             ours + ["--mode", mode, "--case", case] + structures + steps))
            once.append((("so3k euclidean2024", "eager+pairs", case, "float32"),
                         ours + ["--mode", "eager", "--with-pairs", "--case", case] + structures + steps))
    return jobs, once


def summarise(records):
    """key -> merged record with the median of the rounds' medians."""
    merged = {}
    for key, runs in records.items():
        good = [r for r in runs if "ms" in r]
        if not good:
            merged[key] = {"error": runs[-1].get("error", "failed")}
            continue
        row = dict(good[-1])
        row["ms"] = statistics.median(r["ms"] for r in good)
        row["rounds"] = len(good)
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in good)
        merged[key] = row
    return merged


def train_mode(mode):
    """The training step shown in a table row: the compiled row shows training.compile, the others the eager step."""
    return "train_compiled" if mode == "compiled" else "train"


def ms(results, model, mode, case, dtype="float32"):
    row = results.get((model, mode, case, dtype), {})
    return row.get("ms")


def tables(results, args, loads):
    out = []
    warn = " (BUSY MACHINE: forced report, do not trust the ratios)" if args.busy else ""
    out.append(f"# so3k speed suite{warn}\n")
    out.append(f"{args.threads} threads per process, {args.rounds} interleaved rounds, torch {torch_version()}. "
               "Machine checks (cores used by other processes; 1-minute load average): "
               + "; ".join(f"{when}: {busy:.2f}, {load:.2f}" for when, busy, load in loads) + ".\n")
    models = [f"so3k {p}" for p in SO3K] + list(args.peers)
    for dtype in (["float32"] if args.quick else ["float32", "float64"]):
        out.append(f"\n## Energy + forces per call, and one training step ({dtype}; ms, median)\n")
        out.append("| model | path | params | " + " | ".join(SPEED_CASES) + " | peak RSS (MB) |")
        out.append("|---|---|---:|" + "---:|" * len(SPEED_CASES) + "---:|")
        for model in models:
            for mode in (["eager", "exported", "compiled"] if model.startswith("so3k ") else ["eager"]):
                cells, params, rss = [], "", 0.0
                for case in SPEED_CASES:
                    row = results.get((model, train_mode(mode) if case.startswith("train") else mode, case, dtype), {})
                    if "ms" in row:
                        cells.append(f"{row['ms']:.1f}")
                        params = f"{row['params']:,}"
                        rss = max(rss, row["peak_rss_mb"])
                    else:
                        cells.append("failed" if "error" in row else "")
                path = {"eager": "Python", "exported": "TorchScript (exported)", "compiled": "AOTInductor (.pt2)"}[mode]
                out.append(f"| {model} | {path} | {params} | " + " | ".join(cells) + f" | {rss:.0f} |")
    out.append("\n## Speed-up of so3k euclidean2024 (float32; peer time / so3k time)\n")
    out.append("| against | aspirin (eager / exported / compiled) | water-192 | water-1536 | train-aspirin5 (eager / compiled) |")
    out.append("|---|---:|---:|---:|---:|")
    for peer in args.peers:
        cells = []
        for case in SPEED_CASES:
            theirs = ms(results, peer, "train" if case.startswith("train") else "eager", case)
            if case.startswith("train"):
                mine = [ms(results, "so3k euclidean2024", m, case) for m in ("train", "train_compiled")]
            else:
                mine = [ms(results, "so3k euclidean2024", m, case) for m in ("eager", "exported", "compiled")]
            cells.append(" / ".join(f"{theirs / m:.2f}x" for m in mine if m and theirs) or "")
        out.append(f"| {peer} | " + " | ".join(cells) + " |")
    out.append("\n## Scaling (so3k euclidean2024, float32, pair list included)\n")
    out.append("| atoms | pairs | ms per call | µs per atom | relative to 1,536 | peak RSS (GB) |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    base = ms(results, "so3k euclidean2024", "scaling", "water-1536")
    for n in SCALING:
        row = results.get(("so3k euclidean2024", "scaling", f"water-{96 * n}", "float32"), {})
        if "ms" in row:
            per_atom = row["ms"] * 1e3 / row["atoms"]
            rel = f"{per_atom / (base * 1e3 / 1536):.2f}" if base else ""
            out.append(f"| {row['atoms']:,} | {row['pairs']:,} | {row['ms']:.1f} | {per_atom:.0f} | {rel} | {row['peak_rss_mb'] / 1024:.1f} |")
        elif row:
            out.append(f"| {96 * n:,} | | failed: {row['error'][:80]} | | | |")
    if not args.no_engines:
        out.append("\n## Engines (exported euclidean2024, float32; ms per step, pair list included everywhere)\n")
        out.append("| system | eager call | OpenMM CPU step | ratio | LAMMPS step (1 rank) | ratio |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for case in ("aspirin", "water-1536"):
            eager = ms(results, "so3k euclidean2024", "eager+pairs", case)
            cells = [f"{eager:.1f}" if eager else "failed"]
            for mode in ("openmm", "lammps"):
                step = ms(results, "so3k euclidean2024", mode, case)
                cells += [f"{step:.1f}", f"{step / eager:.2f}"] if step and eager else ["failed", ""]
            out.append(f"| {case} | " + " | ".join(cells) + " |")
    failures = [(k, r["error"]) for k, r in results.items() if "error" in r]
    if failures:
        out.append("\n## Failed measurements\n")
        out += [f"- {' / '.join(k)}: {e}" for k, e in failures]
    out.append("\n" + TARGETS)
    return "\n".join(out)


def torch_version():
    import torch

    return torch.__version__


def plots(results, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [f"so3k {p}" for p in SO3K] + list(args.peers)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        values = []
        for case in SPEED_CASES:
            mode = "train" if case.startswith("train") else ("exported" if model.startswith("so3k ") else "eager")
            values.append(ms(results, model, mode, case) or 0.0)
        ax.bar([c + k * width for c in range(len(SPEED_CASES))], values, width, label=model)
    ax.set_xticks([c + 0.4 - width / 2 for c in range(len(SPEED_CASES))], SPEED_CASES)
    ax.set_yscale("log")
    ax.set_ylabel("ms per call (so3k: exported)")
    ax.set_title(f"float32, {args.threads} threads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "suite-speed.png", dpi=120)

    rows = [results.get(("so3k euclidean2024", "scaling", f"water-{96 * n}", "float32"), {}) for n in SCALING]
    rows = [r for r in rows if "ms" in r]
    if rows:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["atoms"] for r in rows], [r["ms"] * 1e3 / r["atoms"] for r in rows], "o-")
        ax.set_xscale("log")
        ax.set_xlabel("atoms (water)")
        ax.set_ylabel("µs per atom (energy + forces + pair list)")
        ax.set_ylim(bottom=0)
        ax.set_title("so3k euclidean2024, float32")
        fig.tight_layout()
        fig.savefig(args.out / "suite-scaling.png", dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument("--envs", type=Path, default=None, help="where the peer venvs live (default <out>/peer-envs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1 round, float32 only")
    parser.add_argument("--full", action="store_true", help="also MACE medium on the 1,536-atom box")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-engines", action="store_true", help="skip the OpenMM and LAMMPS rows")
    parser.add_argument("--max-busy", type=float, default=0.25, help="refuse to report when other processes use more cores than this")
    parser.add_argument("--force", action="store_true", help="report even when the machine is busy (marked)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeats = 1, 5
    args.out.mkdir(parents=True, exist_ok=True)
    args.busy = False

    args.peers = {}
    if not args.no_peers:
        envs = args.envs or args.out / "peer-envs"
        pythons = {name: ensure_env(name, envs) for name in sorted(set(PEER_ENV.values()))}
        args.peers = {peer: pythons[env] for peer, env in PEER_ENV.items()}
    if not args.no_engines:
        from so3k.lammps import build, plugin_status

        if plugin_status() != "ok":
            print("building the LAMMPS plugin ...", file=sys.stderr, flush=True)
            build()
    write_structures(args.out / "structures")

    jobs, once = plan(args)
    records, loads = {}, []

    def check(when):
        busy = busy_cores()
        loads.append((when, round(busy, 2), round(load_average(), 2)))
        if busy > args.max_busy:
            if not args.force:
                raise SystemExit(
                    f"the machine is busy {when}: other processes use {busy:.2f} cores (limit {args.max_busy}): "
                    "no report. Stop other work and rerun, or pass --force to report anyway (marked as unreliable)."
                )
            args.busy = True

    for r in range(args.rounds):
        check(f"before round {r + 1}")
        for k, (key, command) in enumerate(jobs):
            print(f"round {r + 1}/{args.rounds}  {k + 1}/{len(jobs)}  {' '.join(key)}", file=sys.stderr, flush=True)
            records.setdefault(key, []).append(child(command, timeout=1800))
    check("before the scaling series and engines")
    for k, (key, command) in enumerate(once):
        print(f"once  {k + 1}/{len(once)}  {' '.join(key)}", file=sys.stderr, flush=True)
        records.setdefault(key, []).append(child(command, timeout=1800))
    check("at the end")
    results = summarise(records)
    text = tables(results, args, loads)
    print(text)
    (args.out / "suite.md").write_text(text + "\n")
    (args.out / "suite.json").write_text(json.dumps(
        {"loads": loads, "threads": args.threads, "results": [{**v, **dict(zip(("model", "mode", "case", "dtype"), k))}
                                                              for k, v in results.items()]}, indent=1))  # the key's mode wins
    plots(results, args)
    print(f"\nwrote {args.out / 'suite.md'}, suite.json, suite-speed.png, suite-scaling.png", file=sys.stderr)


if __name__ == "__main__":
    main()
