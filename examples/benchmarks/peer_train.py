"""Train one peer model (so3krates-torch, MACE, NequIP) within a wall-clock budget; run inside the peer's venv.

    python peer_train.py --model mace-small --train train.extxyz --valid valid.extxyz \
        --test test.extxyz --minutes 4 --threads 1

The accuracy benchmark (accuracy.py) writes the three files once per data set, so that every
model trains, selects and is scored on the same frames. Prints one JSON line on stdout: test
errors of the selected weights, parameter count, the validation curve [(seconds, force MAE)],
steps, epochs, the settings and package versions; everything the packages print goes to stderr.
This script does not import so3k: the peers' pins conflict with ours.

The recipe is the one so3k's example configs use, so that the comparison is of the models:
loss 0.01 MSE(E) + 0.99 MSE(F) in eV and eV/Å (energy per structure), Adam, an exponential
moving average of the weights (decay 0.99, ramped up over the first steps) that is validated and
kept, the learning rate halved after 25 validations without improvement, stopping at lr < 1e-5
or after 100 validations without improvement. Learning rate, batch size, AMSGrad and gradient
clipping follow each package's own defaults (SETTINGS). Every model gets per-element energy
shifts from a least-squares fit of the training energies on the element counts and an energy
scale of the RMS training force (as mace_run_train and nequip's configs derive them), and the
mean neighbour count of the training frames.

Timing: the clock starts before the frames are read (the graphs of all frames are built once, as
the packages' own trainers do, and count). The model is validated at the end of every epoch and
whenever --valid-every-s seconds have passed since the last validation; the run stops at the
first validation after the budget is spent (so3k's trainer stops after the epoch that passes
the budget).
"""

import argparse
import contextlib
import hashlib
import math
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import ase.io
import numpy as np
import torch
from peer_models import BUILDERS, PACKAGES, SEED, mean_neighbors, print_result

ENERGY_WEIGHT, FORCES_WEIGHT = 0.01, 0.99
COMMON = {"ema_decay": 0.99, "plateau_factor": 0.5, "plateau_patience": 25, "early_stopping_patience": 100, "min_lr": 1e-5}
SETTINGS = {
    # so3k's euclidean2024 recipe for the same architecture
    "so3krates-torch": {"lr": 1e-3, "batch_size": 5, "amsgrad": False, "clip_grad_norm": 1.0},
    # mace_run_train's defaults: lr 0.01, AMSGrad, gradient norm clipped at 10
    "mace-small": {"lr": 1e-2, "batch_size": 5, "amsgrad": True, "clip_grad_norm": 10.0},
    "mace-medium": {"lr": 1e-2, "batch_size": 5, "amsgrad": True, "clip_grad_norm": 10.0},
    # nequip's example configs: Adam, lr 0.01, batch size 5, no clipping
    "nequip": {"lr": 1e-2, "batch_size": 5, "amsgrad": False, "clip_grad_norm": None},
}
EVAL_BATCH = 10


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def labels(frames):
    """Energies [frames] (eV) and forces [atoms, 3] (eV/Å) from the frames' calculator results."""
    energies, forces = [], []
    for k, atoms in enumerate(frames):
        results = atoms.calc.results if atoms.calc is not None else {}
        if "energy" not in results or "forces" not in results:
            raise ValueError(f"frame {k} has no energy or forces")
        energies.append(float(results["energy"]))
        forces.append(np.asarray(results["forces"], dtype=float))
    return np.array(energies), forces


def training_stats(frames, energies, forces, zs):
    """Per-element energy shifts (least squares on the element counts), force RMS, neighbours."""
    counts = np.array([[np.count_nonzero(a.numbers == z) for z in zs] for a in frames], dtype=float)
    # minimum-norm solution when the composition never varies (one molecule): only the sum is fixed
    e0s, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    scale = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
    return {"avg_num_neighbors": mean_neighbors(frames), "e0s": [float(e) for e in e0s], "scale": scale if scale > 0 else 1.0}


