"""The demo's training part, with a budget of seconds instead of minutes."""

from so3k.demo import train_demo_model


def test_demo_trains_evaluates_and_points_at_its_artifacts(tmp_path, capsys):
    best = train_demo_model(tmp_path, minutes=0.01)  # stops after the first epoch
    out = capsys.readouterr().out
    assert best == tmp_path / "best.ckpt" and best.exists()
    assert "held-back test frames (200 never seen in training)" in out
    assert (tmp_path / "learning_curves.png").exists() and (tmp_path / "parity_valid.png").exists()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    first = best.stat().st_mtime_ns
    train_demo_model(tmp_path, minutes=0.01)  # a second demo replaces the first: a fresh run, not a resumed one
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == len(rows)
    assert best.stat().st_mtime_ns > first


def test_demo_exports_and_runs_openmm(tmp_path, capsys):
    import torch

    import so3k
    from so3k.checkpoint import save_checkpoint
    from so3k.demo import openmm_demo

    torch.manual_seed(0)
    model = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=1, features=32)
    save_checkpoint(tmp_path / "m.ckpt", {"model_config": model.config.to_dict(), "state_dict": model.state_dict()})
    path = openmm_demo(tmp_path / "m.ckpt", tmp_path, steps=20, warmup=2)
    assert path.exists() and "ns/day" in capsys.readouterr().out


def test_demo_exports_and_runs_the_lammps_deck(plugin_built, tmp_path, capsys):
    import torch

    import so3k
    from so3k.checkpoint import save_checkpoint
    from so3k.demo import lammps_demo

    torch.manual_seed(0)
    model = so3k.build_model("euclidean2024", elements=["H", "C", "O"], layers=1, features=32)
    save_checkpoint(tmp_path / "m.ckpt", {"model_config": model.config.to_dict(), "state_dict": model.state_dict()})
    path = lammps_demo(tmp_path / "m.ckpt", tmp_path, steps=40)
    out = capsys.readouterr().out
    assert path == tmp_path / "model-lammps.pt" and "ms/step; total energy" in out
    assert (tmp_path / "lammps" / "aspirin-nve.xyz").stat().st_size > 0
