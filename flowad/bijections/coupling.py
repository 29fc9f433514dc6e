"""Affine coupling layer of RealNVP (Dinh et al., 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flowad.bijections.base import Bijection
from flowad.nn.mlp import MLP

__all__ = ["AffineCoupling"]


class AffineCoupling(Bijection):
    r"""RealNVP affine coupling with a tanh-bounded log-scale.

    The first ``split`` features pass unchanged and condition an affine map of the rest:

    .. math::
        y_{1:d} = x_{1:d}, \qquad
        y_{d+1:D} = x_{d+1:D} \odot \exp(s(x_{1:d})) + t(x_{1:d}),

    with :math:`s = s_{\max} \tanh(\tilde s / s_{\max})`, so every scale stays in
    :math:`[e^{-s_{\max}}, e^{s_{\max}}]`, and :math:`\log|\det J| = \sum_j s_j`.
    One network outputs both ``s`` and ``t``.

    Parameters
    ----------
    features : int
        Dimension ``D`` of the input.
    split : int or None, default=None
        Number ``d`` of pass-through features; ``D // 2`` by default.
    hidden : sequence of int, default=(64, 64)
        Hidden widths of the conditioner network.
    activation : str, default="relu"
        Conditioner non-linearity (see :data:`flowad.nn.ACTIVATIONS`).
    s_max : float, default=3.0
        Bound of the log-scale.
    lipschitz_k : float or None, default=None
        Spectral-normalize every linear layer of the conditioner to operator norm ``k``.
    identity_init : bool, default=False
        Start as the identity. Without ``lipschitz_k`` every coupling does (the conditioner's
        last layer starts at zero). With it, spectral normalization leaves no zero weights, so
        the conditioner's output is multiplied by a learned gate ``tanh(g)``, ``g = 0`` at the
        start: the bound stays ``k`` (``|tanh g| <= 1``) and the layer starts as the identity.

    References
    ----------
    Dinh, Sohl-Dickstein, Bengio. "Density estimation using Real NVP". ICLR 2017.
    """

    def __init__(
        self,
        features: int,
        split: int | None = None,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        s_max: float = 3.0,
        lipschitz_k: float | None = None,
        identity_init: bool = False,
    ) -> None:
        super().__init__()
        split = features // 2 if split is None else split
        if not 0 <= split < features:
            raise ValueError(f"split must be in [0, {features}), got {split}.")
        if not s_max > 0:
            raise ValueError(f"s_max must be > 0, got {s_max}.")
        self.features = features
        self.split = split
        self.s_max = float(s_max)
        self.net = MLP(split, 2 * (features - split), hidden, activation, lipschitz_k)
        self.gate = torch.nn.Parameter(torch.zeros(1)) if identity_init and lipschitz_k is not None else None

    def conditioner(self, x_a: Tensor) -> Tensor:
        """The raw ``(s, t)`` output of the conditioner network (gated when there is a gate)."""
        out = self.net(x_a)
        return out if self.gate is None else out * torch.tanh(self.gate)

    def _scale_shift(self, x_a: Tensor) -> tuple[Tensor, Tensor]:
        raw_s, t = self.conditioner(x_a).chunk(2, dim=1)
        s = self.s_max * torch.tanh(raw_s / self.s_max)
        return s, t

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.split], x[:, self.split :]
        s, t = self._scale_shift(x_a)
        y_b = x_b * torch.exp(s) + t
        return torch.cat((x_a, y_b), dim=1), s.sum(dim=1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y_a, y_b = y[:, : self.split], y[:, self.split :]
        s, t = self._scale_shift(y_a)
        x_b = (y_b - t) * torch.exp(-s)
        return torch.cat((y_a, x_b), dim=1), -s.sum(dim=1)