class Split:
    """A split's graphs (built once), labels, and batches of them."""

    def __init__(self, peer, frames, dtype):
        self.items = peer.graphs(frames)
        self.energy, forces = labels(frames)
        self.forces = forces
        self.n_atoms = np.array([len(a) for a in frames], dtype=float)
        self.peer, self.dtype = peer, dtype

    def __len__(self):
        return len(self.items)

    def batch(self, indices):
        indices = list(indices)
        batch = self.peer.collate([self.items[k] for k in indices])
        energy = torch.tensor(self.energy[indices], dtype=self.dtype)
        forces = torch.tensor(np.concatenate([self.forces[k] for k in indices]), dtype=self.dtype)
        return batch, energy, forces, self.n_atoms[indices]


def errors(peer, split):
    """Energy and force errors (meV, meV/atom, meV/Å) and the loss over a split, current weights."""
    peer.model.eval()
    abs_e = sq_e = abs_ea = sq_ea = abs_f = sq_f = 0.0
    structures = components = 0
    for start in range(0, len(split), EVAL_BATCH):
        batch, energy, forces, n_atoms = split.batch(range(start, min(start + EVAL_BATCH, len(split))))
        e, f = peer.call(batch, False)
        de = (e.detach().double() - energy.double()).numpy()
        df = (f.detach().double() - forces.double()).numpy()
        abs_e += np.abs(de).sum()
        sq_e += (de**2).sum()
        abs_ea += np.abs(de / n_atoms).sum()
        sq_ea += ((de / n_atoms) ** 2).sum()
        abs_f += np.abs(df).sum()
        sq_f += (df**2).sum()
        structures += len(de)
        components += df.size
    return {
        "loss": ENERGY_WEIGHT * sq_e / structures + FORCES_WEIGHT * sq_f / components,
        "energy_mae_meV": 1e3 * abs_e / structures, "energy_rmse_meV": 1e3 * math.sqrt(sq_e / structures),
        "energy_mae_meV_atom": 1e3 * abs_ea / structures, "energy_rmse_meV_atom": 1e3 * math.sqrt(sq_ea / structures),
        "forces_mae_meV_A": 1e3 * abs_f / components, "forces_rmse_meV_A": 1e3 * math.sqrt(sq_f / components),
    }


class EMA:
    """theta_ema <- d theta_ema + (1 - d) theta after every step, d = min(decay, (1 + n) / (10 + n))."""

    def __init__(self, model, decay):
        self.decay, self.updates = decay, 0
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self):
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for s, p in zip(self.shadow, self.params):
            s.mul_(d).add_(p.detach(), alpha=1.0 - d)

    @contextlib.contextmanager
    def applied(self):
        """The EMA weights in the model for the duration (validation, saving the best)."""
        raw = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for s, p in zip(self.shadow, self.params):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for r, p in zip(raw, self.params):
                    p.copy_(r)


