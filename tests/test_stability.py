"""so3k.stability: the failure detector flags planted failures at the right frame and passes sane MD."""

import numpy as np
import pytest

from so3k.data.molecules import load_molecule
from so3k.stability import BondCheck, bond_lengths, first_failure


def jiggled(atoms, frames=20, scale=0.03, seed=0):
    rng = np.random.default_rng(seed)
    return [atoms.positions + rng.normal(scale=scale, size=atoms.positions.shape) for _ in range(frames)]


@pytest.fixture
def ethanol():
    return load_molecule("ethanol")


def test_thermal_noise_is_not_a_failure(ethanol, water):
    assert first_failure(ethanol, jiggled(ethanol), temperatures=[300.0] * 20, max_temperature=1000.0) is None
    assert first_failure(water, jiggled(water)) is None  # periodic: bonds across the cell by minimum image


def test_a_planted_broken_bond_is_flagged_at_its_frame(ethanol):
    frames = jiggled(ethanol)
    check = BondCheck(ethanol)
    i, j = int(check.i[0]), int(check.j[0])
    frames[7] = frames[7].copy()
    frames[7][j] = frames[7][i] + 1.6 * (ethanol.positions[j] - ethanol.positions[i])
    failure = check.first_failure(frames)
    assert failure.frame == 7 and failure.kind == "bond broken" and f"{i}" in failure.detail


def test_a_planted_new_bond_nan_and_hot_frame_are_flagged(ethanol, water):
    from ase.build import molecule

    h2o = molecule("H2O")
    h2o.translate(ethanol.positions.max(axis=0) + 4.0 - h2o.positions[0])
    both = ethanol + h2o  # two molecules 4 Å apart
    h = [k for k, s in enumerate(ethanol.get_chemical_symbols()) if s == "H"][0]
    frames = jiggled(both, scale=0.01)
    frames[4] = both.positions.copy()
    frames[4][len(ethanol):] += ethanol.positions[h] + [0.9, 0.0, 0.0] - both.positions[len(ethanol)]  # water's O 0.9 Å from an H
    failure = first_failure(both, frames)
    assert failure.frame == 4 and failure.kind == "bond formed" and f"H{h}" in failure.detail
    frames = jiggled(water)
    frames[3] = frames[3].copy()
    frames[3][5, 1] = np.nan
    assert first_failure(water, frames).kind == "nan" and first_failure(water, frames).frame == 3
    temperatures = [300.0] * 20
    temperatures[11] = 2500.0
    failure = first_failure(ethanol, jiggled(ethanol), temperatures, max_temperature=1500.0)
    assert (failure.frame, failure.kind) == (11, "temperature") and "2500.0 K, above the bound of 1500.0 K" in str(failure)


def test_bond_lengths_follow_the_trajectory(ethanol):
    frames = [ethanol.positions, ethanol.positions * 1.1]
    pairs, lengths = bond_lengths(ethanol, frames)
    assert pairs.shape[1] == 2 and lengths.shape == (2, len(pairs)) and len(pairs) == 8  # ethanol has 8 bonds
    np.testing.assert_allclose(lengths[1], 1.1 * lengths[0])
    with pytest.raises(ValueError, match="stretch must be > 1"):
        BondCheck(ethanol, stretch=0.9)


def test_stretch_is_measured_against_given_equilibrium_lengths(ethanol):
    i, j = bond_lengths(ethanol, [ethanol.positions])[0][0]
    start = bond_lengths(ethanol, [ethanol.positions])[1][0]
    stretched = ethanol.positions.copy()
    stretched[j] += (stretched[j] - stretched[i]) * 0.3  # bond 0 at 1.3 x its starting length
    assert BondCheck(ethanol).check(1, stretched) is None
    # against equilibrium lengths 0.8 x the starting ones, bond 0 is 1.625 x: broken
    failure = BondCheck(ethanol, equilibrium=0.8 * start).check(1, stretched)
    assert failure is not None and failure.kind == "bond broken"
    assert f"{ethanol.get_chemical_symbols()[i]}{i}-" in failure.detail and "1.62 x its equilibrium" in failure.detail
    with pytest.raises(ValueError, match="one length per bond"):
        BondCheck(ethanol, equilibrium=start[:-1])
