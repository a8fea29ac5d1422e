"""The demo's training part, with a budget of seconds instead of minutes."""

from so3k.demo import train_demo_model


def test_demo_trains_evaluates_and_points_at_its_artifacts(tmp_path, capsys):
    best = train_demo_model(tmp_path, minutes=0.01)  # stops after the first epoch
    out = capsys.readouterr().out
    assert best == tmp_path / "best.ckpt" and best.exists()
    assert "held-back test frames (200 never seen in training)" in out
    assert (tmp_path / "learning_curves.png").exists() and (tmp_path / "parity_valid.png").exists()
    train_demo_model(tmp_path, minutes=0.01)  # a second demo replaces the first
