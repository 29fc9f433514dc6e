"""A fixed affine whitening map: the Gaussian core of a flow."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import Tensor

from flowad.bijections.base import Bijection

__all__ = ["Whitening"]


class Whitening(Bijection):
    r"""Fixed (not trained) affine map ``y = W (x - m)`` with ``W = L^{-1}``, ``L L^T = C``.

    Set from a location ``m`` and a covariance ``C`` by :meth:`set_statistics`; a flow whose
    other layers are the identity then has exactly the Gaussian density :math:`N(m, C)`.
    Starts as the identity. ``m`` and ``W`` are buffers (saved in state dicts, never
    trained).

    Math
    ----
    .. math::
        y = W(x - m), \qquad \log|\det J| = \sum_i \log W_{ii},

    the same for every sample (``W`` is lower-triangular with a positive diagonal). Only ``m``
    and ``W`` are stored, so the layer is consistent in any dtype; the inverse solves the
    triangular system ``W (x - m) = y`` (:math:`O(D^2)` per sample, no matrix inverse).

    Parameters
    ----------
    features : int
        Dimension ``D`` of the input.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        if not (isinstance(features, numbers.Integral) and features >= 1):
            raise ValueError(f"features must be an int >= 1, got {features!r}.")
        self.features = int(features)
        self.register_buffer("loc", torch.zeros(self.features))
        self.register_buffer("weight", torch.eye(self.features))

    @torch.no_grad()
    def set_statistics(self, loc: np.ndarray | Tensor, covariance: np.ndarray | Tensor) -> None:
        """Whiten with location ``loc`` (shape ``(D,)``) and covariance ``covariance`` (``(D, D)``,
        symmetric positive definite; computed in float64, stored in the layer's dtype).

        Raises
        ------
        ValueError
            If the shapes do not match or the covariance is not positive definite.
        """
        m = torch.as_tensor(np.asarray(loc, dtype=np.float64))
        c = torch.as_tensor(np.asarray(covariance, dtype=np.float64))
        d = self.features
        if m.shape != (d,) or c.shape != (d, d):
            raise ValueError(f"expected a location of shape ({d},) and a covariance of shape ({d}, {d}); got {tuple(m.shape)} and {tuple(c.shape)}.")
        chol, info = torch.linalg.cholesky_ex(0.5 * (c + c.T))
        if int(info) != 0 or not torch.isfinite(chol).all():
            raise ValueError("the covariance is not positive definite; it cannot define a whitening.")
        eye = torch.eye(d, dtype=torch.float64)
        weight = torch.linalg.solve_triangular(chol, eye, upper=False)
        dtype, device = self.weight.dtype, self.weight.device
        self.loc.copy_(m.to(dtype=dtype, device=device))
        self.weight.copy_(torch.tril(weight).to(dtype=dtype, device=device))

    def _logdet(self) -> Tensor:
        return torch.log(torch.diagonal(self.weight)).sum()

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = torch.nn.functional.linear(x - self.loc, self.weight)
        return y, self._logdet().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.linalg.solve_triangular(self.weight, y.T, upper=False).T + self.loc
        return x, -self._logdet().expand(y.shape[0])