def run(args):
    torch.set_num_threads(args.threads)
    dtype = torch.float32
    torch.set_default_dtype(dtype)  # e3nn and the data pipelines build their tensors in the default dtype
    torch.manual_seed(SEED)
    settings = {**COMMON, **SETTINGS[args.model]}
    if args.lr is not None:
        settings["lr"] = args.lr
    if args.batch_size is not None:
        settings["batch_size"] = args.batch_size
    budget_s = args.minutes * 60.0
    valid_every_s = args.valid_every_s if args.valid_every_s is not None else max(budget_s / 8.0, 5.0)

    start = time.perf_counter()
    frames = {name: ase.io.read(path, index=":") for name, path in (("train", args.train), ("valid", args.valid), ("test", args.test))}
    zs = tuple(sorted({int(z) for a in frames["train"] for z in a.numbers}))
    for name in ("valid", "test"):
        unknown = sorted({int(z) for a in frames[name] for z in a.numbers} - set(zs))
        if unknown:
            raise ValueError(f"elements {unknown} of the {name} frames are not in the training frames")
    energies, forces = labels(frames["train"])
    stats = training_stats(frames["train"], energies, forces, zs)
    peer = BUILDERS[args.model](zs, dtype, stats)
    model = peer.model
    params = sum(p.numel() for p in model.parameters())
    train, valid = Split(peer, frames["train"], dtype), Split(peer, frames["valid"], dtype)

    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=settings["lr"], amsgrad=settings["amsgrad"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=settings["plateau_factor"], patience=settings["plateau_patience"])
    ema = EMA(model, settings["ema_decay"])
    generator = torch.Generator().manual_seed(SEED)
    curve, best, best_state = [], math.inf, None
    bad, step, epoch, last_valid, reason = 0, 0, 0, time.perf_counter(), ""

    def validate():
        nonlocal best, best_state, bad, last_valid
        with ema.applied():
            m = errors(peer, valid)
            if m["loss"] < best:  # False for NaN
                best, bad = m["loss"], 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
        scheduler.step(m["loss"])
        last_valid = time.perf_counter()
        curve.append([round(last_valid - start, 2), m["forces_mae_meV_A"]])
        print(f"{curve[-1][0]:8.1f} s  epoch {epoch}  step {step}  valid forces MAE {m['forces_mae_meV_A']:.1f} meV/Å", file=sys.stderr, flush=True)

    def stop():
        nonlocal reason
        if time.perf_counter() - start >= budget_s:
            reason = f"budget of {args.minutes:g} min used"
        elif optimizer.param_groups[0]["lr"] < settings["min_lr"]:
            reason = "learning rate below min_lr"
        elif bad >= settings["early_stopping_patience"]:
            reason = "no validation improvement"
        return bool(reason)

    while not reason:
        model.train()
        order = torch.randperm(len(train), generator=generator).tolist()
        for first in range(0, len(order), settings["batch_size"]):
            batch, energy, ref_forces, _ = train.batch(order[first : first + settings["batch_size"]])
            optimizer.zero_grad()
            e, f = peer.call(batch, True)  # nequip returns float64 outputs also from a float32 model
            loss = ENERGY_WEIGHT * ((e - energy.to(e.dtype)) ** 2).mean() + FORCES_WEIGHT * ((f - ref_forces.to(f.dtype)) ** 2).mean()
            loss.backward()
            if settings["clip_grad_norm"] is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings["clip_grad_norm"])
            if torch.isfinite(loss):
                optimizer.step()
                ema.update()
            step += 1
            if time.perf_counter() - last_valid >= valid_every_s and first + settings["batch_size"] < len(order):
                validate()
                model.train()
                if stop():
                    break
        else:
            epoch += 1
            validate()
            stop()
    elapsed = time.perf_counter() - start

    if best_state is None:
        raise RuntimeError("no finite validation loss: training diverged")
    model.load_state_dict(best_state)
    if args.save is not None:  # the whole module, as the packages' own trainers save it (peer_md.py loads it)
        torch.save(model, args.save)
    test = errors(peer, Split(peer, frames["test"], dtype))
    test.pop("loss")
    versions = {}
    for name in PACKAGES[args.model]:
        with contextlib.suppress(PackageNotFoundError):
            versions[name] = version(name)
    return {
        "model": args.model, "params": params, "test": test, "curve": curve, "time_s": round(elapsed, 2),
        "epochs": epoch, "steps": step, "stopped": reason, "threads": args.threads,
        "frames": {name: len(f) for name, f in frames.items()},
        "digests": {name: digest(getattr(args, name)) for name in ("train", "valid", "test")},
        "settings": {**settings, "energy_weight": ENERGY_WEIGHT, "forces_weight": FORCES_WEIGHT, "valid_every_s": valid_every_s,
                     "e0s": dict(zip(map(int, zs), stats["e0s"])), "scale": stats["scale"],
                     "avg_num_neighbors": stats["avg_num_neighbors"]},
        "versions": versions,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(BUILDERS), required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--valid", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save", type=Path, default=None, help="write the selected model here (torch.save of the module)")
    parser.add_argument("--valid-every-s", type=float, default=None, help="validate at least this often (default budget / 8, at least 5 s)")
    parser.add_argument("--lr", type=float, default=None, help="override the model's learning rate")
    parser.add_argument("--batch-size", type=int, default=None, help="override the model's batch size")
    print_result(run, parser.parse_args())


if __name__ == "__main__":
    main()
