"""A fixed affine whitening map: the Gaussian core of a flow."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowad.bijections.base import Bijection

__all__ = ["Whitening"]


class Whitening(Bijection):
    r"""Fixed (not trained) affine map ``y = W (x - m)`` onto the principal axes of a covariance.

    Set from a location ``m`` and a covariance ``C = V \Lambda V^T`` by :meth:`set_statistics`:
    ``W = \Lambda^{-1/2} V^T``, the eigenvectors ordered by decreasing eigenvalue, so output
    ``i`` is the ``i``-th principal component of ``x - m`` in units of its standard deviation. A
    flow whose other layers are the identity then has exactly the Gaussian density
    :math:`N(m, C)`. Starts as the identity. ``m`` and ``W`` are buffers (saved in state dicts,
    never trained).

    Why principal axes: any ``W`` with ``W C W^T = I`` gives the same Gaussian, but not the same
    coordinates for the couplings that follow, which transform one half of the features given the
    other. Principal axes depend on the data only, not on the order of the columns (a Cholesky
    factor does), and split the features into the high- and the low-variance directions.
    Chosen on the development set (``results/defaults_dev/whitening/``).

    Math
    ----
    .. math::
        y = W(x - m), \qquad \log|\det J| = -\tfrac12 \sum_i \log \lambda_i,

    the same for every sample (kept as a buffer computed from the stored ``W``). The inverse
    solves ``W (x - m) = y``. Any invertible ``W`` works the same way: model files written before
    this layer used principal axes hold a lower-triangular ``W = L^{-1}``, ``L L^T = C``, and
    load and score unchanged.

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
        # log|det W|, derived from ``weight`` whenever it changes (set, loaded, cast or moved), so
        # it is that of the stored matrix in its dtype; not saved: files hold ``loc`` and ``weight``
        self.register_buffer("log_abs_det", torch.zeros(()), persistent=False)

    @torch.no_grad()
    def set_statistics(self, loc: np.ndarray | Tensor, covariance: np.ndarray | Tensor) -> None:
        """Whiten with location ``loc`` (shape ``(D,)``) and covariance ``covariance`` (``(D, D)``,
        symmetric positive definite; computed in float64, stored in the layer's dtype).

        The eigenvectors' signs are fixed (largest entry in absolute value positive), so the map
        does not depend on the LAPACK build.

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
        if not bool(torch.isfinite(c).all()):
            raise ValueError("the covariance has non-finite entries; it cannot define a whitening.")
        evals, evecs = torch.linalg.eigh(0.5 * (c + c.T))
        if not bool((evals > 0).all()):
            raise ValueError("the covariance is not positive definite; it cannot define a whitening.")
        evals, evecs = evals.flip(0), evecs.flip(1)  # decreasing variance
        pivot = evecs.abs().argmax(dim=0)
        evecs = evecs * torch.sign(evecs[pivot, torch.arange(d)])
        dtype, device = self.weight.dtype, self.weight.device
        self.loc.copy_(m.to(dtype=dtype, device=device))
        self.weight.copy_((evecs * evals.rsqrt()).T.to(dtype=dtype, device=device))
        self._refresh_logdet()

    @torch.no_grad()
    def _refresh_logdet(self) -> None:
        self.log_abs_det.copy_(torch.linalg.slogdet(self.weight.double()).logabsdet)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh_logdet()

    def _apply(self, fn: Any, recurse: bool = True) -> Whitening:
        out = super()._apply(fn, recurse)
        self._refresh_logdet()
        return out

    def _logdet(self) -> Tensor:
        return self.log_abs_det

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = torch.nn.functional.linear(x - self.loc, self.weight)
        return y, self._logdet().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.linalg.solve(self.weight, y.T).T + self.loc
        return x, -self._logdet().expand(y.shape[0])
