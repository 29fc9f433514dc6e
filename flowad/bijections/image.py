"""Image bijections (NCHW tensors) for the Glow flow: reshape, squeeze, invertible 1x1
convolution, affine coupling with convolutional networks, per-domain AdaBN over channels and
multi-scale factor-out.

Every layer follows :class:`~flowad.bijections.Bijection`: ``forward`` maps data to latent and
returns ``(y, log|det J|)`` with the log-determinant of shape ``(batch,)``. Layers take and
return ``(N, C, H, W)`` tensors, except :class:`Reshape` (any shapes) and
:class:`FactorOut`, which returns flat ``(N, C*H*W)`` latents so that a whole multi-scale stack
maps one tensor to one tensor.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowad.bijections.adabn import MIN_BATCH_COUNT, AdaptiveBatchNorm
from flowad.bijections.base import Bijection

__all__ = [
    "AdaptiveBatchNorm2d",
    "ConvAffineCoupling",
    "FactorOut",
    "InvertibleConv1x1",
    "Reshape",
    "Squeeze",
]


def _check_int(name: str, value: object, minimum: int) -> int:
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return int(value)


def _check_4d(x: Tensor, layer: str, channels: int | None = None) -> None:
    if x.ndim != 4:
        raise ValueError(f"{layer} expects (N, C, H, W) tensors, got shape {tuple(x.shape)}.")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{layer} was built for {channels} channels, got {x.shape[1]} (shape {tuple(x.shape)}).")


class Reshape(Bijection):
    """View each sample of shape ``in_shape`` as ``out_shape`` (same size); log|det| = 0.

    Parameters
    ----------
    in_shape, out_shape : sequence of int
        Per-sample shapes (without the batch axis) with the same number of elements.
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            raise ValueError(f"Cannot reshape {self.in_shape} to {self.out_shape}: sizes differ.")

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], *self.out_shape), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y.reshape(y.shape[0], *self.in_shape), y.new_zeros(y.shape[0])

    def extra_repr(self) -> str:
        return f"{self.in_shape} -> {self.out_shape}"


