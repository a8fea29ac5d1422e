"""Typed, versioned model configuration and the named presets.

A ModelConfig fully determines the architecture; together with a state_dict it is a model.
It is stored as a plain dict (to_dict/from_dict) in checkpoints and exported files.
"""

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Iterable, Sequence, Tuple, Union

from ase.data import atomic_numbers, chemical_symbols

from .errors import ConfigError
from .nn.cutoff import CUTOFF_FUNCTIONS
from .nn.interaction import INTERACTIONS
from .nn.nonlocal_attention import NONLOCAL_MODES
from .nn.radial import RADIAL_BASES
from .nn.sphc import SPHC_INITS, SPHC_INVARIANTS
from .nn.spherical_harmonics import MAX_DEGREE

CONFIG_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a So3krates model (lengths in Å, energies in eV).

    elements: chemical symbols the model knows, in order of atomic number; species index k
      (embedding row, readout scale/shift) is elements[k].
    """

    elements: Tuple[str, ...]
    features: int = 132  # F, width of the invariant features x
    layers: int = 6
    heads: int = 4  # H, feature-attention heads
    degrees: Tuple[int, ...] = (1, 2, 3)  # L, SPHC degrees
    num_radial: int = 32  # K
    radial_basis: str = "physnet"
    cutoff: float = 5.0  # r_c
    cutoff_function: str = "cosine"
    radial_hidden: int = 128  # hidden width of the filter's radial MLP
    sphc_hidden: int = 32  # hidden width of the filter's SPHC-distance MLP
    readout_hidden: int = 132  # hidden width of the energy MLP
    sphc_init: str = "average"
    sphc_invariant: str = "norm"
    interaction: str = "selfmix"
    attention_bias: bool = True
    # Non-local SPHC attention (paper Eq. 14): "off", "fixed" (chi_cut = nonlocal_threshold) or
    # "dynamic" (chi_cut = 1/N). All-pairs, so for non-periodic structures only.
    nonlocal_attention: str = "off"
    nonlocal_threshold: float = 0.05
    preset: str = "custom"
    version: int = CONFIG_VERSION

    def __post_init__(self):
        object.__setattr__(self, "elements", normalise_elements(self.elements))
        object.__setattr__(self, "degrees", tuple(int(l) for l in self.degrees))
        object.__setattr__(self, "cutoff", float(self.cutoff))
        object.__setattr__(self, "nonlocal_threshold", float(self.nonlocal_threshold))
        self.validate()

    def validate(self) -> None:
        def fail(message: str):
            raise ConfigError(f"invalid model config: {message}")

        for name in ("features", "layers", "heads", "num_radial", "radial_hidden", "sphc_hidden", "readout_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a positive integer, got {value!r}")
        if not self.cutoff > 0:
            fail(f"cutoff must be positive (in Å), got {self.cutoff}")
        if not self.degrees or len(set(self.degrees)) != len(self.degrees):
            fail(f"degrees must be a non-empty list of distinct integers, got {list(self.degrees)}")
        if any(l < 1 or l > MAX_DEGREE for l in self.degrees):
            # degree 0 is the invariant x's job: SPHCs carry degrees 1 and up
            fail(f"SPHC degrees must lie in 1..{MAX_DEGREE}, got {list(self.degrees)}")
        if self.features % self.heads:
            fail(f"features ({self.features}) must be divisible by heads ({self.heads})")
        if self.features % len(self.degrees):
            fail(
                f"features ({self.features}) must be divisible by the number of SPHC degrees "
                f"({len(self.degrees)}); e.g. 132 works for 4 heads and 3 degrees"
            )
        for name, allowed in (
            ("radial_basis", RADIAL_BASES),
            ("cutoff_function", CUTOFF_FUNCTIONS),
            ("sphc_init", SPHC_INITS),
            ("sphc_invariant", SPHC_INVARIANTS),
            ("interaction", INTERACTIONS),
            ("nonlocal_attention", NONLOCAL_MODES),
        ):
            if getattr(self, name) not in allowed:
                fail(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not 0 < self.nonlocal_threshold <= 1:
            fail(f"nonlocal_threshold is a softmax probability in (0, 1], got {self.nonlocal_threshold}")
        if self.version != CONFIG_VERSION:
            fail(f"config version {self.version} is not supported by this so3k (it reads version {CONFIG_VERSION})")

    @property
    def is_nonlocal(self) -> bool:
        return self.nonlocal_attention != "off"

    @property
    def receptive_field(self) -> float:
        """How far (Å) an atom's energy reaches through the local pairs: layers x cutoff, plus one
        cutoff when the SPHCs start as neighbour averages (that initialisation is itself a
        message-passing step). A non-local model reaches further: the whole structure."""
        hops = self.layers + (1 if self.sphc_init == "average" else 0)
        return hops * self.cutoff

    @property
    def atomic_numbers(self) -> Tuple[int, ...]:
        return tuple(atomic_numbers[s] for s in self.elements)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["elements"] = list(self.elements)
        d["degrees"] = list(self.degrees)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"invalid model config: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)


PRESETS: Dict[str, Dict[str, Any]] = {
    # Frank, Unke, Müller, NeurIPS 2022 (the authors' defaults, F raised from 123 to 132 so that
    # it divides by 4 heads and 3 degrees).
    "neurips2022": dict(
        features=132, layers=6, heads=4, degrees=(1, 2, 3), num_radial=32, cutoff=5.0, readout_hidden=132,
        sphc_init="average", sphc_invariant="norm", interaction="selfmix",
    ),
    # Frank, Unke, Müller, Chmiela, Nat. Commun. 2024 ("Euclidean transformer" defaults).
    "euclidean2024": dict(
        features=128, layers=3, heads=4, degrees=(1, 2, 3, 4), num_radial=32, cutoff=5.0, readout_hidden=128,
        sphc_init="zeros", sphc_invariant="squared", interaction="exchange",
    ),
}


def normalise_elements(elements: Iterable[Union[str, int]]) -> Tuple[str, ...]:
    """Symbols or atomic numbers -> unique symbols sorted by atomic number; clear error otherwise."""
    numbers = set()
    for e in elements:
        if isinstance(e, str):
            if e not in atomic_numbers or e == "X":
                raise ConfigError(f"unknown element symbol {e!r} (symbols are case-sensitive, e.g. 'C', 'Cl')")
            numbers.add(atomic_numbers[e])
        elif isinstance(e, int) and not isinstance(e, bool) and 1 <= e < len(chemical_symbols):
            numbers.add(int(e))
        else:
            raise ConfigError(f"unknown element {e!r}: give chemical symbols or atomic numbers 1..{len(chemical_symbols) - 1}")
    if not numbers:
        raise ConfigError("a model needs at least one element, e.g. elements=['C', 'H', 'O']")
    return tuple(chemical_symbols[z] for z in sorted(numbers))


def model_config(preset: str = "neurips2022", elements: Sequence[Union[str, int]] = (), **overrides: Any) -> ModelConfig:
    """The named preset with the given elements and any field overridden by keyword."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(ModelConfig)} - {"elements", "preset", "version"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown model option(s) {unknown}; options are {sorted(known)}")
    settings = dict(PRESETS[preset])
    settings.update(overrides)
    if "features" in overrides and "readout_hidden" not in overrides:
        settings["readout_hidden"] = overrides["features"]
    return ModelConfig(elements=tuple(elements), preset=preset, **settings)


__all__ = ["ModelConfig", "PRESETS", "model_config", "normalise_elements", "CONFIG_VERSION"]
