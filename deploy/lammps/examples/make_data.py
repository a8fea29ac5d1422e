"""Write the LAMMPS data files of the example decks from the shipped data sets.

    python deploy/lammps/examples/make_data.py

aspirin.data: the first frame of the shipped aspirin set (types C H O), in a box that
`boundary s s s` shrink-wraps; water.data: the first frame of the shipped water set (32 H2O in a
9.855 Å periodic cube, types H O). Positions are written with 17 significant digits.
"""

from pathlib import Path

import ase.io

from so3k import datasets
from so3k.data.io import read_frames

HERE = Path(__file__).resolve().parent


def first_frame(name):
    return read_frames(datasets.path(name), index=":1").to_atoms()[0]


def main() -> None:
    aspirin = first_frame("aspirin")
    aspirin.center(vacuum=5.0)
    aspirin.pbc = False
    ase.io.write(HERE / "aspirin.data", aspirin, format="lammps-data", specorder=["C", "H", "O"], masses=True, atom_style="atomic")
    water = first_frame("water")
    water.wrap()
    ase.io.write(HERE / "water.data", water, format="lammps-data", specorder=["H", "O"], masses=True, atom_style="atomic")
    print(f"wrote {HERE / 'aspirin.data'} ({len(aspirin)} atoms) and {HERE / 'water.data'} ({len(water)} atoms)")


if __name__ == "__main__":
    main()
