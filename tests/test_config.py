"""Model configuration: presets, overrides, validation, round trip."""

import pytest

import so3k
from so3k.config import PRESETS, ModelConfig, model_config


def test_presets_have_the_published_hyperparameters():
    neurips = model_config("neurips2022", elements=["H", "C"])
    assert (neurips.features, neurips.layers, neurips.heads, neurips.degrees) == (132, 6, 4, (1, 2, 3))
    assert (neurips.num_radial, neurips.cutoff, neurips.interaction, neurips.sphc_init) == (32, 5.0, "selfmix", "average")
    euclid = model_config("euclidean2024", elements=["H"])
    assert (euclid.features, euclid.layers, euclid.degrees) == (128, 3, (1, 2, 3, 4))
    assert (euclid.sphc_init, euclid.interaction, euclid.sphc_invariant) == ("zeros", "exchange", "squared")
    assert set(PRESETS) == {"neurips2022", "euclidean2024"}
    # the averaged SPHC initialisation is one more message-passing step
    assert (neurips.receptive_field, euclid.receptive_field) == (35.0, 15.0)


def test_elements_are_normalised_and_checked():
    assert model_config(elements=["O", 1, "C", "H"]).elements == ("H", "C", "O")
    with pytest.raises(ValueError, match="unknown element symbol 'c'"):
        model_config(elements=["c"])
    with pytest.raises(ValueError, match="at least one element"):
        model_config(elements=[])


def test_overrides_and_their_errors():
    config = model_config("neurips2022", elements=["H"], features=48, layers=2)
    assert (config.features, config.readout_hidden, config.layers, config.preset) == (48, 48, 2, "neurips2022")
    with pytest.raises(ValueError, match=r"unknown model option\(s\) \['layer'\]"):
        model_config(elements=["H"], layer=3)
    with pytest.raises(ValueError, match="unknown preset 'mace'"):
        model_config("mace", elements=["H"])
    with pytest.raises(ValueError, match="divisible by the number of SPHC degrees"):
        model_config(elements=["H"], features=128)  # 128 is not divisible by 3 degrees
    with pytest.raises(ValueError, match="divisible by heads"):
        model_config(elements=["H"], features=66)
    with pytest.raises(ValueError, match="degrees must lie in 1..4"):
        model_config(elements=["H"], degrees=[0, 1])
    with pytest.raises(ValueError, match="interaction must be one of"):
        model_config(elements=["H"], interaction="mix")


def test_dict_round_trip_and_unknown_keys():
    config = model_config("euclidean2024", elements=["O", "H"], cutoff=4.0)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({**config.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="config version 99 is not supported"):
        ModelConfig.from_dict({**config.to_dict(), "version": 99})


def test_build_model_entry_point():
    model = so3k.build_model("euclidean2024", elements=["H", "O"], layers=1)
    assert model.config.elements == ("H", "O") and len(model.layers) == 1
