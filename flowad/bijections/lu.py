"""Invertible linear map parameterised by an LU decomposition (Glow / nflows' ``LULinear``)."""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowad.bijections.base import Bijection, inverse_softplus

__all__ = ["LULinear", "EPS_DIAG"]

#: Lower bound of every diagonal entry ``d_i`` (``d = softplus(raw) + EPS_DIAG``): keeps the map
#: invertible and ``log d_i`` finite whatever the optimiser does to ``raw``.
EPS_DIAG = 1e-3


class LULinear(Bijection):
    r"""Affine map ``y = W x + b`` with ``W = L diag(d) U``, invertible by construction.

    ``L`` is unit lower-triangular, ``U`` unit upper-triangular (their strict triangles share
    one ``(D, D)`` parameter, as in a packed LAPACK LU) and ``d = softplus(r) + EPS_DIAG > 0``.
    The layer starts as the identity (``L = U = I``, ``d = 1``, ``b = 0``).

    Math
    ----
    .. math::
        y = L\,\mathrm{diag}(d)\,U\,x + b, \qquad
        \log|\det J| = \sum_{i=1}^{D} \log d_i,

    the same for every sample, computed in :math:`O(D)`. ``forward`` costs
    :math:`\min(2ND^2,\ D^3 + ND^2)` for ``N`` rows (it forms ``W`` only when ``N > D``).
    The inverse solves two unit-triangular
    systems (:func:`torch.linalg.solve_triangular`): :math:`O(D^2)` per sample, no matrix
    inverse.

    Parameters
    ----------
    features : int
        Dimension ``D`` of the input.

    Notes
    -----
    Input and output have shape ``(batch, D)``; ``context`` is ignored. Every real matrix with
    positive determinant and non-zero leading minors is reachable; a negative determinant is
    not needed for a density model.

    References
    ----------
    Kingma, Dhariwal. "Glow: Generative Flow with Invertible 1x1 Convolutions". NeurIPS 2018.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        if not (isinstance(features, numbers.Integral) and features >= 1):
            raise ValueError(f"features must be an int >= 1, got {features!r}.")
        self.features = int(features)
        self.triangles = nn.Parameter(torch.zeros(self.features, self.features))
        self.diag_raw = nn.Parameter(torch.full((self.features,), inverse_softplus(1.0 - EPS_DIAG)))
        self.bias = nn.Parameter(torch.zeros(self.features))

    def _factors(self) -> tuple[Tensor, Tensor, Tensor]:
        eye = torch.eye(self.features, dtype=self.triangles.dtype, device=self.triangles.device)
        lower = torch.tril(self.triangles, -1) + eye
        upper = torch.triu(self.triangles, 1) + eye
        diag = F.softplus(self.diag_raw) + EPS_DIAG
        return lower, diag, upper

    def weight(self) -> Tensor:
        """The matrix ``W = L diag(d) U`` of shape ``(D, D)``."""
        lower, diag, upper = self._factors()
        return (lower * diag) @ upper

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        lower, diag, upper = self._factors()
        if x.shape[0] > self.features:  # one D^3 product to form W, then one (batch, D) x (D, D) product
            y = x @ ((lower * diag) @ upper).T + self.bias
        else:  # y^T = x^T U^T diag(d) L^T: two (batch, D) x (D, D) products, no D^3 product
            y = ((x @ upper.T) * diag) @ lower.T + self.bias
        return y, torch.log(diag).sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        lower, diag, upper = self._factors()
        # solve  m L^T = y - b  (L^T upper), then  x U^T = m / d  (U^T lower)
        m = torch.linalg.solve_triangular(lower.T, y - self.bias, upper=True, left=False, unitriangular=True)
        x = torch.linalg.solve_triangular(upper.T, m / diag, upper=False, left=False, unitriangular=True)
        return x, -torch.log(diag).sum().expand(y.shape[0])

    def extra_repr(self) -> str:
        return f"features={self.features}"
