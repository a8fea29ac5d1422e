import numpy as np
from ase import Atoms

from so3k.cli import main
from so3k.data.frames import Frames
from so3k.data.io import write_extxyz
from so3k.data.stats import compute_stats, min_distances


def test_counts_and_moments(frames):
    stats = compute_stats(frames)
    assert stats.n_frames == len(frames)
    assert stats.n_atoms_total == frames.positions.shape[0]
    assert sum(stats.elements.values()) == stats.n_atoms_total
    assert stats.energy["std"] == np.std(frames.energy)
    assert stats.forces["norm_max"] == np.linalg.norm(frames.forces, axis=1).max()
    assert stats.outliers == []


def test_residual_removes_per_element_references(make_frames):
    frames = make_frames(n_frames=30)
    counts = np.zeros((len(frames), 119))
    np.add.at(counts, (frames.frame_index, frames.numbers), 1)
    frames.energy = counts @ np.where(np.arange(119) == 1, -13.6, -1000.0) + np.linspace(-0.1, 0.1, 30)
    stats = compute_stats(frames)
    assert stats.energy["std"] > 100
    assert stats.energy_residual_std < 0.06


def test_outliers_are_flagged(make_frames):
    frames = make_frames(n_frames=40)
    counts = np.zeros((len(frames), 119))
    np.add.at(counts, (frames.frame_index, frames.numbers), 1)
    frames.energy = counts @ np.linspace(-50, -1, 119) + 0.01 * np.sin(np.arange(40))
    frames.energy[5] += 5.0  # a jump no composition explains
    frames.forces[frames.ptr[7]] = [30.0, 0, 0]  # |F| > 25 eV/Å
    frames.positions[frames.ptr[9] + 1] = frames.positions[frames.ptr[9]] + [0.5, 0, 0]  # d < 0.75 Å
    stats = compute_stats(frames)
    flagged = {o.frame: o.reason for o in stats.outliers}
    assert set(flagged) == {5, 7, 9}
    assert "robust sigmas" in flagged[5] and "|F| = 30.0" in flagged[7] and "d_min = 0.500" in flagged[9]


def test_minimum_image_distance():
    atoms = Atoms("H2", positions=[[0.1, 0, 0], [4.7, 0, 0]], cell=[5, 5, 5], pbc=True)
    frames = Frames.from_atoms([atoms])
    assert abs(min_distances(frames)[0] - 0.4) < 1e-12


def test_kcal_hint(make_frames):
    frames = make_frames()
    frames.forces *= 23.06  # eV/Å values that were really kcal/mol/Å
    assert any("--energy-unit kcal/mol" in h for h in compute_stats(frames).hints)


def test_cli_prints_stats(tmp_path, capsys, frames):
    path = tmp_path / "set.extxyz"
    write_extxyz(frames, path)
    assert main(["data", "stats", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"frames        {len(frames)}" in out and "outliers      none" in out


def test_cli_reports_bad_file_clearly(tmp_path, capsys):
    path = tmp_path / "broken.extxyz"
    path.write_text("")
    assert main(["data", "stats", str(path)]) == 2
    err = capsys.readouterr().err
    assert "so3k: error:" in err and "broken.extxyz: contains no frames" in err


def test_cli_saves_an_overview_plot(tmp_path, capsys, make_frames):
    path = tmp_path / "set.extxyz"
    write_extxyz(make_frames(n_frames=12, periodic=True), path)
    png = tmp_path / "overview.png"
    assert main(["data", "stats", str(path), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert f"plot: {png}" in capsys.readouterr().out


def test_too_small_units_get_a_hint_too():
    from so3k.data.io import read_frames
    from so3k.data.stats import unit_hints
    from so3k.datasets import path

    frames = read_frames(path("aspirin"), index=":20")
    assert unit_hints(frames) == []  # eV and Å as they should be
    as_kcal = read_frames(path("aspirin"), index=":20")
    as_kcal.forces = as_kcal.forces * 0.0433641  # an eV file read as kcal/mol
    assert any("unusually small" in h and "kcal/mol" in h for h in unit_hints(as_kcal))
    as_nm = read_frames(path("aspirin"), index=":20")
    as_nm.positions = as_nm.positions * 10.0  # Å read as nm
    assert any("do not read them as nm" in h for h in unit_hints(as_nm))
    energies_only = read_frames(path("aspirin"), index=":20")
    energies_only.forces = None
    energies_only.energy = energies_only.energy * 1e-3 * 1e-3  # far below any real spread
    assert any("do not read them as meV" in h for h in unit_hints(energies_only))
