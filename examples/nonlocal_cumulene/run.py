"""The non-local experiment: a cumulene's terminal CH2 torsion, seen from farther than any local
model can reach.

    python examples/nonlocal_cumulene/run.py                 # both trainings (25 min each), then the scans
    python examples/nonlocal_cumulene/run.py --minutes 40    # longer training (per model)
    python examples/nonlocal_cumulene/run.py --evaluate-only # redo the plot and table
    python examples/nonlocal_cumulene/run.py --evaluate-only --models examples/nonlocal_cumulene/models
                                                             # the shipped models, no training
    # the two trainings side by side, one core each, then the evaluation:
    OMP_NUM_THREADS=1 python examples/nonlocal_cumulene/run.py --train-only local --minutes 25 &
    OMP_NUM_THREADS=1 python examples/nonlocal_cumulene/run.py --train-only nonlocal --minutes 25
    python examples/nonlocal_cumulene/run.py --evaluate-only

Two euclidean2024 models (2 layers, r_c = 4 Å, F = 64) are trained on the shipped cumulene set
(GFN2-xTB; chains of 3-10, 13, 14, 17, 18, 21 and 22 carbons with one CH2 end rotated) with the same budget:
`local` and `nonlocal` (the same model with non-local SPHC attention, dynamic threshold). Both are
evaluated on the shipped rigid torsion scans (3-24 carbons, rotation 0-90° from the minimum).
For chains whose two end groups are farther apart than 2 x layers x r_c = 16 Å, no atom's
energy in the local model depends on both ends, so it cannot see the torsion: its best is a
flat profile at the mean. Writes `local/best.ckpt`, `nonlocal/best.ckpt`, `scan.png` and
`scan.md` under --out; `--ship DIR` also writes the two models, without their optimiser state,
as DIR/local.ckpt and DIR/nonlocal.ckpt.
"""

import argparse
from pathlib import Path

import numpy as np

from so3k.data.generate.cumulene import TRAIN_LENGTHS  # the shipped set's lengths

COMMON = [
    "model.preset=euclidean2024", "model.layers=2", "model.cutoff=4.0", "model.features=64",
    "data.path=cumulene", "data.n_train=1350", "data.n_valid=150",
    "training.batch_size=10", "training.lr=2e-3", "training.plateau_patience=10",
    "training.energy_weight=0.1", "training.forces_weight=0.9",
]
MODELS = {"local": [], "nonlocal": ["model.nonlocal_attention=dynamic"]}


def train_models(out: Path, minutes: float, names) -> None:
    from so3k.train import load_config, train

    for name in names:
        extra = MODELS[name]
        print(f"== training the {name} model for {minutes:g} minutes", flush=True)
        config = load_config(None, COMMON + extra + [f"training.max_minutes={minutes}"])
        train(config, out / name, progress=False)


def end_gap(atoms) -> float:
    """Smallest distance between the two end groups (terminal carbon and its two hydrogens)."""
    n = len(atoms) - 4
    first = atoms.positions[[0, n, n + 1]]
    last = atoms.positions[[n - 1, n + 2, n + 3]]
    return float(np.linalg.norm(first[:, None] - last[None], axis=-1).min())


def predict(checkpoint: Path, structures) -> np.ndarray:
    from so3k.calculators import So3kratesCalculator
    from so3k.checkpoint import model_from_checkpoint

    calculator = So3kratesCalculator(model=model_from_checkpoint(checkpoint))
    energies = []
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy())
    return np.array(energies)


def ship(out: Path, models: Path) -> None:
    """The best checkpoints without optimiser state or raw weights: what evaluation and export read."""
    from so3k.checkpoint import load_checkpoint, save_checkpoint

    models.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        content = load_checkpoint(out / name / "best.ckpt")
        slim = {key: value for key, value in content.items() if key not in ("raw_state_dict", "training_state")}
        save_checkpoint(models / f"{name}.ckpt", slim)
        print(f"wrote {models / f'{name}.ckpt'}")


def checkpoints(out: Path, models: Path = None) -> dict:
    """Each model's checkpoint: DIR/<name>.ckpt of shipped models, else the run's best.ckpt."""
    return {name: (models / f"{name}.ckpt" if models else out / name / "best.ckpt") for name in MODELS}


