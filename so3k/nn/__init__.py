"""Building blocks of the So3krates model, one family per module, explicit tensors in and out."""

from .attention import BlockLinear, FeatureAttention, SphcAttention
from .clebsch_gordan import allowed_couplings, clebsch_gordan
from .cutoff import CosineCutoff, PolynomialCutoff, make_cutoff
from .embedding import ElementEmbedding
from .filter import SphericalFilter
from .interaction import Exchange, SelfMix
from .layer import So3kratesLayer
from .radial import BernsteinBasis, GaussianBasis, PhysNetBasis, make_radial_basis
from .readout import EnergyReadout
from .sphc import SphcInit, SphcInvariant
from .spherical_harmonics import SphericalHarmonics, spherical_harmonics

__all__ = [
    "BlockLinear", "FeatureAttention", "SphcAttention", "allowed_couplings", "clebsch_gordan", "CosineCutoff",
    "PolynomialCutoff", "make_cutoff", "ElementEmbedding", "SphericalFilter", "Exchange", "SelfMix",
    "So3kratesLayer", "BernsteinBasis", "GaussianBasis", "PhysNetBasis", "make_radial_basis", "EnergyReadout",
    "SphcInit", "SphcInvariant", "SphericalHarmonics", "spherical_harmonics",
]
