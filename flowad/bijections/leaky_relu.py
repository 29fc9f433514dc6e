"""Element-wise leaky-ReLU bijection."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from flowad.bijections.base import Bijection

__all__ = ["LeakyReLU"]


class LeakyReLU(Bijection):
    r"""``y = max(x, alpha x)`` element-wise, with a fixed slope ``alpha`` in (0, 1).

    Math
    ----
    .. math::
        y_i = \begin{cases} x_i & x_i \ge 0 \\ \alpha x_i & x_i < 0 \end{cases}, \qquad
        \log|\det J| = \tau \log\alpha,

    with :math:`\tau` the number of negative entries of the sample. The inverse divides the
    negative entries by :math:`\alpha` (the sign is kept, so the negative set is the same).

    Parameters
    ----------
    alpha : float in (0, 1), default=0.1
        Slope of the negative part. 1 would be the identity and 0 not invertible.

    Notes
    -----
    Input and output have shape ``(batch, D)``; ``context`` is ignored. No parameters.
    """

    def __init__(self, alpha: float = 0.1) -> None:
        super().__init__()
        if not (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and 0.0 < alpha < 1.0):
            raise ValueError(f"alpha must be a float in (0, 1), got {alpha!r}.")
        self.alpha = float(alpha)
        self._log_alpha = math.log(self.alpha)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        negative = x < 0
        y = torch.where(negative, x * self.alpha, x)
        return y, negative.sum(dim=1).to(x.dtype) * self._log_alpha

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        negative = y < 0
        x = torch.where(negative, y / self.alpha, y)
        return x, negative.sum(dim=1).to(y.dtype) * -self._log_alpha

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
