"""ASE calculator for So3krates models: energy, forces, per-atom energies, and stress for
fully periodic structures."""

from pathlib import Path
from typing import List, Optional, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from . import keys
from .capabilities import check_supported
from .checkpoint import inference_model
from .errors import InputError
from .forces import ForceField
from .graph import build_graph
from .model import So3krates


class So3kratesCalculator(Calculator):
    """`So3kratesCalculator("run/best.ckpt")` (a checkpoint's EMA weights),
    `So3kratesCalculator(model=build_model(...))`, or a compiled package
    `So3kratesCalculator("model.pt2")` (`so3k export --format aoti`); energies in eV, forces
    eV/Å, stress eV/Å³.

    dtype: float64 (default for checkpoints and models, for exact comparisons and MD) or float32;
    a package has the dtype it was compiled with. min_distance: pairs closer than this (Å) are
    refused as overlapping atoms.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        model: Union[So3krates, str, Path, None] = None,
        dtype: Optional[torch.dtype] = None,
        device: Union[str, torch.device] = "cpu",
        min_distance: float = 0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if model is None:
            raise InputError(
                "So3kratesCalculator needs a model: a checkpoint path (So3kratesCalculator('run/best.ckpt')) "
                "or a model (So3kratesCalculator(model=so3k.build_model(...)))"
            )
        self.device = torch.device(device)
        self.min_distance = float(min_distance)
        if isinstance(model, (str, Path)) and Path(model).suffix == ".pt2":
            from so3k.export.aoti import CompiledForceField

            self.force_field = CompiledForceField(model, device)
            if dtype is not None and dtype != self.force_field.dtype:
                raise InputError(f"{model} was compiled in {self.force_field.dtype}; drop dtype= or export again with --dtype")
            self.model = None
            self.dtype = self.force_field.dtype
            self.elements: List[str] = self.force_field.elements
            self.cutoff = self.force_field.cutoff
            self.nonlocal_attention = self.force_field.nonlocal_attention
            return
        self.dtype = dtype if dtype is not None else torch.float64
        self.model = inference_model(model, self.dtype, device)  # a checkpoint's EMA weights, or a private copy
        self.force_field = ForceField(self.model)
        self.elements = list(self.model.config.elements)
        self.cutoff = float(self.model.cutoff)
        self.nonlocal_attention = self.model.config.is_nonlocal

    def calculate(self, atoms: Optional[Atoms] = None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress is defined only for structures periodic in all three directions")
        check_supported(
            self.nonlocal_attention, periodic=bool(atoms.pbc.any()),
            remedy="set atoms.pbc = False for a molecule, or use a local model",
        )
        graph = build_graph([atoms], self.elements, self.cutoff, self.dtype, self.device, self.min_distance)
        out = self.force_field(**graph.inputs(), compute_stress=bool(atoms.pbc.all()))
        energy = float(out[keys.ENERGY].sum())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out[keys.ENERGIES].cpu().double().numpy(),
            "forces": out[keys.FORCES].cpu().double().numpy(),
        }
        if keys.STRESS in out:
            s = out[keys.STRESS][0].cpu().double().numpy()
            s = 0.5 * (s + s.T)
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
