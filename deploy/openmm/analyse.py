"""Look at a run_md.py trajectory with mdtraj: RMSD to the first frame, radius of gyration and
(optionally) one dihedral angle over time.

    python deploy/openmm/analyse.py runs/md                        # RMSD and radius of gyration
    python deploy/openmm/analyse.py runs/md --dihedral 0 1 2 3     # ... and this dihedral (atom indices)

Writes RUN/analysis.png and prints a short summary.
"""

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the --out folder of run_md.py")
    parser.add_argument("--dihedral", type=int, nargs=4, metavar="I", help="four atom indices (0-based)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mdtraj

    trajectory = next((args.run / f"trajectory.{ext}" for ext in ("dcd", "xtc") if (args.run / f"trajectory.{ext}").exists()), None)
    if trajectory is None or not (args.run / "start.pdb").exists():
        sys.exit(f"analyse.py: {args.run} has no trajectory.dcd/.xtc and start.pdb; run deploy/openmm/run_md.py first")
    traj = mdtraj.load(str(trajectory), top=str(args.run / "start.pdb"))
    time_ps = traj.time if traj.time.any() else np.arange(traj.n_frames, dtype=float)
    panels = [("RMSD to frame 0 (Å)", 10 * mdtraj.rmsd(traj, traj, 0)), ("radius of gyration (Å)", 10 * mdtraj.compute_rg(traj))]
    if args.dihedral:
        angle = np.degrees(mdtraj.compute_dihedrals(traj, [args.dihedral])[:, 0])
        panels.append((f"dihedral {'-'.join(map(str, args.dihedral))} (°)", angle))
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels)), sharex=True)
    for ax, (label, values) in zip(np.atleast_1d(axes), panels):
        ax.plot(time_ps, values)
        ax.set_ylabel(label)
        print(f"{label}: mean {values.mean():.3f}, min {values.min():.3f}, max {values.max():.3f}")
    np.atleast_1d(axes)[-1].set_xlabel("time (ps)" if traj.time.any() else "frame")
    fig.tight_layout()
    fig.savefig(args.run / "analysis.png", dpi=110)
    print(f"{traj.n_frames} frames, {traj.n_atoms} atoms; plot {args.run / 'analysis.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
