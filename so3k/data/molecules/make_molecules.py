"""Regenerate the built-in starting geometries in this folder.

SMILES -> RDKit ETKDGv3 (randomSeed=42, explicit H) -> MMFF94 -> GFN2-xTB
(tblite, ASE BFGS, fmax 0.005 eV/A). Run from the repo root:

    pip install rdkit tblite ase
    python so3k/data/molecules/make_molecules.py

RDKit is needed only here, not by the so3k package itself.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # must be set before tblite is imported

from importlib.metadata import version
from pathlib import Path

import ase.io
from ase import Atoms
from ase.optimize import BFGS
from tblite.ase import TBLite

HERE = Path(__file__).parent
FMAX = 0.005  # eV/A

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "ethanol": "CCO",
    # enol tautomer, Z about C=C so the OH points at the carbonyl O (as in MD17)
    "malonaldehyde": r"O=C/C=C\O",
    "uracil": "O=C1C=CNC(=O)N1",
}


def rdkit_atoms(smiles: str) -> tuple[Atoms, str]:
    """3D structure (ETKDGv3 + MMFF94) and Hill formula from a SMILES string."""
    from rdkit import Chem
    from rdkit.Chem import AllChem, rdMolDescriptors

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))  # heavy atoms first, then H
    params = AllChem.ETKDGv3()
    params.randomSeed = 42
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise RuntimeError(f"embedding failed for {smiles}")
    AllChem.MMFFOptimizeMolecule(mol, mmffVariant="MMFF94", maxIters=2000)
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    positions = mol.GetConformer().GetPositions()
    return Atoms(symbols, positions=positions), rdMolDescriptors.CalcMolFormula(mol)


def main() -> None:
    tblite_version = version("tblite")
    for name, smiles in MOLECULES.items():
        atoms, formula = rdkit_atoms(smiles)
        atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
        BFGS(atoms, logfile=None).run(fmax=FMAX, steps=1000)
        energy = atoms.get_potential_energy()
        fmax = float((atoms.get_forces() ** 2).sum(axis=1).max() ** 0.5)
        atoms.calc = None  # keep the xyz free of energies/forces
        comment = f"{name} {formula}, GFN2-xTB optimised (tblite), see README.md"
        ase.io.write(HERE / f"{name}.xyz", atoms, format="xyz", comment=comment)
        print(f"{name:14s} {formula:8s} {len(atoms):3d} atoms  "
              f"E = {energy:.6f} eV  fmax = {fmax:.4f} eV/A  (tblite {tblite_version})")


if __name__ == "__main__":
    main()
