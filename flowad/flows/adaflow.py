"""AdaFlow: builders, and computing a domain's AdaBN statistics by forward passes only.

The default architecture is the published one (data -> latent):

    LU-linear -> AdaBN -> leaky ReLU -> LU-linear -> AdaBN

``n_layers`` sets the number of (LU-linear -> AdaBN) units, with a leaky ReLU between
consecutive units; ``n_couplings`` affine couplings (each followed by a feature reversal) can
be inserted after each leaky ReLU for more capacity. With ``n_domains=1`` the same stack is
an ordinary batch-normalized flow (the comparison models' flow, :func:`build_batchnorm_flow`).

Statistics of a domain are never learned by gradient: they are set by

* :func:`update_statistics` — one forward pass over rows held in memory. Each AdaBN layer
  merges the moments of *its* input (computed with the domain's new statistics of the layers
  before it) into the domain's statistics, stores them, and normalizes with them. With
  ``prior_count=0`` this is exact whole-batch adaptation in a single pass.
* :func:`adapt_statistics` — streaming over re-readable chunks, memory :math:`O(D)` per layer
  whatever the number of rows: pass ``j`` runs the layers before the ``j``-th AdaBN and merges
  per-chunk moments (count, mean, M2). It takes one pass per AdaBN layer (2 by default), the
  ``j``-th pass running only the stack up to that layer.

Both return the same statistics up to rounding, whatever the chunking.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

from flowad.bijections.adabn import AdaptiveBatchNorm, RunningMoments
from flowad.bijections.base import Bijection, Compose
from flowad.bijections.coupling import AffineCoupling
from flowad.bijections.leaky_relu import LeakyReLU
from flowad.bijections.lu import LULinear
from flowad.bijections.permutation import Permutation
from flowad.exceptions import NonFiniteError
from flowad.flows.flow import Flow

__all__ = [
    "adabn_layers",
    "adapt_statistics",
    "build_adaflow",
    "build_batchnorm_flow",
    "flat_layers",
    "update_statistics",
]

#: A zero-argument callable returning an iterable of ``(n_i, D)`` tensors; called once per pass.
ChunkSource = Callable[[], Iterable[Tensor]]


def build_adaflow(
    features: int,
    *,
    n_domains: int = 1,
    n_layers: int = 2,
    alpha: float = 0.1,
    n_couplings: int = 0,
    hidden: Sequence[int] = (64, 64),
    s_max: float = 3.0,
) -> Flow:
    """AdaFlow: ``n_layers`` (LU-linear -> AdaBN) units with leaky ReLUs in between.

    Parameters
    ----------
    features : int
        Data dimension ``D``.
    n_domains : int, default=1
        Statistics rows of every AdaBN layer.
    n_layers : int, default=2
        Number of (LU-linear -> AdaBN) units; 2 is the published architecture.
    alpha : float in (0, 1), default=0.1
        Negative slope of the leaky ReLUs.
    n_couplings : int, default=0
        Affine couplings inserted after each leaky ReLU (needs ``n_layers >= 2``).
    hidden : sequence of int, default=(64, 64)
        Hidden widths of the couplings' networks.
    s_max : float, default=3.0
        Log-scale bound of the couplings.

    Returns
    -------
    Flow
        Whose ``bijection`` is a flat :class:`~flowad.bijections.Compose`.
    """
    if not (isinstance(n_layers, numbers.Integral) and n_layers >= 1):
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}.")
    if not (isinstance(n_couplings, numbers.Integral) and n_couplings >= 0):
        raise ValueError(f"n_couplings must be an int >= 0, got {n_couplings!r}.")
    if n_couplings and n_layers < 2:
        raise ValueError(f"n_couplings={n_couplings} needs n_layers >= 2 (couplings go after the leaky ReLUs).")
    layers: list[Bijection] = []
    for i in range(n_layers):
        if i > 0:
            layers.append(LeakyReLU(alpha))
            for _ in range(n_couplings):
                layers.append(AffineCoupling(features, hidden=hidden, s_max=s_max))
                if features > 1:
                    layers.append(Permutation.reverse(features))
        layers.append(LULinear(features))
        layers.append(AdaptiveBatchNorm(features, n_domains))
    return Flow(Compose(layers), features)


def build_batchnorm_flow(features: int, **kwargs: object) -> Flow:
    """The same stack with ordinary (single-domain) batch normalization.

    Keyword arguments are those of :func:`build_adaflow` except ``n_domains``.
    """
    if "n_domains" in kwargs:
        raise TypeError("build_batchnorm_flow has a single domain; do not pass n_domains.")
    return build_adaflow(features, n_domains=1, **kwargs)  # type: ignore[arg-type]


def flat_layers(bijection: Bijection) -> list[Bijection]:
    """The layers of ``bijection`` in forward order, nested :class:`Compose` flattened."""
    if isinstance(bijection, Compose):
        return [leaf for layer in bijection.layers for leaf in flat_layers(layer)]
    return [bijection]


def adabn_layers(bijection: Bijection) -> list[AdaptiveBatchNorm]:
    """The AdaBN layers of ``bijection`` in forward order."""
    return [layer for layer in flat_layers(bijection) if isinstance(layer, AdaptiveBatchNorm)]


def _checked_layers(bijection: Bijection) -> list[Bijection]:
    if bijection.training:
        raise RuntimeError("Domain statistics are computed in eval mode; call .eval() on the flow first.")
    layers = flat_layers(bijection)
    for i, layer in enumerate(layers):
        if not isinstance(layer, AdaptiveBatchNorm) and any(isinstance(m, AdaptiveBatchNorm) for m in layer.modules()):
            raise TypeError(
                f"Layer {i} ({type(layer).__name__}) wraps an AdaptiveBatchNorm; only AdaBN layers placed directly "
                "in (nested) Compose stacks can be adapted."
            )
    return layers


def _context(x: Tensor, domain: int) -> Tensor:
    return torch.full((x.shape[0],), int(domain), dtype=torch.long, device=x.device)


@torch.no_grad()
def update_statistics(bijection: Bijection, x: Tensor, domain: int, *, prior_count: int = 0) -> tuple[Tensor, Tensor]:
    """Merge the rows of ``x`` into the statistics of ``domain`` in one forward pass.

    Each AdaBN layer, in forward order, merges the moments of its input into the domain's
    stored statistics (which summarise ``prior_count`` earlier rows; 0 = replace them), stores
    the result and normalizes with it, so layer ``j`` sees inputs normalized with the new
    statistics of layers ``< j``. No autograd graph is built and no parameter changes.

    Parameters
    ----------
    bijection : Bijection
        A stack in eval mode (e.g. ``flow.bijection``).
    x : Tensor of shape (batch, D)
        Rows of the domain.
    domain : int
        Row index of the domain in every AdaBN layer (it must exist).
    prior_count : int, default=0
        Rows the stored statistics already summarise.

    Returns
    -------
    z : Tensor of shape (batch, D)
        ``f(x)`` under the updated statistics.
    logabsdet : Tensor of shape (batch,)
        ``log|det J_f(x)|`` under the updated statistics.
    """
    layers = _checked_layers(bijection)
    ctx = _context(x, domain)
    total = x.new_zeros(x.shape[0])
    for layer in layers:
        if isinstance(layer, AdaptiveBatchNorm):
            moments = RunningMoments(prior_count, *layer.statistics(domain)) if prior_count else RunningMoments()
            moments.update(x)
            _store_statistics(layer, domain, moments)
        x, ld = layer(x, ctx)
        total = total + ld
    return x, total


def _store_statistics(layer: AdaptiveBatchNorm, domain: int, moments: RunningMoments) -> None:
    """Set ``domain``'s statistics of ``layer``, refusing moments that overflowed."""
    if not (torch.isfinite(moments.mean).all() and torch.isfinite(moments.var).all()):
        raise NonFiniteError(
            "The mean or variance of the adaptation rows is not finite inside the flow: their values lie "
            "astronomically far from the training data (or overflow the model's dtype). Check the rows' units "
            "and scale; the domain was left unchanged."
        )
    layer.set_statistics(domain, moments.mean, moments.var)


