import pytest

from so3k import units


def test_constants_agree_with_reference_values():
    assert units.KCAL_PER_MOL_TO_EV == pytest.approx(0.0433641, rel=1e-6)
    assert units.EV_TO_KJ_PER_MOL == pytest.approx(96.4853, rel=1e-5)
    assert units.HARTREE_TO_EV == pytest.approx(27.211386, rel=1e-6)
    assert units.BOHR_TO_ANGSTROM == pytest.approx(0.52917721, rel=1e-7)
    assert units.KJ_PER_MOL_TO_EV * units.EV_TO_KJ_PER_MOL == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("name", ["kcal/mol", "KCAL/MOL", "kcal_per_mol"])
def test_unit_aliases(name):
    assert units.energy_to_ev(name) == units.KCAL_PER_MOL_TO_EV


def test_unknown_units_say_what_is_known():
    with pytest.raises(ValueError, match="unknown length unit 'pm'; use one of Angstrom, Bohr, nm"):
        units.length_to_angstrom("pm")
