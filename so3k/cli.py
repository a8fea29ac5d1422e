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

    demo = commands.add_parser("demo", help="the main job on bundled data (see README)")
    demo.set_defaults(func=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from so3k.demo import run_demo

    return run_demo()


def main(argv: list[str] | None = None) -> int:
    from so3k.data.generate.sink import ResumeError
    from so3k.data.validate import DataError

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = " ".join(["so3k", *argv])
    try:
        return int(args.func(args) or 0)
    except (DataError, ResumeError, FileNotFoundError, ValueError, ImportError) as err:
        print(f"so3k: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("so3k: interrupted; generators can continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
