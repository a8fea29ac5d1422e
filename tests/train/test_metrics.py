"""so3k.train.metrics: the error sums of a batch and the metrics derived from them."""

import torch

from so3k.train.metrics import SUMS, error_sums, metrics_from_sums


def test_error_sums_and_metrics_of_a_known_batch():
    pred_e, ref_e, n_atoms = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0]), torch.tensor([2.0, 4.0])
    pred_f, ref_f = torch.zeros(6, 3), torch.zeros(6, 3)
    pred_f[0, 0] = 0.3
    s = dict(zip(SUMS, error_sums(pred_e, ref_e, n_atoms, pred_f, ref_f).tolist()))
    assert s["structures"] == 2 and s["components"] == 18
    assert s["abs_e"] == 3.0 and s["sq_e"] == 5.0 and abs(s["abs_e_atom"] - 1.0) < 1e-12
    m = metrics_from_sums(error_sums(pred_e, ref_e, n_atoms, pred_f, ref_f), 1.0, 1.0, "valid")
    assert abs(m["valid_energy_mae_meV"] - 1500.0) < 1e-9 and abs(m["valid_forces_mae_meV_A"] - 300 / 18) < 1e-4


def test_error_sums_stay_on_the_device_of_the_errors():
    """The counts were built on the CPU, so every CUDA training stopped in its first step (found
    on the H200). A meta-device batch stands in for a GPU here."""
    def meta(*shape):
        return torch.zeros(*shape, device="meta")

    sums = error_sums(meta(2), meta(2), meta(2), meta(5, 3), meta(5, 3))
    assert sums.device.type == "meta" and sums.shape == (len(SUMS),)
