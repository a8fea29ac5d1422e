"""so3k.capabilities: what a model is defined for, one check with one wording."""

import pytest

from so3k.capabilities import NONLOCAL_REASON, check_supported
from so3k.errors import CapabilityError


def test_a_local_model_runs_anywhere():
    for periodic in (False, True):
        for split in (False, True):
            check_supported(False, periodic=periodic, split=split)
    check_supported(True)  # a non-local model on a whole molecule


@pytest.mark.parametrize("periodic, split, what", [(True, False, "a periodic system"), (False, True, "a structure split into owned and ghost atoms")])
def test_a_non_local_model_refuses_periodic_and_split_structures(periodic, split, what):
    with pytest.raises(CapabilityError) as error:
        check_supported(True, periodic=periodic, split=split, remedy="do this instead")
    assert str(error.value) == f"this model cannot run on {what}: {NONLOCAL_REASON}; do this instead"
