"""Glow with per-domain AdaBN: a multi-scale image flow whose normalization statistics are
kept per domain (the AdaFlow image model), adapted by forward passes only.

Architecture (data -> latent), for images of shape ``(C, H, W)``::

    flat (N, C*H*W) -> reshape (N, C, H, W)
    level 1: squeeze -> K x [AdaBN2d -> invertible 1x1 conv -> affine coupling] -> factor out half
    level 2: squeeze -> K x [...] -> factor out half
    ...
    level L: squeeze -> K x [...]                      -> flat latent (N, C*H*W)

This is Glow (Kingma & Dhariwal, 2018) with every ActNorm replaced by AdaBN with per-domain
statistics (Yamaguchi et al., AdaFlow, 2019). Factored-out channels are modelled by the
standard-normal base distribution directly (no learned prior), so the flow is an ordinary
:class:`~flowad.flows.Flow` on flat vectors and ``log_prob`` is a density of the flattened
image. ``H`` and ``W`` must be divisible by ``2**L``.

Images as densities: pixel values ``v`` in ``{0, ..., 255}`` are dequantized to
``v + u`` (``u`` uniform in ``[0, 1)`` when training, ``u = 1/2`` when scoring) and mapped to
``(v + u) / 256 - 1/2``; :func:`bits_per_dim` converts a log-density of that input to bits
per dimension of the 8-bit image, as image flows report it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from flowad.bijections.adabn import RunningMoments
from flowad.bijections.base import Bijection, Compose
from flowad.bijections.image import (
    AdaptiveBatchNorm2d,
    ConvAffineCoupling,
    FactorOut,
    InvertibleConv1x1,
    Reshape,
    Squeeze,
)
from flowad.flows.flow import Flow

__all__ = [
    "adabn2d_layers",
    "bits_per_dim",
    "build_glow",
    "glow_step",
    "update_image_statistics",
]


def glow_step(channels: int, *, n_domains: int = 1, hidden: int = 64, s_max: float = 1.0) -> Compose:
    """One Glow step with AdaBN: AdaBN2d -> invertible 1x1 conv -> affine coupling."""
    return Compose(
        [
            AdaptiveBatchNorm2d(channels, n_domains),
            InvertibleConv1x1(channels),
            ConvAffineCoupling(channels, hidden=hidden, s_max=s_max),
        ]
    )


def build_glow(
    shape: Sequence[int],
    *,
    n_domains: int = 1,
    levels: int = 3,
    steps: int = 4,
    hidden: int = 64,
    s_max: float = 1.0,
) -> Flow:
    """Multi-scale Glow with per-domain AdaBN on flat images of shape ``(C, H, W)``.

    Parameters
    ----------
    shape : sequence of 3 ints
        ``(C, H, W)``; ``H`` and ``W`` divisible by ``2**levels``.
    n_domains : int, default=1
        Statistics rows of every AdaBN layer.
    levels : int, default=3
        Number of scales (each starts with a squeeze; all but the last factor out half).
    steps : int, default=4
        Glow steps per level.
    hidden : int, default=64
        Hidden channels of the coupling networks.
    s_max : float, default=1.0
        Log-scale bound of the couplings. Translation runs the inverse map with another
        domain's statistics, where every coupling may expand by up to ``exp(s_max)``: with 3.0,
        one held-out photo of ``results/images`` went to pixel values of millions (no exact
        float32 round trip); with 1.0 none did, at a similar held-out bits/dim.

    Returns
    -------
    Flow
        On flat inputs of size ``C*H*W``; its bijection is ``Compose([Reshape, FactorOut])``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (C, H, W) with positive sizes, got {shape}.")
    for name, v, lo in (("levels", levels, 1), ("steps", steps, 1), ("hidden", hidden, 1), ("n_domains", n_domains, 1)):
        if not (isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= lo):
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}.")
    c, h, w = shape
    if h % (2**levels) or w % (2**levels):
        raise ValueError(f"Image height and width ({h}x{w}) must be divisible by 2**levels = {2**levels}.")

    def level(i: int, cin: int, hh: int, ww: int) -> FactorOut:
        inner = (4 * cin, hh // 2, ww // 2)
        body = Compose([Squeeze()] + [glow_step(inner[0], n_domains=n_domains, hidden=hidden, s_max=s_max) for _ in range(steps)])
        deeper = None if i == levels - 1 else level(i + 1, inner[0] // 2, inner[1], inner[2])
        return FactorOut(body, (cin, hh, ww), inner, deeper)

    bijection = Compose([Reshape((c * h * w,), shape), level(0, c, h, w)])
    return Flow(bijection, c * h * w)


def adabn2d_layers(module: torch.nn.Module) -> list[AdaptiveBatchNorm2d]:
    """The image AdaBN layers of ``module`` in forward order."""
    return [m for m in module.modules() if isinstance(m, AdaptiveBatchNorm2d)]


def bits_per_dim(log_density: Tensor, n_dims: int, *, n_bins: int = 256) -> Tensor:
    r"""Bits per dimension of 8-bit images from the log-density of their scaled input.

    ``log_density`` is :math:`\log p(y)` of :math:`y = (v + u)/n_{bins} - 1/2`; the density of
    the dequantized pixels :math:`v + u` is :math:`p(y)\,n_{bins}^{-D}`, so

    .. math:: \mathrm{bpd} = -\frac{\log p(y) - D \log n_{bins}}{D \log 2}.
    """
    return -(log_density - n_dims * math.log(n_bins)) / (n_dims * math.log(2.0))


@contextlib.contextmanager
def _collecting(bijection: Bijection, domain: int, prior_count: int) -> Iterator[None]:
    """Pre-hooks that set each AdaBN2d's statistics of ``domain`` from its input, in call order."""

    def hook(layer: AdaptiveBatchNorm2d, args: tuple) -> None:
        x = args[0]
        pixels = x.shape[2] * x.shape[3]
        rows = x.permute(0, 2, 3, 1).reshape(-1, layer.features)
        moments = RunningMoments(prior_count * pixels, *layer.statistics(domain)) if prior_count else RunningMoments()
        moments.update(rows)
        layer.set_statistics(domain, moments.mean, moments.var)

    handles = [layer.register_forward_pre_hook(hook) for layer in adabn2d_layers(bijection)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def update_image_statistics(bijection: Bijection, x: Tensor, domain: int, *, prior_count: int = 0) -> tuple[Tensor, Tensor]:
    """Set every AdaBN2d layer's statistics of ``domain`` from images ``x`` in one forward pass.

    Each layer, in the order the forward pass reaches it, computes the per-channel mean and
    variance of *its* input (over images and pixels; the layers before it already normalize
    with the new statistics), merges them with the ``prior_count`` images its stored statistics
    summarise (0 = replace them), stores them and normalizes with them. No gradient, no
    parameter changes: this is AdaBN's adaptation.

    Parameters
    ----------
    bijection : Bijection
        In eval mode (e.g. ``flow.bijection`` of :func:`build_glow`).
    x : Tensor
        Images of the domain, in the bijection's input layout.
    domain : int
        Statistics row to set (it must exist).
    prior_count : int, default=0
        Images the stored statistics already summarise.

    Returns
    -------
    z, logabsdet : Tensor
        ``f(x)`` and its log-determinant under the new statistics.
    """
    if bijection.training:
        raise RuntimeError("Domain statistics are computed in eval mode; call .eval() on the flow first.")
    ctx = torch.full((x.shape[0],), int(domain), dtype=torch.long, device=x.device)
    with _collecting(bijection, domain, prior_count):
        return bijection(x, ctx)
