"""What a model is defined for, checked in one place with one wording.

A local model works on any structure: molecules, periodic cells, and domains split into owned
and ghost atoms. A model with non-local attention compares the SPHCs of every pair of atoms of a
structure, so it needs the whole structure, without periodic images. The scripted model and the
LAMMPS plugin (C++) use NONLOCAL_REASON verbatim; a test pins the plugin's copy.
"""

from .errors import CapabilityError

NONLOCAL_REASON = (
    "non-local attention compares every pair of atoms of one whole structure, so it is defined for "
    "non-periodic structures that are not split into domains"
)


def check_supported(nonlocal_attention: bool, periodic: bool = False, split: bool = False, remedy: str = "") -> None:
    """Refuse a periodic or domain-decomposed use of a non-local model. `remedy` says what
    to do instead in the caller's terms (default: use a local model)."""
    if not nonlocal_attention or not (periodic or split):
        return
    what = "a periodic system" if periodic else "a structure split into owned and ghost atoms"
    raise CapabilityError(
        f"this model cannot run on {what}: {NONLOCAL_REASON}; {remedy or 'use a local model (nonlocal_attention=off)'}"
    )
