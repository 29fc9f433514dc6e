"""Invertible layers: each maps ``x -> (y, log|det J|)`` and has an exact inverse."""

from flowad.bijections.base import Bijection, Compose, Inverse
from flowad.bijections.coupling import AffineCoupling
from flowad.bijections.permutation import Permutation

__all__ = ["AffineCoupling", "Bijection", "Compose", "Inverse", "Permutation"]
