"""so3k.species: the one atomic-number -> species mapping."""

import numpy as np
import pytest
import torch

from so3k.errors import UnknownElementError
from so3k.species import species_index


def test_species_is_the_position_in_the_element_list():
    out = species_index([8, 1, 6, 1], ["H", "C", "O"])
    assert out.dtype == torch.long and out.tolist() == [2, 0, 1, 0]
    assert species_index(torch.tensor([6, 8]), ["O", "C"]).tolist() == [1, 0]
    assert species_index(np.array([], dtype=int), ["H"]).shape == (0,)


@pytest.mark.parametrize("numbers, named", [([6, 9, 17, 9], "['F', 'Cl']"), ([6, 0], "['atomic number 0']"), ([6, 200], "['atomic number 200']")])
def test_unknown_elements_are_named(numbers, named):
    with pytest.raises(UnknownElementError) as error:
        species_index(numbers, ["H", "C", "O"], where=" (structure 3)")
    assert f"element(s) {named} (structure 3) are not known to this model, which was trained for ['H', 'C', 'O']" in str(error.value)
