"""Accuracy within a fixed CPU budget: both presets on the shipped aspirin and ethanol sets.

    python examples/benchmarks/train_accuracy.py --minutes 60        # the full report, 4 hours
    python examples/benchmarks/train_accuracy.py --minutes 8         # a quick look

Each run trains on 950 frames and validates on the other 50 (held back from training; they
select the best epoch), with the settings of examples/train_*.yaml and a wall-time budget of
--minutes. Prints a markdown table (energy and force MAE on the 50 held-back frames, steps,
structures per second of training) and keeps each run folder (learning curves, parity plots)
under --out. The 1-minute load average is recorded: other work on the machine slows training
and so lowers the accuracy reached within the budget.
"""

import argparse
import csv
import os
from pathlib import Path

from so3k.evaluate import evaluate
from so3k.train import load_config, train

EXAMPLES = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-time budget per run (default 60)")
    parser.add_argument("--datasets", nargs="+", default=["aspirin", "ethanol"])
    parser.add_argument("--presets", nargs="+", default=["euclidean2024", "neurips2022"])
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/train_accuracy"))
    args = parser.parse_args()

    rows = []
    for dataset in args.datasets:
        for preset in args.presets:
            run = args.out / f"{dataset}-{preset}"
            if (run / "last.ckpt").exists():
                print(f"{run} exists: reusing its result (delete the folder to train again)")
            else:
                load = os.getloadavg()[0]
                config = load_config(
                    EXAMPLES / f"train_{preset}.yaml",
                    [f"data.path={dataset}", "data.n_train=950", "data.n_valid=50", f"training.max_minutes={args.minutes}"],
                )
                print(f"\n== {dataset} / {preset}: {args.minutes:g} minutes (load average {load:.2f})", flush=True)
                train(config, run, progress=False)
            metrics = evaluate(run / "best.ckpt", dataset, subset="valid", progress=False)
            with (run / "metrics.csv").open() as handle:
                history = list(csv.DictReader(handle))
            last = history[-1]
            structures = 950 * int(last["epoch"])
            rows.append(
                f"| {dataset} | {preset} | {float(last['time_s']) / 60:.1f} | {last['epoch']} | {last['step']} | "
                f"{structures / float(last['time_s']):.1f} | {metrics['energy_mae_meV']:.1f} | "
                f"{metrics['energy_mae_meV_atom']:.2f} | {metrics['forces_mae_meV_A']:.1f} |"
            )
    table = "\n".join(
        [
            f"Budget {args.minutes:g} min per run; 950 training / 50 held-back frames; float32; "
            f"{os.cpu_count()} cores; load average now {os.getloadavg()[0]:.2f}",
            "",
            "| data | preset | minutes | epochs | steps | structures/s | energy MAE (meV) | (meV/atom) | force MAE (meV/Å) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
