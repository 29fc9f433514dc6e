"""Normalizing flow = bijection (data -> latent) + standard-normal base distribution."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flowad.bijections.base import Bijection

__all__ = ["Flow", "standard_normal_log_prob"]

_LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """Log-density of :math:`\\mathcal N(0, I)` at each row of ``z``; shape ``(batch,)``."""
    return -0.5 * (z.square().sum(dim=1) + z.shape[1] * _LOG_2PI)


class Flow(nn.Module):
    r"""Density :math:`\log p(x) = \log \mathcal N(f(x); 0, I) + \log|\det J_f(x)|`.

    Parameters
    ----------
    bijection : Bijection
        The map ``f`` from data to latent space.
    features : int
        Dimension of the data.
    """

    def __init__(self, bijection: Bijection, features: int) -> None:
        super().__init__()
        self.bijection = bijection
        self.features = int(features)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return the latent ``z = f(x)`` and ``log|det J_f(x)|``."""
        return self.bijection(x, context)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Log-density of each row of ``x``, shape ``(batch,)``."""
        z, logdet = self.bijection(x, context)
        return standard_normal_log_prob(z) + logdet

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        """Draw ``n`` samples by pushing base samples through the inverse map."""
        p = next(self.parameters(), None)
        buf = next(self.buffers(), None)
        ref = p if p is not None else buf
        dtype = ref.dtype if ref is not None else torch.get_default_dtype()
        device = ref.device if ref is not None else torch.device("cpu")
        z = torch.randn(n, self.features, generator=generator, dtype=dtype, device=device)
        x, _ = self.bijection.inverse(z, context)
        return x
