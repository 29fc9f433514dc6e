"""Invertible layers: each maps ``x -> (y, log|det J|)`` and has an exact inverse."""

from flowad.bijections.adabn import AdaptiveBatchNorm, RunningMoments
from flowad.bijections.base import Bijection, Compose, Inverse
from flowad.bijections.coupling import AffineCoupling
from flowad.bijections.leaky_relu import LeakyReLU
from flowad.bijections.lu import LULinear
from flowad.bijections.permutation import Permutation
from flowad.bijections.whitening import Whitening

__all__ = [
    "AdaptiveBatchNorm",
    "AffineCoupling",
    "Bijection",
    "Compose",
    "Inverse",
    "LULinear",
    "LeakyReLU",
    "Permutation",
    "RunningMoments",
    "Whitening",
]
