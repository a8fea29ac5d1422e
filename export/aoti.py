"""Compiled packages (.pt2, AOTInductor): the force field of one structure compiled ahead of time
into native code for the CPU or a CUDA GPU, beside the TorchScript export.

    so3k export runs/aspirin/best.ckpt --format aoti -o model.pt2 [--device cuda] [--dtype float64]

One package serves every front end: the ASE calculator, OpenMM (through openmm.PythonForce) and
LAMMPS. It works in the model's own units (Å, eV); each engine converts at its boundary.

    inputs   positions (N,3), species (N,) int64, idx_i (P,) int64, idx_j (P,) int64,
             offsets (P,3) integer cell offsets as floats, cell (3,3) rows = lattice vectors
             (zeros for a molecule), n_owned () int64: atoms [0, n_owned) own the energy
             (N for a whole structure; LAMMPS ghosts come after the owned atoms)
    outputs  energy (1,), energies (N,) (zero beyond n_owned), forces (N,3), virial (3,3)

How it is made: make_fx traces so3k.forces.ForceField with its autograd unfolded into one graph
(energy, forces and the strain derivative together), torch.export makes the numbers of atoms and
pairs dynamic, and AOTInductor compiles the result. The package is checked against the eager
model at export time on two structures of other sizes (a triclinic periodic box and a molecule).
A package runs only with the torch version and the kind of device it was compiled for; the
loader says so before it tries.
"""

import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from so3k import keys
from so3k.doctor import compiler_check
from so3k.errors import ExportError, MissingFileError
from so3k.forces import ForceField
from so3k.model import So3krates

from .metadata import FORMAT, FORMAT_VERSION, METADATA_FILE, build_metadata

INPUTS = ("positions", "species", "idx_i", "idx_j", "offsets", "cell", "n_owned")
OUTPUTS = ("energy", "energies", "forces", "virial")
SUFFIX = ".pt2"
MAX_SIZE = 2**30  # atoms and pairs; torch.export needs a bound to drop the layers' chunking guard


class Entry(nn.Module):
    """What is compiled: ForceField on one structure, with the virial, in static-shape form."""

    def __init__(self, model: So3krates):
        super().__init__()
        self.force_field = ForceField(model)

    def forward(self, positions: Tensor, species: Tensor, idx_i: Tensor, idx_j: Tensor, offsets: Tensor, cell: Tensor,
                n_owned: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.force_field(positions, species, idx_i, idx_j, offsets, cell[None], torch.zeros_like(species), 1,
                               compute_virial=True, n_owned=n_owned)
        return out[keys.ENERGY], out[keys.ENERGIES], out[keys.FORCES], out[keys.VIRIAL][0]


def sample_inputs(model: So3krates, kind: str, device: torch.device) -> Tuple[Tensor, ...]:
    """Inputs of a seeded structure: 'trace' (13 atoms, triclinic periodic box thinner than two
    cutoffs, so atoms see their own images), 'box' (29 atoms, another triclinic box) or 'molecule'
    (9 atoms, no cell). Sizes differ from each other and from the model's widths, so that the
    traced graph cannot have specialised on them."""
    from ase import Atoms

    from so3k.graph import build_graph

    rng = np.random.default_rng({"trace": 1, "box": 2, "molecule": 3}[kind])
    n = {"trace": 13, "box": 29, "molecule": 9}[kind]
    elements = list(model.config.elements)
    cutoff = float(model.cutoff)
    if kind == "molecule":
        positions = grid_points(rng, n, 1.3)
        atoms = Atoms([elements[k % len(elements)] for k in range(n)], positions=positions)
    else:
        width = 0.9 * cutoff if kind == "trace" else 1.3 * cutoff
        cell = np.array([[width, 0.0, 0.0], [0.3 * width, width, 0.0], [-0.2 * width, 0.25 * width, width]])
        fractional = (grid_points(rng, n, 1.0) + 0.5) / np.ceil(n ** (1 / 3))  # inside the cell, jittered
        atoms = Atoms([elements[k % len(elements)] for k in range(n)], scaled_positions=fractional, cell=cell, pbc=True)
    g = build_graph([atoms], elements, cutoff, model.expand.dtype, device, min_distance=0.0)
    return (g.positions, g.species, g.idx_i, g.idx_j, g.offsets.to(model.expand.dtype), g.cell[0],
            torch.tensor(n, dtype=torch.long, device=device))


def grid_points(rng: np.random.Generator, n: int, spacing: float) -> np.ndarray:
    """n points on a jittered cubic grid (no two closer than about half the spacing)."""
    side = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n].astype(float)
    return (grid + rng.uniform(-0.2, 0.2, grid.shape)) * spacing


