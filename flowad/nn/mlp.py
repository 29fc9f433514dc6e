"""Multi-layer perceptron used as the ``s``/``t`` network of coupling layers, with an
optional k-Lipschitz bound by spectral normalization.

Spectral normalization is a :mod:`torch.nn.utils.parametrize` parametrization of the weight
that follows :func:`torch.nn.utils.parametrizations.spectral_norm` (same initialization, power
iteration with persistent vectors ``u`` and ``v``, one step per training forward pass, same
state-dict keys) and scales the normalized weight by ``k`` in the same pass:

.. math:: W_{SN} = \\frac{W}{\\sigma_{\\max}(W) / k}

so each linear layer has operator norm ``k`` and, with 1-Lipschitz activations, an MLP of
``L`` layers is at most ``k^L``-Lipschitz (Robust RealNVP).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

__all__ = ["ACTIVATIONS", "MLP", "apply_lipschitz_bound", "refine_spectral_norms", "spectral_norms"]

class Tanh(nn.Module):
    """tanh; without autograd it is computed as ``2 * sigmoid(2x) - 1``.

    The same function (max difference ~2e-7 in float32): PyTorch's CPU sigmoid kernel is
    several times faster than its tanh kernel, and tanh dominates the cost of scoring with
    tanh conditioners. With autograd on (training) and in ONNX export, plain
    :func:`torch.tanh` is used.
    """

    def forward(self, x: Tensor) -> Tensor:
        if (torch.is_grad_enabled() and x.requires_grad) or torch.onnx.is_in_onnx_export():
            return torch.tanh(x)  # ONNX runtimes have a fast Tanh
        return torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)


#: Activation names accepted by :class:`MLP`; all are 1-Lipschitz.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": Tanh,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


#: Guard of the vector normalizations of the power iteration (as torch's spectral_norm).
EPS_NORMALIZE = 1e-12


def _normalized(x: Tensor, eps: float) -> Tensor:
    return x / torch.linalg.vector_norm(x).clamp_min(eps)


class _LipschitzSpectralNorm(nn.Module):
    r"""Parametrization :math:`W \mapsto W / (\hat\sigma(W) / k)`, with :math:`\hat\sigma = u^\top W v`.

    The same estimator as :func:`torch.nn.utils.parametrizations.spectral_norm` (which it
    replaces together with a separate ``W -> k W`` parametrization, in one pass and without
    copies; same initialization and state-dict keys): ``u`` and ``v`` are buffers initialized
    by 15 power-iteration steps; every forward pass in training mode runs
    ``n_power_iterations`` more steps (without gradient). The updated vectors are new tensors
    rather than in-place writes, so a graph that holds an earlier forward pass stays valid.
    """

    def __init__(self, weight: Tensor, k: float, n_power_iterations: int = 1, eps: float = EPS_NORMALIZE) -> None:
        super().__init__()
        if weight.ndim != 2:
            raise ValueError(f"weight must be a matrix (out_features, in_features), got shape {tuple(weight.shape)}.")
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be >= 1, got {n_power_iterations}.")
        self.k = float(k)
        self.n_power_iterations = int(n_power_iterations)
        self.eps = float(eps)
        h, w = weight.shape
        u = weight.new_empty(h).normal_(0, 1)
        v = weight.new_empty(w).normal_(0, 1)
        self.register_buffer("_u", _normalized(u, self.eps))
        self.register_buffer("_v", _normalized(v, self.eps))
        self._power_method(weight, 15)

    def _power_method(self, weight: Tensor, n_iter: int) -> None:
        weight = weight.detach()  # no graph: cheaper than a no_grad context on every call
        u, v = self._u, self._v
        for _ in range(n_iter):
            u = _normalized(torch.mv(weight, v), self.eps)
            v = _normalized(torch.mv(weight.t(), u), self.eps)
        # Rebind (no in-place write, no nn.Module.__setattr__ round trip): saved graphs stay valid.
        self._buffers["_u"] = u
        self._buffers["_v"] = v

    def forward(self, weight: Tensor) -> Tensor:
        if self.training:
            self._power_method(weight, self.n_power_iterations)
        # sigma / k = (u / k)^T W v: the constant 1/k goes on u (no graph node for it).
        u = self._u if self.k == 1.0 else self._u / self.k
        return weight / torch.dot(u, torch.mv(weight, self._v))

    def right_inverse(self, value: Tensor) -> Tensor:
        return value


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
    with torch.no_grad():
        sn = _LipschitzSpectralNorm(linear.weight, k, n_power_iterations)
    parametrize.register_parametrization(linear, "weight", sn)
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
            if isinstance(sn, _LipschitzSpectralNorm):
                sn._power_method(plist.original, n_iter)


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
        self.lipschitz_k = lipschitz_k
        last = layers[-1]
        assert isinstance(last, nn.Linear)
        if lipschitz_k is None:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        else:
            for layer in layers:
                if isinstance(layer, nn.Linear):
                    apply_lipschitz_bound(layer, lipschitz_k)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the network to ``x`` of shape ``(batch, in_features)``."""
        if self.lipschitz_k is None:
            return super().forward(x)
        for layer in self:
            plist = getattr(getattr(layer, "parametrizations", None), "weight", None)
            if plist is not None and len(plist) == 1:
                # Same value as ``layer(x)``; calls the parametrization directly, skipping the
                # generic property machinery of torch.nn.utils.parametrize (a large share of a
                # small layer's cost). Any other parametrization stack goes the generic way.
                x = F.linear(x, plist[0](plist.original), layer.bias)
            else:
                x = layer(x)
        return x
