"""The bijection protocol: ``x -> (y, log|det J|)`` with an exact inverse.

``forward`` always maps data to latent (the density / scoring direction, as in zuko and
nflows); ``inverse`` maps latent back to data. Both return the transformed tensor and the
per-sample log-absolute-determinant of *that* map's Jacobian, of shape ``(batch,)``, in the
input's dtype and device.  ``context`` is passed unchanged to every layer; layers that do not
use it ignore it (adaptive batch normalization reads a per-sample domain index from it).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable

from torch import Tensor, nn

__all__ = ["Bijection", "Compose", "Inverse", "inverse_softplus"]


def inverse_softplus(y: float) -> float:
    """``x`` with ``softplus(x) == y`` (``y > 0``): the raw value of a softplus-parameterised scale.

    >>> round(inverse_softplus(math.log(2.0)), 12)
    0.0
    """
    return y + math.log(-math.expm1(-y))


class Bijection(nn.Module, abc.ABC):
    """Invertible map ``y = f(x)``; ``forward`` is data -> latent."""

    @abc.abstractmethod
    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(f(x), log|det df/dx|)`` with the log-det of shape ``(batch,)``."""

    @abc.abstractmethod
    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(f^{-1}(y), log|det df^{-1}/dy|)`` with the log-det of shape ``(batch,)``."""

class Compose(Bijection):
    """Apply bijections in order; log-determinants add up.

    Parameters
    ----------
    bijections : iterable of Bijection
        Applied first to last by ``forward``, last to first by ``inverse``.
    """

    def __init__(self, bijections: Iterable[Bijection]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(bijections)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, context)
            total = total + ld
        return x, total

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = y.new_zeros(y.shape[0])
        for layer in reversed(self.layers):
            y, ld = layer.inverse(y, context)
            total = total + ld
        return y, total

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Bijection:
        return self.layers[i]

class Inverse(Bijection):
    """The inverse of a bijection: swaps ``forward`` and ``inverse``."""

    def __init__(self, bijection: Bijection) -> None:
        super().__init__()
        self.bijection = bijection

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.bijection.inverse(x, context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.bijection(y, context)