def export_aoti(model: So3krates, path: Union[str, Path], device: Union[str, torch.device] = "cpu",
                isolated: Optional[bool] = None) -> Path:
    """Compile `model` (an inference copy in its export dtype, which this moves to `device` and
    sets to one pair chunk) into the package `path` (.pt2) for `device`, check it against eager
    and return the path. Takes about 40 s on 2 CPU cores.
    isolated: check in a child process (default: on CUDA; see check_against_eager)."""
    from torch._inductor import aoti_compile_and_package
    from torch.export import Dim
    from torch.fx.experimental.proxy_tensor import make_fx

    path = Path(path)
    device = torch.device(device)
    if path.suffix != SUFFIX:
        raise ExportError(f"a compiled package is a {SUFFIX} file: name it e.g. {path.with_suffix(SUFFIX).name}")
    if model.config.is_nonlocal:
        raise ExportError(
            "the compiled export does not take non-local models yet (their all-pairs attention has data-dependent "
            "shapes): export this model as TorchScript (--format torchscript)"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ExportError("--device cuda needs a visible CUDA GPU at export time: the package is compiled for it")
    if device.type == "cpu" and compiler_check()[0] != "ok":
        raise ExportError("compiling for the CPU needs a C++ compiler (g++ or clang++) on PATH: install one, e.g. apt install g++")
    model = model.to(device)
    model.pair_chunk = MAX_SIZE  # one chunk: the layers' split needs no guard on the number of pairs
    entry = Entry(model).eval()
    example = sample_inputs(model, "trace", device)
    # make_fx unfolds the autograd of the forces and virial into the graph; the weights stay real
    # tensors (constants of the package), the inputs become symbolic.
    graph = make_fx(entry, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*example)
    atoms, pairs = Dim("atoms", min=2, max=MAX_SIZE), Dim("pairs", min=1, max=MAX_SIZE)
    dynamic = ({0: atoms}, {0: atoms}, {0: pairs}, {0: pairs}, {0: pairs}, None, None)
    try:
        program = torch.export.export(graph, example, dynamic_shapes=dynamic, strict=False)
    except Exception as error:
        raise ExportError(f"torch.export could not make atoms and pairs dynamic: {str(error).splitlines()[0][:300]}") from error
    meta = build_metadata(
        model, "aoti", {"length": "Angstrom", "energy": "eV", "forces": "eV/Angstrom", "virial": "eV"},
        package="aotinductor", device=device.type, inputs=list(INPUTS), outputs=list(OUTPUTS),
        ghost_cutoff=model.config.receptive_field,  # LAMMPS keeps ghosts out to it
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.pt2")  # a failed compile leaves no half-written package behind
    try:
        aoti_compile_and_package(program, package_path=str(partial),
                                 inductor_configs={"aot_inductor.metadata": {METADATA_FILE: json.dumps(meta)}})
    except Exception as error:  # a compiler error, a full disk ...: say so, leave nothing behind
        partial.unlink(missing_ok=True)
        last = (str(error).strip().splitlines() or [type(error).__name__])[-1][:300]
        raise ExportError(f"AOTInductor could not compile the model ({type(error).__name__}: {last}); "
                          "use the TorchScript export (--format torchscript)") from error
    try:
        check_against_eager(partial, entry, model, device, isolated=device.type == "cuda" if isolated is None else isolated)
    except ExportError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return path


def check_against_eager(path: Path, entry: Entry, model: So3krates, device: torch.device, isolated: bool) -> Dict[str, float]:
    """Largest relative differences of energy, forces and virial between the package and eager on
    two structures it was not traced on; ExportError beyond float rounding of the dtype.
    isolated: run the package in a child process, so that a package that crashes when loaded
    (seen with CUDA packages on torch 2.11) becomes an ExportError, not a dead exporter."""
    cases = []
    for kind in ("box", "molecule"):
        inputs = sample_inputs(model, kind, device)
        cases.append((kind, [t.cpu() for t in inputs], [t.detach().cpu() for t in entry(*inputs)]))
    if isolated:
        with tempfile.TemporaryDirectory() as folder:
            torch.save(cases, Path(folder) / "cases.pt")
            done = subprocess.run([sys.executable, "-X", "faulthandler", "-c",
                                   "import sys; from so3k.export.aoti import check_main; check_main(*sys.argv[1:])",
                                   str(path), device.type, str(Path(folder) / "cases.pt")], capture_output=True, text=True)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["no message"]
            # faulthandler prints the crashing thread's stack, innermost frame first
            current = [k for k, line in enumerate(lines) if line.startswith("Current thread")]
            where = lines[current[0] + 1].strip() if current and current[0] + 1 < len(lines) else ""
            crash = (f"it crashed (signal {-done.returncode}{'; in ' + where if where else ''})" if done.returncode < 0
                     else f"it failed ({lines[-1][:300]})")
            raise ExportError(f"the package compiled, but {crash} when loaded and run; use the TorchScript export (torch {torch.__version__})")
        errors = json.loads(done.stdout.strip().splitlines()[-1])
    else:
        errors = package_errors(CompiledForceField(path, device), cases)
    tolerance = 1e-8 if model.expand.dtype == torch.float64 else 2e-4
    for (kind, name), error in ((tuple(key.split("/")), value) for key, value in errors.items()):
        if not error <= tolerance:
            raise ExportError(
                f"the compiled package disagrees with the model on a test structure ({kind}): {name} differs by "
                f"{error:.2e} relative (tolerance {tolerance:.0e}); use the TorchScript export and report this torch version "
                f"({torch.__version__})"
            )
    return errors


def package_errors(compiled: "CompiledForceField", cases) -> Dict[str, float]:
    """{"case/output": largest difference relative to the largest expected value}."""
    errors = {}
    for kind, inputs, expected in cases:
        got = compiled.run(*inputs)
        for name, a, b in zip(OUTPUTS, got, expected):
            scale = float(b.abs().max()) or 1.0
            errors[f"{kind}/{name}"] = float((a.cpu() - b).abs().max()) / scale  # NaN stays NaN: refused
    return errors


def check_main(path: str, device: str, cases: str) -> None:
    """The child process of an isolated check: prints package_errors as one JSON line."""
    print(json.dumps(package_errors(CompiledForceField(path, device), torch.load(cases))))


def read_metadata(path: Union[str, Path]) -> Dict[str, Any]:
    """The so3k metadata and AOTInductor's own keys of a package, read without loading its code."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"compiled package {path} not found")
    if not zipfile.is_zipfile(path):
        raise ExportError(f"{path} is not a compiled package (.pt2 from `so3k export --format aoti`)")
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("wrapper_metadata.json")]
        if not names:
            raise ExportError(f"{path} is not an AOTInductor package: export it with `so3k export CKPT --format aoti -o model.pt2`")
        raw = json.loads(archive.read(names[0]))
    if METADATA_FILE not in raw:
        raise ExportError(f"{path} is an AOTInductor package but not one made by `so3k export`: it has no {METADATA_FILE}")
    meta = json.loads(raw[METADATA_FILE])
    if meta.get("format") != FORMAT or meta.get("engine") != "aoti":
        raise ExportError(f"{path}: its metadata does not describe a so3k compiled package")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ExportError(f"{path} was made by a newer so3k ({meta.get('so3k_version')}): upgrade so3k")
    meta["aoti"] = {k: v for k, v in raw.items() if k.startswith("AOTI_")}
    return meta


def major_minor(version: str) -> str:
    match = re.match(r"(\d+)\.(\d+)", version)
    return f"{match.group(1)}.{match.group(2)}" if match else version


class CompiledForceField:
    """A .pt2 package called like so3k.forces.ForceField (one structure): the ASE calculator,
    OpenMM's PythonForce and the benchmarks use it in place of the eager model.

    Refuses, before loading, a package made for another kind of device or another torch version
    (AOTInductor code is tied to both), saying what to do."""

    def __init__(self, path: Union[str, Path], device: Union[str, torch.device, None] = None):
        from torch._inductor import aoti_load_package

        self.path = Path(path)
        self.metadata = read_metadata(self.path)
        built_for = self.metadata.get("device", "cpu")
        self.device = torch.device(device if device is not None else built_for)
        if self.device.type != built_for:
            raise ExportError(
                f"{self.path} was compiled for {built_for}, not {self.device.type}: run it on {built_for}, or export "
                f"again with --device {self.device.type}"
            )
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ExportError(f"{self.path} was compiled for CUDA, and torch sees no CUDA GPU here")
        made_with = self.metadata.get("torch_version", "?")
        if major_minor(made_with) != major_minor(torch.__version__):
            raise ExportError(
                f"{self.path} was compiled with torch {made_with}; this is torch {torch.__version__}, which cannot run it: "
                f"export the checkpoint again here, or use torch {major_minor(made_with)}"
            )
        index = (self.device.index or 0) if self.device.type == "cuda" else -1
        try:
            self.package = aoti_load_package(str(self.path), device_index=index)
        except Exception as error:
            raise ExportError(f"{self.path} could not be loaded ({type(error).__name__}: {str(error)[:200]})") from error
        self.dtype = getattr(torch, self.metadata["dtype"])
        self.elements = list(self.metadata["elements"])
        self.cutoff = float(self.metadata["cutoff"])
        self.nonlocal_attention = bool(self.metadata.get("nonlocal_attention", False))

    def run(self, positions: Tensor, species: Tensor, idx_i: Tensor, idx_j: Tensor, offsets: Tensor, cell: Tensor,
            n_owned: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """The package's own call (INPUTS → OUTPUTS), inputs converted to its dtype and device."""
        d, f = self.device, self.dtype
        return tuple(self.package(positions.to(d, f), species.to(d), idx_i.to(d), idx_j.to(d), offsets.to(d, f),
                                  cell.to(d, f), n_owned.to(d)))

    def __call__(self, positions: Tensor, species: Tensor, idx_i: Tensor, idx_j: Tensor, offsets: Tensor, cell: Tensor,
                 batch: Optional[Tensor] = None, num_graphs: int = 1, compute_stress: bool = False,
                 compute_forces: bool = True, n_local: int = -1, min_distance: float = 0.0) -> Dict[str, Tensor]:
        if num_graphs != 1:
            raise ExportError(f"a compiled package takes one structure per call, got {num_graphs}")
        if cell.dim() == 3:
            cell = cell[0]
        n = positions.shape[0] if n_local < 0 else n_local
        if min_distance > 0:
            from so3k.geometry import check_min_distance, pair_shifts

            p = positions.to(self.device, self.dtype)
            check_min_distance(p, idx_i.to(self.device), idx_j.to(self.device),
                               pair_shifts(offsets.to(self.device, self.dtype), cell.to(self.device, self.dtype)), min_distance)
        if idx_i.numel() == 0 or positions.shape[0] < 2:
            raise ExportError(
                "a compiled package needs two atoms and one pair within the cutoff; evaluate isolated atoms with the "
                "checkpoint (So3kratesCalculator('best.ckpt'))"
            )
        energy, energies, forces, virial = self.run(positions, species, idx_i, idx_j, offsets, cell,
                                                    torch.tensor(n, dtype=torch.long))
        out = {keys.ENERGY: energy, keys.ENERGIES: energies[:n] if n_local >= 0 else energies, keys.FORCES: forces,
               keys.VIRIAL: virial[None]}
        if compute_stress:
            volume = torch.abs(torch.linalg.det(cell.to(self.device, self.dtype)))
            if float(volume) > 0:
                out[keys.STRESS] = -virial[None] / volume
        return out
