"""Multi-layer perceptron used as the ``s``/``t`` network of coupling layers, with an
optional k-Lipschitz bound by spectral normalization.

Spectral normalization uses :func:`torch.nn.utils.parametrizations.spectral_norm` (power
iteration with a persistent vector ``u``, one step per training forward pass) and scales the
normalized weight by ``k``:

.. math:: W_{SN} = \\frac{W}{\\sigma_{\\max}(W) / k}

so each linear layer has operator norm ``k`` and, with 1-Lipschitz activations, an MLP of
``L`` layers is at most ``k^L``-Lipschitz (Robust RealNVP).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["ACTIVATIONS", "MLP", "apply_lipschitz_bound", "refine_spectral_norms", "spectral_norms"]

#: Activation names accepted by :class:`MLP`; all are 1-Lipschitz.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


class _ScaleBy(nn.Module):
    """Parametrization ``W -> k * W`` stacked on top of spectral normalization."""

    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = float(k)

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.k


def apply_lipschitz_bound(linear: nn.Linear, k: float, n_power_iterations: int = 1) -> nn.Linear:
    """Constrain ``linear`` to operator norm ``k`` by spectral normalization (in place).

    Parameters
    ----------
    linear : nn.Linear
        Layer whose ``weight`` gets parametrized.
    k : float
        Target operator norm (> 0).
    n_power_iterations : int, default=1
        Power-iteration steps per training forward pass; the vector persists between calls.
    """
    if not k > 0:
        raise ValueError(f"lipschitz_k must be > 0 or None, got {k}.")
    spectral_norm(linear, n_power_iterations=n_power_iterations)
    parametrize.register_parametrization(linear, "weight", _ScaleBy(k))
    return linear


def refine_spectral_norms(module: nn.Module, n_iter: int = 50) -> None:
    """Run ``n_iter`` extra power-iteration steps on every spectrally normalized weight.

    During training one step per forward pass tracks the slowly changing weights, so the
    estimate of :math:`\\sigma_{\\max}` lags slightly behind (it is a lower bound, making the
    operator norm a little larger than ``k``). Calling this once the weights are final makes
    the bound hold to within a fraction of a percent. Weights are not changed.
    """
    with torch.no_grad():
        for m in module.modules():
            if not parametrize.is_parametrized(m, "weight"):
                continue
            plist = m.parametrizations.weight
            sn = plist[0]
            if not hasattr(sn, "_u"):  # not torch's spectral normalization
                continue
            was_training = sn.training
            sn.train()
            for _ in range(n_iter):
                sn(plist.original)
            sn.train(was_training)


def spectral_norms(module: nn.Module) -> list[float]:
    """Exact largest singular value of the (effective) weight of every ``nn.Linear`` in ``module``."""
    with torch.no_grad():
        return [
            float(torch.linalg.matrix_norm(m.weight.detach().double(), ord=2))
            for m in module.modules()
            if isinstance(m, nn.Linear)
        ]


class MLP(nn.Sequential):
    """Fully connected network ``in -> hidden... -> out``.

    Parameters
    ----------
    in_features, out_features : int
        Input and output widths.
    hidden : sequence of int
        Widths of the hidden layers.
    activation : {"relu", "leaky_relu", "tanh", "elu", "silu"}, default="relu"
        Non-linearity between layers.
    lipschitz_k : float or None, default=None
        If given, every linear layer is spectrally normalized to operator norm ``k``.
        Otherwise the last layer starts at zero so a coupling layer starts as the identity.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        lipschitz_k: float | None = None,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        widths = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            with warnings.catch_warnings():  # in_features == 0 (1-D data): the layer is a pure bias
                warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
                layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)
        last = layers[-1]
        assert isinstance(last, nn.Linear)
        if lipschitz_k is None:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        else:
            for layer in layers:
                if isinstance(layer, nn.Linear):
                    apply_lipschitz_bound(layer, lipschitz_k)
