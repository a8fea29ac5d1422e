"""Made format-1 files (checkpoint, OpenMM and LAMMPS exports) with so3k 0.1.0 as of commit 37be15c:
    git worktree add old 37be15c && (assemble so3k/, export/ as so3k/export, deploy/lammps as so3k/lammps)
    PYTHONPATH=<assembled> python make_format1.py OUT"""
import sys
from pathlib import Path

import torch

import so3k
from so3k.export import export_model
from so3k.train.checkpoint import save_checkpoint

out = Path(sys.argv[1])
torch.manual_seed(0)
m = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=2, features=8, heads=2, radial_hidden=8, sphc_hidden=8, readout_hidden=8).double()
m.readout.scale.fill_(2.0)
m.readout.shift.copy_(torch.tensor([-0.5, -1.0, -1.5], dtype=torch.float64))
save_checkpoint(out / "format1.ckpt", {"model_config": m.config.to_dict(), "state_dict": m.state_dict()})
export_model(out / "format1.ckpt", out / "format1-openmm.pt", dtype="float64")
export_model(out / "format1.ckpt", out / "format1-lammps.pt", engine="lammps", dtype="float64")
