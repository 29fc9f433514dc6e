"""Adaptive batch normalization: one set of normalization statistics per domain (AdaFlow)."""

from __future__ import annotations

import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowad.bijections.base import Bijection, inverse_softplus
from flowad.exceptions import InverseUnavailableError

__all__ = ["AdaptiveBatchNorm", "RunningMoments", "EPS_VAR", "EPS_SCALE", "MIN_BATCH_COUNT"]

#: Added to the variance inside the square root, ``sqrt(var + EPS_VAR)`` (as torch's BatchNorm):
#: bounds the scale of a feature that is (nearly) constant in a domain.
EPS_VAR = 1e-5
#: Lower bound of the shared scale ``gamma = softplus(raw) + EPS_SCALE``.
EPS_SCALE = 1e-3
#: In train mode, a domain with fewer samples than this in the minibatch is normalized with its
#: stored statistics instead of batch statistics (a variance from one sample is 0).
MIN_BATCH_COUNT = 2


class AdaptiveBatchNorm(Bijection):
    r"""Batch normalization with per-domain statistics and a shared affine map (AdaBN).

    Each domain ``k`` has its own mean :math:`\mu_k` and variance :math:`\sigma^2_k` (buffers
    ``running_mean`` and ``running_var`` of shape ``(n_domains, D)``, one row per domain);
    the scale :math:`\gamma = \mathrm{softplus}(r) + \epsilon_\gamma` and shift :math:`\beta`
    are shared by all domains. The domain of every sample is read from ``context``: a
    LongTensor of shape ``(batch,)`` holding row indices. With a single domain, ``context``
    may be None.

    Math
    ----
    .. math::
        y = \gamma \odot \frac{x - \mu_k}{\sqrt{\sigma^2_k + \epsilon}} + \beta, \qquad
        \log|\det J| = \sum_{i=1}^{D} \Big(\log\gamma_i - \tfrac12 \log(\sigma^2_{k,i} + \epsilon)\Big),

    with :math:`\epsilon` = :data:`EPS_VAR`.

    * **train mode**: :math:`\mu_k, \sigma^2_k` are the mean and (biased) variance of the
      samples of domain ``k`` *in this minibatch* (per-domain statistics inside a mixed batch;
      gradients flow through them), and the log-det uses exactly that variance. A domain with
      fewer than :data:`MIN_BATCH_COUNT` samples in the batch uses its stored statistics. The
      stored statistics are never changed by ``forward``.
    * **eval mode**: the stored statistics of each sample's domain, so a sample's output never
      depends on the rest of its batch. Only eval mode has an inverse.

    Statistics are set explicitly with :meth:`set_statistics` (see
    :func:`flowad.flows.adaflow.adapt_statistics`); rows are added and removed with
    :meth:`add_domain` and :meth:`remove_domain`.

    Parameters
    ----------
    features : int
        Dimension ``D`` of the input.
    n_domains : int, default=1
        Number of statistics rows to start with (initialised to mean 0, variance 1).

    References
    ----------
    Li, Wang, Shi, Liu, Hou. "Revisiting Batch Normalization For Practical Domain Adaptation". 2016.
    Yamaguchi, Koizumi, Harada. "AdaFlow: Domain-adaptive density estimator with application to
    anomaly detection and unpaired cross-domain translation". ICASSP 2019.
    """

    running_mean: Tensor
    running_var: Tensor

    def __init__(self, features: int, n_domains: int = 1) -> None:
        super().__init__()
        if not (isinstance(features, numbers.Integral) and features >= 1):
            raise ValueError(f"features must be an int >= 1, got {features!r}.")
        if not (isinstance(n_domains, numbers.Integral) and n_domains >= 1):
            raise ValueError(f"n_domains must be an int >= 1, got {n_domains!r}.")
        self.features = int(features)
        self.register_buffer("running_mean", torch.zeros(int(n_domains), self.features))
        self.register_buffer("running_var", torch.ones(int(n_domains), self.features))
        self.scale_raw = nn.Parameter(torch.full((self.features,), inverse_softplus(1.0 - EPS_SCALE)))
        self.shift = nn.Parameter(torch.zeros(self.features))

    # ------------------------------------------------------------------------- domains
    @property
    def n_domains(self) -> int:
        return self.running_mean.shape[0]

    def add_domain(self, mean: Tensor | None = None, var: Tensor | None = None) -> int:
        """Append a statistics row (mean 0 / variance 1 unless given); return its index."""
        self.running_mean = torch.cat([self.running_mean, self.running_mean.new_zeros(1, self.features)])
        self.running_var = torch.cat([self.running_var, self.running_var.new_ones(1, self.features)])
        index = self.n_domains - 1
        if mean is not None or var is not None:
            self.set_statistics(
                index,
                self.running_mean[index] if mean is None else mean,
                self.running_var[index] if var is None else var,
            )
        return index

    def remove_domain(self, index: int) -> None:
        """Delete row ``index``; the rows after it move up by one."""
        self._check_index(index)
        if self.n_domains == 1:
            raise ValueError("Cannot remove the only domain of an AdaptiveBatchNorm layer.")
        keep = [i for i in range(self.n_domains) if i != index]
        self.running_mean = self.running_mean[keep].clone()
        self.running_var = self.running_var[keep].clone()

    @torch.no_grad()
    def set_statistics(self, index: int, mean: Tensor, var: Tensor) -> None:
        """Store ``mean`` and ``var`` (each of shape ``(D,)``, var >= 0) as domain ``index``."""
        self._check_index(index)
        mean = torch.as_tensor(mean)
        var = torch.as_tensor(var)
        if mean.shape != (self.features,) or var.shape != (self.features,):
            raise ValueError(
                f"mean and var must have shape ({self.features},), got {tuple(mean.shape)} and {tuple(var.shape)}."
            )
        if not (torch.isfinite(mean).all() and torch.isfinite(var).all() and (var >= 0).all()):
            raise ValueError("mean must be finite and var finite and >= 0.")
        self.running_mean[index] = mean.to(self.running_mean)
        self.running_var[index] = var.to(self.running_var)

    def statistics(self, index: int) -> tuple[Tensor, Tensor]:
        """The stored ``(mean, var)`` of domain ``index``, each of shape ``(D,)``."""
        self._check_index(index)
        return self.running_mean[index], self.running_var[index]

    def _check_index(self, index: int) -> None:
        if not (isinstance(index, numbers.Integral) and 0 <= index < self.n_domains):
            raise IndexError(f"domain index must be in [0, {self.n_domains}), got {index!r}.")

    def _check_context(self, x: Tensor, context: Tensor | None) -> Tensor | None:
        if context is None:
            if self.n_domains != 1:
                raise ValueError(
                    f"This AdaptiveBatchNorm layer holds {self.n_domains} domains: pass context, a LongTensor "
                    "of shape (batch,) with each sample's domain index."
                )
            return None
        if context.dtype != torch.long or context.shape != (x.shape[0],):
            raise ValueError(
                f"context must be a LongTensor of shape ({x.shape[0]},) holding domain indices, "
                f"got dtype {context.dtype} and shape {tuple(context.shape)}."
            )
        if context.numel() and (int(context.min()) < 0 or int(context.max()) >= self.n_domains):
            raise ValueError(
                f"context holds domain indices in [{int(context.min())}, {int(context.max())}], "
                f"but this layer has {self.n_domains} domain(s) (valid indices 0..{self.n_domains - 1})."
            )
        return context

    # ---------------------------------------------------------------------------- maps
    def _scale(self) -> Tensor:
        return F.softplus(self.scale_raw) + EPS_SCALE

    def _batch_statistics(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """Per-domain (K, D) mean and biased variance of the batch; stored rows where too few."""
        if context is None:
            if x.shape[0] < MIN_BATCH_COUNT:
                return self.running_mean, self.running_var
            return x.mean(dim=0, keepdim=True), x.var(dim=0, unbiased=False, keepdim=True)
        k = self.n_domains
        counts = torch.bincount(context, minlength=k)
        n = counts.to(x.dtype).clamp_min(1).unsqueeze(1)
        mean = x.new_zeros(k, self.features).index_add(0, context, x) / n
        var = x.new_zeros(k, self.features).index_add(0, context, (x - mean[context]).square()) / n
        few = (counts < MIN_BATCH_COUNT).unsqueeze(1)
        return torch.where(few, self.running_mean, mean), torch.where(few, self.running_var, var)

    def _affine(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample ``mean``, multiplier ``gamma / sqrt(var + eps)`` and log-det."""
        context = self._check_context(x, context)
        if self.training:
            mean, var = self._batch_statistics(x, context)
        else:
            mean, var = self.running_mean, self.running_var
        multiplier, logdet = self._multiplier(var)  # (K, D) and (K,), K = 1 when context is None
        if context is None:
            return mean, multiplier, logdet.expand(x.shape[0])
        return mean[context], multiplier[context], logdet[context]

    def _multiplier(self, var: Tensor) -> tuple[Tensor, Tensor]:
        """``gamma / sqrt(var + eps)`` and its log-det summed over the last axis."""
        scale = self._scale()
        log_std = 0.5 * torch.log(var + EPS_VAR)
        return scale * torch.exp(-log_std), torch.log(scale).sum() - log_std.sum(dim=-1)

    def forward_with_statistics(self, x: Tensor, mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
        """The forward map with explicit statistics ``mean``, ``var`` of shape ``(D,)``.

        Used by graphs that receive a domain's statistics as inputs (ONNX export) instead of
        reading the stored rows; equal to ``forward`` in eval mode when they are a stored row.
        """
        multiplier, logdet = self._multiplier(var)
        return (x - mean) * multiplier + self.shift, logdet.expand(x.shape[0])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean, multiplier, logdet = self._affine(x, context)
        return (x - mean) * multiplier + self.shift, logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training:
            raise InverseUnavailableError(
                "AdaptiveBatchNorm has no inverse in train mode: the statistics would come from the batch "
                "being inverted, which is unknown. Call .eval() first to use the stored per-domain statistics."
            )
        mean, multiplier, logdet = self._affine(y, context)
        return (y - self.shift) / multiplier + mean, -logdet

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # A state dict may hold more or fewer domains than this layer: take its row count.
        for name in ("running_mean", "running_var"):
            t, current = state_dict.get(prefix + name), getattr(self, name)
            if isinstance(t, Tensor) and t.ndim == 2 and t.shape[1] == self.features and t.shape != current.shape:
                setattr(self, name, current.new_empty(t.shape))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"features={self.features}, n_domains={self.n_domains}"


class RunningMoments:
    r"""Count, mean and sum of squared deviations (M2) of a stream of ``(n, D)`` chunks.

    Chunks are merged with the pairwise update of Chan, Golub and LeVeque, which is exact (up
    to rounding) whatever the chunking: memory is :math:`O(D)` whatever the number of rows.

    .. math::
        \delta = \bar x_B - \bar x_A,\quad n = n_A + n_B,\quad
        \bar x = \bar x_A + \delta\,\frac{n_B}{n},\quad
        M_2 = M_{2,A} + M_{2,B} + \delta^2\,\frac{n_A n_B}{n}.

    Parameters
    ----------
    count : int, default=0
        Rows already summarised (0 for an empty accumulator).
    mean, var : Tensor of shape (D,), optional
        Their mean and biased variance (required when ``count > 0``).
    """

    def __init__(self, count: int = 0, mean: Tensor | None = None, var: Tensor | None = None) -> None:
        if count < 0 or (count > 0 and (mean is None or var is None)):
            raise ValueError(f"count must be >= 0, and mean and var are required when count > 0; got count={count}.")
        self.count = int(count)
        self.mean = None if count == 0 else mean.clone()
        self.m2 = None if count == 0 else var * count

    def update(self, x: Tensor) -> None:
        """Merge the rows of ``x`` (shape ``(n, D)``)."""
        n_b = x.shape[0]
        if n_b == 0:
            return
        mean_b = x.mean(dim=0)
        m2_b = (x - mean_b).square().sum(dim=0)
        if self.count == 0:
            self.count, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta.square() * (self.count * n_b / n)
        self.count = n

    @property
    def var(self) -> Tensor:
        """Biased (population) variance ``M2 / count``."""
        if self.count == 0:
            raise ValueError("No rows were accumulated.")
        return self.m2 / self.count