@torch.no_grad()
def adapt_statistics(bijection: Bijection, chunks: ChunkSource, domain: int) -> int:
    """Compute the statistics of ``domain`` from a re-readable stream of chunks.

    Pass ``j`` (one per AdaBN layer) reads every chunk, runs it through the layers before the
    ``j``-th AdaBN (whose statistics for ``domain`` were set by the earlier passes) and merges
    the chunk's moments; memory is :math:`O(D)` per layer plus one chunk. The result equals
    ``update_statistics(bijection, cat(chunks), domain)`` up to rounding.

    Parameters
    ----------
    bijection : Bijection
        A stack in eval mode.
    chunks : callable
        ``chunks()`` returns an iterable of tensors of shape ``(n_i, D)``; it is called once per
        pass and must yield the same rows every time.
    domain : int
        Row index of the domain in every AdaBN layer (it must exist).

    Returns
    -------
    int
        Number of rows read per pass.
    """
    layers = _checked_layers(bijection)
    positions = [i for i, layer in enumerate(layers) if isinstance(layer, AdaptiveBatchNorm)]
    count = None
    for pass_no, pos in enumerate(positions, start=1):
        moments = RunningMoments()
        for chunk in chunks():
            h = chunk
            ctx = _context(h, domain)
            for layer in layers[:pos]:
                h, _ = layer(h, ctx)
            moments.update(h)
        if moments.count == 0:
            raise ValueError("The chunk source yielded no rows.")
        if count is not None and moments.count != count:
            raise ValueError(
                f"The chunk source yielded {count} rows on pass 1 but {moments.count} on pass {pass_no}; "
                "it must yield the same rows on every call."
            )
        count = moments.count
        _store_statistics(layers[pos], domain, moments)
    return int(count or 0)
