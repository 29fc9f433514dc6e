"""The training loop: minibatch Adam on the (trimmed) negative log-likelihood."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import torch
from torch import Tensor

from flowad.exceptions import TrainingDivergedError
from flowad.flows.flow import Flow
from flowad.nn.mlp import refine_spectral_norms
from flowad.training.config import TrainConfig

__all__ = ["fit_flow", "trimmed_mean", "n_kept", "kept_rows", "observe_epochs", "validation_loss"]

logger = logging.getLogger(__name__)

#: Called after every epoch with ``(epoch, mean_loss)``; epochs count from 1.
EpochCallback = Callable[[int, float], None]
#: Called after every epoch with ``(epoch, total_epochs, mean_loss)``.
EpochObserver = Callable[[int, int, float], None]

_observers: ContextVar[tuple[EpochObserver, ...]] = ContextVar("flowad_epoch_observers", default=())


@contextlib.contextmanager
def observe_epochs(observer: EpochObserver) -> Iterator[None]:
    """Call ``observer(epoch, total_epochs, loss)`` after every epoch of every :func:`fit_flow`
    run inside the ``with`` block (progress bars, live loss plots). Scoped to the current
    context (thread / task); nothing global is changed.
    """
    token = _observers.set((*_observers.get(), observer))
    try:
        yield
    finally:
        _observers.reset(token)


def n_kept(batch: int, trim_ratio: float) -> int:
    """Samples kept by the trimmed loss: ``batch - floor(trim_ratio * batch)``, at least 1."""
    return max(1, batch - math.floor(trim_ratio * batch))


def trimmed_mean(nll: Tensor, trim_ratio: float) -> Tensor:
    """Mean of ``nll`` over its ``n_kept`` smallest entries (Robust RealNVP, Algorithm 1).

    The ``floor(trim_ratio * batch)`` samples with the largest negative log-likelihood — the
    lowest estimated density, i.e. the likeliest anomalies — get no gradient in this step.
    """
    if trim_ratio <= 0.0:
        return nll.mean()
    kept = torch.topk(nll, n_kept(nll.shape[0], trim_ratio), largest=False, sorted=False).values
    return kept.mean()


def _nll(flow: Flow, X: Tensor, context: Tensor | None, batch: int) -> Tensor:
    """Negative log-likelihood of every row of ``X`` (eval mode, no gradients), in chunks."""
    flow.eval()
    with torch.inference_mode():
        return torch.cat(
            [-flow.log_prob(X[i : i + batch], None if context is None else context[i : i + batch]) for i in range(0, X.shape[0], batch)]
        )


def kept_rows(flow: Flow, X: Tensor, trim_ratio: float, context: Tensor | None = None, batch: int = 8192) -> Tensor:
    """Indices of the ``n_kept(n, trim_ratio)`` rows of ``X`` with the lowest negative
    log-likelihood under ``flow`` (eval mode, no gradients), in increasing order: the rows an
    epoch-scope trimmed loss trains on. Rows whose likelihood is not finite (NaN included) are
    the first left out."""
    nll = _nll(flow, X, context, batch)
    nll = torch.where(torch.isnan(nll), torch.full_like(nll, math.inf), nll)
    kept = torch.topk(nll, n_kept(X.shape[0], trim_ratio), largest=False, sorted=False).indices
    return torch.sort(kept).values  # in row order: the epoch's shuffle then depends on the kept set only


def validation_loss(flow: Flow, X: Tensor, trim_ratio: float, context: Tensor | None = None, batch: int = 8192) -> float:
    """Trimmed mean negative log-likelihood of ``X`` (eval mode, no gradients); ``inf`` if not finite."""
    value = float(trimmed_mean(_nll(flow, X, context, batch), trim_ratio))
    return value if math.isfinite(value) else math.inf


def _diverged(epoch: int, step: int, cfg: TrainConfig, value: float) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"Training diverged: the loss became {value} at epoch {epoch}, step {step} "
        f"(lr={cfg.lr}). Likely causes: a learning rate too high for this data, features with "
        "extreme values or heavy duplicates (near-singular density), or too deep a flow. "
        "Try a smaller lr, fewer epochs, or check the input for outliers in scale."
    )


#: An epoch whose mean loss exceeds the first minibatch's loss by more than this many times
#: ``max(1, |first loss|)`` has diverged. On 16 ODDS datasets (RobustRealNVP, RealNVP and AdaFlow
#: with default settings, 30 epochs, at most 3000 rows) no epoch's mean loss rose above 1.7 x the
#: first minibatch's (single minibatches: 5.6 x), while lr=1e6 drives it to 1e12-1e13.
DIVERGENCE_FACTOR = 1000.0


def _exploded(epoch: int, cfg: TrainConfig, value: float, initial: float) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"Training diverged: the mean loss of epoch {epoch} is {value:.4g}, against {initial:.4g} at the start "
        f"(more than {DIVERGENCE_FACTOR:g} times worse; lr={cfg.lr}). Likely cause: a learning rate too high "
        "for this data (the optimizer overshoots and the density explodes); also features with extreme values "
        "or too deep a flow. Try a smaller lr (the default is 1e-3) or a smaller grad_clip."
    )


def fit_flow(
    flow: Flow,
    X: Tensor,
    config: TrainConfig,
    *,
    generator: torch.Generator,
    context: Tensor | None = None,
    on_epoch: EpochCallback | None = None,
    X_val: Tensor | None = None,
    context_val: Tensor | None = None,
    dequantize: Tensor | None = None,
) -> list[float]:
    """Train ``flow`` on the rows of ``X`` by maximum likelihood; return the per-epoch mean loss.

    Parameters
    ----------
    flow : Flow
        Model to train in place (left in eval mode on return).
    X : Tensor of shape (n_samples, D)
        Training data, already on the flow's device and dtype.
    config : TrainConfig
        Optimisation settings, including the trim ratio and where it acts
        (``config.trim_scope``: within each minibatch, or once per epoch over all rows by
        :func:`kept_rows`, the epoch's minibatches then drawn from the rows kept).
    generator : torch.Generator
        Source of the minibatch shuffling (on ``X``'s device).
    context : Tensor of shape (n_samples,), optional
        Per-sample context passed to the flow (e.g. domain indices); batched with ``X``.
    on_epoch : callable, optional
        ``on_epoch(epoch, loss)`` after every epoch.
    X_val, context_val : Tensor, optional
        Validation rows (and their context). When given, the trimmed validation loss is
        computed after every epoch; training stops after ``config.patience`` epochs without
        improvement and the weights of the best epoch are restored (early stopping). The
        returned history then ends at the last epoch run.
    dequantize : Tensor of shape (D,), optional
        Per-column widths: every training minibatch gets uniform noise on
        ``[-width / 2, width / 2]`` in each column (dequantization of discrete columns; 0 leaves
        a column as it is). Validation rows get none.

    Raises
    ------
    TrainingDivergedError
        If a loss or gradient norm becomes NaN or infinite, or an epoch's mean loss explodes
        (exceeds the first minibatch's loss by more than :data:`DIVERGENCE_FACTOR` times
        ``max(1, |first loss|)``).
    """
    params = [p for p in flow.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    n = X.shape[0]
    epoch_scope = config.trim_scope == "epoch" and config.trim_ratio > 0.0
    # Within an epoch the loss trims each minibatch, unless the rows were trimmed for the epoch.
    batch_trim = 0.0 if epoch_scope else config.trim_ratio
    bs = min(config.batch_size, n_kept(n, config.trim_ratio) if epoch_scope else n)
    history: list[float] = []
    best_loss, best_state, best_epoch = math.inf, None, 0
    initial: float | None = None  # loss of the first minibatch, before any update
    flow.train()
    try:
        for epoch in range(1, config.epochs + 1):
            if epoch_scope:
                rows = kept_rows(flow, X, config.trim_ratio, context)
                flow.train()
                order = rows[torch.randperm(rows.numel(), generator=generator, device=generator.device)]
            else:
                order = torch.randperm(n, generator=generator, device=generator.device)
            total, count = 0.0, 0
            for step, start in enumerate(range(0, order.numel(), bs), start=1):
                idx = order[start : start + bs]
                ctx = None if context is None else context[idx]
                xb = X[idx]
                if config.noise_std > 0:
                    xb = xb + config.noise_std * torch.randn(xb.shape, generator=generator, device=xb.device, dtype=xb.dtype)
                if dequantize is not None:
                    xb = xb + (torch.rand(xb.shape, generator=generator, device=xb.device, dtype=xb.dtype) - 0.5) * dequantize
                nll = -flow.log_prob(xb, ctx)
                loss = trimmed_mean(nll, batch_trim)
                if not torch.isfinite(loss):
                    raise _diverged(epoch, step, config, float(loss.detach()))
                if initial is None:
                    initial = float(loss.detach())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                    if not torch.isfinite(norm):
                        raise _diverged(epoch, step, config, float(norm))
                optimizer.step()
                total += float(loss.detach()) * idx.numel()
                count += idx.numel()
            history.append(total / count)
            if initial is not None and history[-1] > initial + DIVERGENCE_FACTOR * max(1.0, abs(initial)):
                raise _exploded(epoch, config, history[-1], initial)
            if on_epoch is not None:
                on_epoch(epoch, history[-1])
            for observer in _observers.get():
                observer(epoch, config.epochs, history[-1])
            logger.debug("epoch %d/%d loss %.4f", epoch, config.epochs, history[-1])
            if X_val is not None:
                val = validation_loss(flow, X_val, config.trim_ratio, context_val)
                flow.train()
                if val < best_loss:
                    best_loss, best_epoch = val, epoch
                    best_state = {k: v.detach().clone() for k, v in flow.state_dict().items()}
                elif epoch - best_epoch >= config.patience:
                    logger.debug("early stop at epoch %d; best epoch %d (validation loss %.4f)", epoch, best_epoch, best_loss)
                    break
        if best_state is not None:
            flow.load_state_dict(best_state)
        refine_spectral_norms(flow)
    finally:
        flow.eval()
    return history