class Squeeze(Bijection):
    r"""Space-to-depth: ``(N, C, H, W) -> (N, 4C, H/2, W/2)``, each 2x2 block into channels.

    A permutation of the entries, so :math:`\log|\det J| = 0`. ``H`` and ``W`` must be even.
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_4d(x, "Squeeze")
        n, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs an even height and width, got {h}x{w}.")
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)
        return y, x.new_zeros(n)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_4d(y, "Squeeze.inverse")
        n, c4, h, w = y.shape
        if c4 % 4:
            raise ValueError(f"Squeeze.inverse needs a channel count divisible by 4, got {c4}.")
        c = c4 // 4
        x = y.reshape(n, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, 2 * h, 2 * w)
        return x, y.new_zeros(n)


class InvertibleConv1x1(Bijection):
    r"""Invertible 1x1 convolution ``y = W x`` (per pixel), ``W`` in LU form (Glow).

    ``W = P L (U + \mathrm{diag}(\mathrm{sign}\cdot e^{\log s}))`` with a fixed permutation
    ``P`` and fixed signs (buffers), ``L`` unit lower-triangular and ``U`` strictly upper-
    triangular (parameters), started from the LU decomposition of a random rotation (drawn
    from torch's default generator: seed it for a reproducible start).

    Math
    ----
    .. math::
        \log|\det J| = H W \sum_i \log s_i .

    The inverse solves the two triangular factors (no general matrix inverse).

    Parameters
    ----------
    channels : int
        Number of channels ``C``.

    References
    ----------
    Kingma, Dhariwal. "Glow: Generative Flow with Invertible 1x1 Convolutions". NeurIPS 2018.
    """

    perm: Tensor
    sign_s: Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = _check_int("channels", channels, 1)
        c = self.channels
        q, _ = torch.linalg.qr(torch.randn(c, c, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(self.channels, dtype=self.lower.dtype, device=self.lower.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, upper

    def weight(self) -> Tensor:
        """The ``(C, C)`` matrix ``W``."""
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def _logdet(self, x: Tensor) -> Tensor:
        return (self.log_s.sum() * (x.shape[2] * x.shape[3])).expand(x.shape[0])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_4d(x, "InvertibleConv1x1", self.channels)
        y = F.conv2d(x, self.weight()[:, :, None, None])
        return y, self._logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_4d(y, "InvertibleConv1x1.inverse", self.channels)
        lower, upper = self._factors()
        eye = torch.eye(self.channels, dtype=lower.dtype, device=lower.device)
        lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        upper_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
        w_inv = upper_inv @ lower_inv @ self.perm.T
        return F.conv2d(y, w_inv[:, :, None, None]), -self._logdet(y)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class ConvAffineCoupling(Bijection):
    r"""Affine coupling over channels with a small convolutional network (Glow / RealNVP).

    The first ``C // 2`` channels pass unchanged and condition an affine map of the others:

    .. math::
        y_b = x_b \odot e^{s(x_a)} + t(x_a),\qquad s = s_{\max}\tanh(\tilde s / s_{\max}),
        \qquad \log|\det J| = \textstyle\sum_{c,h,w} s .

    The network is conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3 (zero padding); its last
    layer starts at zero, so the coupling starts as the identity. The bound keeps every scale
    in :math:`[e^{-s_{\max}}, e^{s_{\max}}]`.

    Parameters
    ----------
    channels : int
        Number of channels ``C`` (at least 2).
    hidden : int, default=64
        Channels of the network's hidden layers.
    s_max : float, default=3.0
        Bound of the log-scale.
    """

    def __init__(self, channels: int, hidden: int = 64, s_max: float = 3.0) -> None:
        super().__init__()
        self.channels = _check_int("channels", channels, 2)
        self.hidden = _check_int("hidden", hidden, 1)
        if not (isinstance(s_max, numbers.Real) and s_max > 0):
            raise ValueError(f"s_max must be > 0, got {s_max!r}.")
        self.s_max = float(s_max)
        self.split = self.channels // 2
        out = self.channels - self.split
        self.net = nn.Sequential(
            nn.Conv2d(self.split, self.hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(self.hidden, self.hidden, 1),
            nn.ReLU(),
            nn.Conv2d(self.hidden, 2 * out, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, x_a: Tensor) -> tuple[Tensor, Tensor]:
        raw_s, t = self.net(x_a).chunk(2, dim=1)
        return self.s_max * torch.tanh(raw_s / self.s_max), t

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_4d(x, "ConvAffineCoupling", self.channels)
        x_a, x_b = x[:, : self.split], x[:, self.split :]
        s, t = self._scale_shift(x_a)
        return torch.cat((x_a, x_b * torch.exp(s) + t), dim=1), s.sum(dim=(1, 2, 3))

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_4d(y, "ConvAffineCoupling.inverse", self.channels)
        y_a, y_b = y[:, : self.split], y[:, self.split :]
        s, t = self._scale_shift(y_a)
        return torch.cat((y_a, (y_b - t) * torch.exp(-s)), dim=1), -s.sum(dim=(1, 2, 3))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}, s_max={self.s_max}"


class AdaptiveBatchNorm2d(AdaptiveBatchNorm):
    r"""AdaBN for images: per-channel statistics over ``(N, H, W)``, one set per domain.

    The image counterpart of :class:`~flowad.bijections.AdaptiveBatchNorm` (and of Glow's
    ActNorm, which it replaces in the AdaFlow image model): channel ``c`` of a sample of
    domain ``k`` is normalized with that domain's mean :math:`\mu_{k,c}` and variance
    :math:`\sigma^2_{k,c}` over all its pixels, then scaled and shifted by parameters shared by
    every domain. Buffers, ``set_statistics``, ``add_domain``, ``remove_domain``, train / eval
    behaviour and the ``context`` convention are those of the parent class, with ``features``
    = number of channels.

    Math
    ----
    .. math::
        y_{c,h,w} = \gamma_c \frac{x_{c,h,w} - \mu_{k,c}}{\sqrt{\sigma^2_{k,c} + \epsilon}} + \beta_c,
        \qquad \log|\det J| = H W \sum_c \Big(\log\gamma_c - \tfrac12\log(\sigma^2_{k,c}+\epsilon)\Big).

    In train mode the statistics of each domain are those of its samples in the minibatch
    (over their pixels); a domain with fewer than ``MIN_BATCH_COUNT`` samples in the batch uses
    its stored statistics. In eval mode the stored ones. Statistics are set by forward passes
    (see :func:`flowad.flows.glow.update_image_statistics`).

    Parameters
    ----------
    channels : int
        Number of channels ``C``.
    n_domains : int, default=1
        Statistics rows to start with.
    """

    def _batch_statistics(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        if context is None:
            if x.shape[0] < MIN_BATCH_COUNT:
                return self.running_mean, self.running_var
            return x.mean(dim=(0, 2, 3)).unsqueeze(0), x.var(dim=(0, 2, 3), unbiased=False).unsqueeze(0)
        k = self.n_domains
        counts = torch.bincount(context, minlength=k)
        n = counts.to(x.dtype).clamp_min(1).unsqueeze(1)
        mean = x.new_zeros(k, self.features).index_add(0, context, x.mean(dim=(2, 3))) / n
        dev = (x - mean[context][:, :, None, None]).square().mean(dim=(2, 3))
        var = x.new_zeros(k, self.features).index_add(0, context, dev) / n
        few = (counts < MIN_BATCH_COUNT).unsqueeze(1)
        return torch.where(few, self.running_mean, mean), torch.where(few, self.running_var, var)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_4d(x, "AdaptiveBatchNorm2d", self.features)
        mean, multiplier, logdet = self._affine(x, context)
        y = (x - mean[:, :, None, None]) * multiplier[:, :, None, None] + self.shift[None, :, None, None]
        return y, logdet * (x.shape[2] * x.shape[3])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_4d(y, "AdaptiveBatchNorm2d.inverse", self.features)
        if self.training:
            return super().inverse(y, context)  # raises InverseUnavailableError
        mean, multiplier, logdet = self._affine(y, context)
        x = (y - self.shift[None, :, None, None]) / multiplier[:, :, None, None] + mean[:, :, None, None]
        return x, -logdet * (y.shape[2] * y.shape[3])

    def forward_with_statistics(self, x: Tensor, mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
        """The forward map with explicit per-channel ``mean`` and ``var`` of shape ``(C,)``."""
        multiplier, logdet = self._multiplier(var)
        y = (x - mean[None, :, None, None]) * multiplier[None, :, None, None] + self.shift[None, :, None, None]
        return y, (logdet * (x.shape[2] * x.shape[3])).expand(x.shape[0])

    def extra_repr(self) -> str:
        return f"channels={self.features}, n_domains={self.n_domains}"


class FactorOut(Bijection):
    r"""One level of a multi-scale flow: ``steps``, then half the channels leave (Glow / RealNVP).

    ``forward`` runs ``steps`` on the ``(N, C, H, W)`` input (shape ``shape``; ``steps`` may
    change it, e.g. with a :class:`Squeeze`, to ``(C', H', W')``). Without ``deeper`` the
    result is flattened and returned. Otherwise the last ``C' - C'//2`` channels are factored
    out (flattened, modelled by the base distribution directly) and the first ``C'//2`` go
    through ``deeper``, another level returning a flat latent; the output is
    ``cat(deeper latent, factored-out channels)``, of size ``C H W``.

    Parameters
    ----------
    steps : Bijection
        Maps ``(N, *shape)`` to ``(N, *inner_shape)``.
    shape : sequence of int
        Per-sample input shape ``(C, H, W)``.
    inner_shape : sequence of int
        Per-sample shape after ``steps``.
    deeper : Bijection or None
        Level applied to the kept channels, mapping ``(N, C'//2, H', W')`` to flat latents.
    """

    def __init__(self, steps: Bijection, shape: Sequence[int], inner_shape: Sequence[int], deeper: Bijection | None = None) -> None:
        super().__init__()
        self.steps = steps
        self.shape = tuple(int(s) for s in shape)
        self.inner_shape = tuple(int(s) for s in inner_shape)
        if math.prod(self.shape) != math.prod(self.inner_shape):
            raise ValueError(f"steps must keep the size: {self.shape} vs {self.inner_shape}.")
        self.deeper = deeper
        c, h, w = self.inner_shape
        self.kept = c // 2 if deeper is not None else c
        if deeper is not None and self.kept < 1:
            raise ValueError(f"Cannot factor out half of {c} channel(s).")

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, ld = self.steps(x, context)
        if self.deeper is None:
            return h.flatten(1), ld
        z, ld2 = self.deeper(h[:, : self.kept], context)
        return torch.cat((z, h[:, self.kept :].flatten(1)), dim=1), ld + ld2

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        c, hh, ww = self.inner_shape
        n = y.shape[0]
        if self.deeper is None:
            h = y.reshape(n, c, hh, ww)
            total = y.new_zeros(n)
        else:
            inner = self.kept * hh * ww
            kept, ld2 = self.deeper.inverse(y[:, :inner], context)
            h = torch.cat((kept, y[:, inner:].reshape(n, c - self.kept, hh, ww)), dim=1)
            total = ld2
        x, ld = self.steps.inverse(h, context)
        return x, total + ld

    def extra_repr(self) -> str:
        return f"shape={self.shape}, inner_shape={self.inner_shape}, factored_out={self.inner_shape[0] - self.kept}"
