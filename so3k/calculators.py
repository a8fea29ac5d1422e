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
    """`So3kratesCalculator("run/best.ckpt")` (a checkpoint's EMA weights) or
    `So3kratesCalculator(model=build_model(...))`; energies in eV, forces eV/Å, stress eV/Å³.

    dtype: float64 (default, for exact comparisons and MD) or float32. min_distance: pairs
    closer than this (Å) are refused as overlapping atoms.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        model: Union[So3krates, str, Path, None] = None,
        dtype: torch.dtype = torch.float64,
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
        self.model = inference_model(model, dtype, device)  # a checkpoint's EMA weights, or a private copy
        self.force_field = ForceField(self.model)
        self.dtype = dtype
        self.device = torch.device(device)
        self.min_distance = float(min_distance)

    @property
    def elements(self) -> List[str]:
        return list(self.model.config.elements)

    def calculate(self, atoms: Optional[Atoms] = None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress is defined only for structures periodic in all three directions")
        check_supported(
            self.model.config.is_nonlocal, periodic=bool(atoms.pbc.any()),
            remedy="set atoms.pbc = False for a molecule, or use a local model",
        )
        graph = build_graph([atoms], self.elements, self.model.cutoff, self.dtype, self.device, self.min_distance)
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
