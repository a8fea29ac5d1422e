"""Langevin MD of a saved peer model through ASE, for stability.py; run inside the peer's venv.

    python peer_md.py --model aspirin.model --structure start.extxyz --out RUN --steps 200000 \
        --timestep 0.5 --temperature 500 --friction 1 --interval 10 --chunk-steps 2000 --seed 0

--model: a model saved with torch.save (as mace_run_train saves it), run with the package's
ASE calculator (MACECalculator). ase.md.langevin.Langevin at --temperature with --friction (1/ps),
without removing the centre-of-mass motion (so that 3N degrees of freedom hold, as in the OpenMM
runs). Writes RUN/chunk-<last step>.npz every --chunk-steps steps: positions (frames, atoms, 3)
in Å and kinetic temperatures (K) every --interval steps, the steps of the frames, the wall time of
the MD, and the momenta for the next start; an existing run continues from its last chunk (new
random numbers for the thermostat, drawn from the seed and the step). Stops early, recording why,
at a non-finite position or energy. This script does not import so3k.
"""

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def load_calculator(path, dtype):
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=str(path), device="cpu", default_dtype=dtype)


def save_chunk(out, last, **arrays):
    tmp = out / f"chunk-{last:010d}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, out / f"chunk-{last:010d}.npz")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--structure", type=Path, required=True, help="the starting structure (extxyz)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True, help="the step to reach (counted from the start of the run)")
    parser.add_argument("--chunk-steps", type=int, default=2000)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--friction", type=float, default=1.0, help="1/ps")
    parser.add_argument("--interval", type=int, default=10, help="steps between frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import ase.io
    import torch
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    atoms = ase.io.read(args.structure)
    chunks = sorted(args.out.glob("chunk-*.npz"))
    done = 0
    if chunks:
        last = np.load(chunks[-1])
        if str(last["stopped"]):
            print(json.dumps({"done": int(last["end_step"]), "stopped": str(last["stopped"])}))
            return 0
        done = int(last["end_step"])
        atoms.positions = last["last_positions"]
        atoms.set_momenta(last["momenta"])
    else:
        MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=np.random.default_rng([args.seed, 0]))
    atoms.calc = load_calculator(args.model, args.dtype)
    dynamics = Langevin(atoms, args.timestep * units.fs, temperature_K=args.temperature,
                        friction=args.friction / (1000 * units.fs), fixcm=False, rng=np.random.default_rng([args.seed, done + 1]))
    stopped = ""
    while done < args.steps:
        end = min(args.steps, done + args.chunk_steps)
        positions, temperatures, steps = [], [], []
        step = done
        start = time.perf_counter()
        while step < end:
            n = min(args.interval, end - step)
            try:
                dynamics.run(n)
                energy = atoms.get_potential_energy()
            except Exception as error:  # noqa: BLE001  (the model's or the neighbour list's refusal of a blown-up structure)
                stopped = json.dumps({"kind": "stopped", "detail": f"{type(error).__name__}: {error}"[:200], "step": step + n})
                step += n
                break
            step += n
            if not (np.all(np.isfinite(atoms.positions)) and np.isfinite(energy)):
                stopped = json.dumps({"kind": "nan", "detail": "non-finite positions or energy", "step": step})
                break
            positions.append(atoms.positions.copy())
            temperatures.append(atoms.get_temperature())
            steps.append(step)
        wall = time.perf_counter() - start
        save_chunk(args.out, step, positions=np.array(positions, dtype=np.float32).reshape(-1, len(atoms), 3),
                   temperatures=np.array(temperatures), steps=np.array(steps, dtype=np.int64), wall_s=wall,
                   n_steps=step - done, end_step=step, stopped=stopped, last_positions=atoms.positions,
                   momenta=atoms.get_momenta(), checkpoint=np.zeros(0, dtype=np.uint8))
        done = step
        if stopped:
            break
    print(json.dumps({"done": done, "stopped": stopped}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