def evaluate(out: Path, reach: float, models: Path = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from so3k.data.io import read_frames
    from so3k.datasets import path

    frames = read_frames(path("cumulene-scan"), info_keys=("n_carbons", "rotation"))
    structures = frames.to_atoms()
    lengths, rotation = frames.info["n_carbons"].astype(int), frames.info["rotation"]
    energies = {"reference": frames.energy}
    for name, checkpoint in checkpoints(out, models).items():
        energies[name] = predict(checkpoint, structures)

    rows, curves = [], {}
    for n in sorted(set(lengths)):
        k = np.flatnonzero(lengths == n)
        k = k[np.argsort(rotation[k])]
        gap = end_gap(structures[k[0]])
        ref = energies["reference"][k]
        barrier = ref.max() - ref.min()
        row = {"n": n, "gap": gap, "far": gap > reach, "trained": n in TRAIN_LENGTHS, "barrier": barrier}
        for name in MODELS:
            pred = energies[name][k]
            # shape error: both profiles relative to their own mean (a flat profile scores mean |ref - <ref>|)
            row[name] = np.abs((pred - pred.mean()) - (ref - ref.mean())).mean() / barrier
            row[name + "_range"] = pred.max() - pred.min()
        rows.append(row)
        curves[n] = (rotation[k], {name: energies[name][k] for name in energies})

    lines = [
        f"Scan error relative to the barrier: mean |ΔE_model − ΔE_ref| / barrier, with each profile taken "
        f"relative to its own mean (0 = exact shape; a flat profile scores the mean deviation of the reference). "
        f"'far': the end groups are more than {reach:g} Å apart, beyond any local model's reach.",
        "",
        "| carbons | end gap (Å) | far | in training | barrier (eV) | local: error / barrier | local: range (eV) "
        "| non-local: error / barrier | non-local: range (eV) |",
        "|---:|---:|:---:|:---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['gap']:.1f} | {'yes' if r['far'] else ''} | {'yes' if r['trained'] else ''} | "
            f"{r['barrier']:.3f} | {r['local']:.2f} | {r['local_range']:.3f} | {r['nonlocal']:.2f} | {r['nonlocal_range']:.3f} |"
        )
    far = [r for r in rows if r["far"]]
    if far:
        lines += ["", f"Far chains ({', '.join(str(r['n']) for r in far)}): mean error / barrier "
                  f"local {np.mean([r['local'] for r in far]):.2f}, non-local {np.mean([r['nonlocal'] for r in far]):.2f}."]
    unseen = [r for r in far if not r["trained"]]
    if unseen:
        lines += [f"Far chains never trained on ({', '.join(str(r['n']) for r in unseen)}): mean error / barrier "
                  f"local {np.mean([r['local'] for r in unseen]):.2f}, non-local {np.mean([r['nonlocal'] for r in unseen]):.2f}; "
                  f"worst non-local {max(r['nonlocal'] for r in unseen):.2f}."]
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scan.md").write_text(table + "\n")

    shown = [n for n in curves if n in (5, 8, 11, 12)] + [r["n"] for r in far]
    columns = 4
    rows_n = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(3.2 * columns, 2.7 * rows_n), squeeze=False, sharex=True)
    styles = {"reference": ("k", "-", "GFN2-xTB"), "local": ("tab:blue", "--", "local"), "nonlocal": ("tab:red", "-.", "non-local")}
    for ax, n in zip(axes.flat, shown):
        angles, profile = curves[n]
        for name, (color, style, label) in styles.items():
            ax.plot(angles, profile[name] - profile[name].min(), style, color=color, label=label)
        gap = end_gap(structures[np.flatnonzero(lengths == n)[0]])
        ax.set_title(f"C{n}H4, ends {gap:.0f} Å apart" + (" (far)" if gap > reach else ""), fontsize=9)
        ax.set_xlabel("rotation of one CH2 (°)")
        ax.set_ylabel("E − E(min) (eV)")
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scan.png", dpi=120)
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=25.0, help="training budget per model (default 25; 8 was not enough)")
    parser.add_argument("--out", type=Path, default=Path("runs/nonlocal_cumulene"))
    parser.add_argument("--evaluate-only", action="store_true", help="use the checkpoints already in --out")
    parser.add_argument("--train-only", choices=list(MODELS), help="train just this model (e.g. two processes side by side)")
    parser.add_argument("--models", type=Path, help="evaluate DIR/local.ckpt and DIR/nonlocal.ckpt (e.g. the shipped models/) instead of --out's runs")
    parser.add_argument("--ship", type=Path, metavar="DIR", help="after evaluating, write the two best models without optimiser state to DIR")
    args = parser.parse_args()
    if args.train_only:
        train_models(args.out, args.minutes, [args.train_only])
        return
    if not args.evaluate_only:
        train_models(args.out, args.minutes, list(MODELS))
    reach = 2 * 2 * 4.0  # 2 x layers x r_c
    print(evaluate(args.out, reach, args.models))
    if args.ship:
        ship(args.out, args.ship)
    print(f"\nplot {args.out / 'scan.png'}; table {args.out / 'scan.md'}")


if __name__ == "__main__":
    main()
