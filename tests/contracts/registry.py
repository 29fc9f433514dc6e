"""Registry of bijections checked by the contract suite (tests/contracts/test_bijections.py).

Every bijection registers one or more *cases* here: a name, a factory that builds the layer
for a feature dimension, and optionally a ``context`` factory (per-sample context for layers
that use it, e.g. domain indices) and a ``prepare`` hook run once before the checks (e.g. to
give a batch-norm layer its statistics and switch it to eval mode).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from flowad.bijections import (
    AdaptiveBatchNorm,
    AffineCoupling,
    Bijection,
    Compose,
    Inverse,
    LeakyReLU,
    LULinear,
    Permutation,
    Whitening,
)
from flowad.flows import build_adaflow, build_realnvp
from flowad.flows.adaflow import update_statistics


@dataclass(frozen=True)
class Case:
    name: str
    factory: Callable[[int], Bijection]
    context: Callable[[int], torch.Tensor | None] = field(default=lambda n: None)
    prepare: Callable[[Bijection, torch.Tensor, torch.Tensor | None], None] = field(default=lambda b, x, c: None)
    #: Jacobian structure promised by the design: "lower" (triangular, coupling-like after
    #: ordering), "diagonal" (element-wise) or None (dense).
    structure: str | None = None
    #: Whether train and eval modes compute the same function.
    train_equals_eval: bool = True
    #: Whether every parameter should receive a gradient from the log-likelihood.
    all_params_get_grad: bool = True


def _randomize(module: torch.nn.Module) -> torch.nn.Module:
    """Move zero-initialised weights away from zero so the layer is not the identity."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return module


CASES: list[Case] = [
    Case("coupling", lambda d: _randomize(AffineCoupling(d, hidden=(8, 8)))),
    Case("coupling-split1", lambda d: _randomize(AffineCoupling(d, split=1, hidden=(8,)))),
    Case("coupling-tanh", lambda d: _randomize(AffineCoupling(d, hidden=(8, 8), activation="tanh"))),
    Case("coupling-sn", lambda d: AffineCoupling(d, hidden=(8, 8), lipschitz_k=0.9), train_equals_eval=False),
    Case("permutation", lambda d: Permutation(torch.randperm(d)), all_params_get_grad=False),
    Case("reversal", lambda d: Permutation.reverse(d), all_params_get_grad=False),
    Case("inverse-coupling", lambda d: Inverse(_randomize(AffineCoupling(d, hidden=(8, 8))))),
    Case(
        "realnvp-stack",
        lambda d: _randomize(build_realnvp(d, n_couplings=3, hidden=(8,)).bijection),
    ),
    Case(
        "robust-realnvp-stack",
        lambda d: build_realnvp(d, n_couplings=3, hidden=(8,), lipschitz_k=1.0).bijection,
        train_equals_eval=False,
    ),
    Case("compose-empty", lambda d: Compose([]), all_params_get_grad=False),
    Case("whitening", lambda d: _whitening(d), all_params_get_grad=False),
    Case(
        "coupling-sn-identity-init",
        lambda d: _randomize(AffineCoupling(d, hidden=(8, 8), lipschitz_k=1.0, identity_init=True)),
        train_equals_eval=False,
    ),
    Case(
        "gaussian-core-stack",
        lambda d: _with_random_whitening(_randomize(build_realnvp(d, n_couplings=3, hidden=(8,), lipschitz_k=1.0, whiten=True, identity_init=True).bijection)),
        train_equals_eval=False,
    ),
]


def _random_statistics(d: int) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.randn(d, d, dtype=torch.float64)
    return torch.randn(d, dtype=torch.float64), a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64)


def _whitening(d: int) -> Whitening:
    layer = Whitening(d)
    layer.set_statistics(*_random_statistics(d))
    return layer


def _with_random_whitening(stack: Compose) -> Compose:
    stack.layers[0].set_statistics(*_random_statistics(stack.layers[0].features))
    return stack


# --------------------------------------------------------------------------- AdaFlow (issue 3)
def _domains(n_domains: int) -> Callable[[int], torch.Tensor]:
    return lambda n: torch.arange(n) % n_domains


def _adapt_each_domain(bij: Bijection, x: torch.Tensor, ctx: torch.Tensor | None) -> None:
    """Give every domain the statistics of its own rows (forward passes only), then eval mode."""
    bij.eval()
    if ctx is None:
        update_statistics(bij, x, 0)
        return
    for k in ctx.unique().tolist():
        update_statistics(bij, x[ctx == k], k)


CASES += [
    Case("lu-linear", lambda d: _randomize(LULinear(d))),
    Case("leaky-relu", lambda d: LeakyReLU(0.3), structure="diagonal", all_params_get_grad=False),
    Case(
        "adabn-1-domain",
        lambda d: _randomize(AdaptiveBatchNorm(d)),
        prepare=_adapt_each_domain,
        structure="diagonal",
        train_equals_eval=False,
    ),
    Case(
        "adabn-3-domains",
        lambda d: _randomize(AdaptiveBatchNorm(d, n_domains=3)),
        context=_domains(3),
        prepare=_adapt_each_domain,
        structure="diagonal",
        train_equals_eval=False,
    ),
    Case(
        "adaflow-stack",
        lambda d: _randomize(build_adaflow(d, n_domains=2).bijection),
        context=_domains(2),
        prepare=_adapt_each_domain,
        train_equals_eval=False,
    ),
    Case(
        "adaflow-stack-couplings",
        lambda d: _randomize(build_adaflow(d, n_domains=2, n_layers=3, n_couplings=1, hidden=(8,)).bijection),
        context=_domains(2),
        prepare=_adapt_each_domain,
        train_equals_eval=False,
    ),
]


# --------------------------------------------------------------------------- images (issue 15)
# The contract feeds (batch, d) rows; the image layers see them as (batch, d, 1, 1) images (d
# channels of one pixel). Squeeze and the multi-scale stack need larger images: they are
# checked on tiny images by tests/images/test_image_bijections.py.
from flowad.bijections.image import AdaptiveBatchNorm2d, ConvAffineCoupling, InvertibleConv1x1, Reshape  # noqa: E402
from flowad.flows.glow import glow_step, update_image_statistics  # noqa: E402


def _as_pixels(layer: Callable[[int], Bijection]) -> Callable[[int], Bijection]:
    return lambda d: Compose([Reshape((d,), (d, 1, 1)), layer(d), Reshape((d, 1, 1), (d,))])


def _adapt_images(bij: Bijection, x: torch.Tensor, ctx: torch.Tensor | None) -> None:
    bij.eval()
    if ctx is None:
        update_image_statistics(bij, x, 0)
        return
    for k in ctx.unique().tolist():
        update_image_statistics(bij, x[ctx == k], k)


CASES += [
    Case("image-invconv1x1", _as_pixels(lambda d: _randomize(InvertibleConv1x1(d)))),
    Case("image-conv-coupling", _as_pixels(lambda d: _randomize(ConvAffineCoupling(d, hidden=4)))),
    Case(
        "image-adabn2d-2-domains",
        _as_pixels(lambda d: _randomize(AdaptiveBatchNorm2d(d, n_domains=2))),
        context=_domains(2),
        prepare=_adapt_images,
        structure="diagonal",
        train_equals_eval=False,
    ),
    Case(
        "image-glow-step-2-domains",
        _as_pixels(lambda d: _randomize(glow_step(d, n_domains=2, hidden=4))),
        context=_domains(2),
        prepare=_adapt_images,
        train_equals_eval=False,
    ),
]
