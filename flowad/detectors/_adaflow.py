"""AdaFlow: a flow with per-domain adaptive batch normalization, adapted by forward passes only."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from flowad._validation import check_is_fitted
from flowad.bijections.adabn import AdaptiveBatchNorm
from flowad.detectors._base import _check_couplings, _check_param, _integer, _real, _store_params, register
from flowad.detectors._domains import DomainDetector
from flowad.flows.adaflow import adabn_layers, adapt_statistics, build_adaflow, update_statistics
from flowad.flows.flow import Flow, standard_normal_log_prob

__all__ = ["AdaFlow"]


def _check_architecture(det: Any) -> None:
    """The architecture hyper-parameters of AdaFlow and BatchNormFlow."""
    n = det.n_layers
    _check_param("n_layers", n, _integer(n) and n >= 1, "an int >= 1")
    a = det.alpha
    _check_param("alpha", a, _real(a) and 0 < a < 1, "a float in (0, 1)")
    c = det.n_couplings
    ok = _integer(c) and c >= 0 and (c == 0 or n >= 2)
    _check_param("n_couplings", c, ok, "an int >= 0 (and > 0 only with n_layers >= 2)")
    _check_couplings(det)


def _architecture(det: Any) -> dict[str, Any]:
    return {
        "n_layers": int(det.n_layers),
        "alpha": float(det.alpha),
        "n_couplings": int(det.n_couplings),
        "hidden": tuple(int(w) for w in det.hidden),
        "s_max": float(det.s_max),
    }


@register("adaflow")
class AdaFlow(DomainDetector):
    """AdaFlow anomaly detector: one flow for all domains, per-domain batch-norm statistics.

    Every adaptive batch-normalization (AdaBN) layer keeps a mean and variance per domain;
    all weights (and the AdaBN scale and shift) are shared. Adapting to a new domain
    (:meth:`adapt`) computes that domain's statistics by forward passes only: no gradient, no
    optimizer, no weight changes. Architecture (data -> latent), by default the published one:
    LU-linear -> AdaBN -> leaky ReLU -> LU-linear -> AdaBN (see :mod:`flowad.flows.adaflow`).

    Parameters
    ----------
    contamination : float in (0, 0.5], default=0.05
        Target false-alarm rate: each domain's threshold is the ``1 - contamination``
        quantile of the anomaly scores of its own (normal) fit or adaptation rows.
    n_layers : int, default=2
        Number of (LU-linear -> AdaBN) units, with a leaky ReLU between consecutive ones.
    alpha : float in (0, 1), default=0.1
        Negative slope of the leaky ReLUs.
    n_couplings : int, default=0
        Affine couplings after each leaky ReLU, for more capacity (needs ``n_layers >= 2``).
    hidden : tuple of int, default=(64, 64)
        Hidden widths of the couplings' networks (unused without couplings).
    s_max : float, default=3.0
        Log-scale bound of the couplings.
    epochs, batch_size, lr, weight_decay, grad_clip
        Adam training settings (defaults 100, 256, 1e-3, 1e-5, 10.0). Minibatches mix
        domains; each AdaBN normalizes each sample with its own domain's batch statistics.
    threshold : float or None, default=None
        Fixed threshold for every domain; None reads it from ``contamination``.
    dtype : {"float32", "float64"}, default="float32"
    device : str, default="auto"
    random_state : int, numpy Generator or None, default=None
        Seed of weight initialization and minibatch order; the global RNGs are untouched.
    verbose : int, default=0

    Attributes
    ----------
    flow_ : Flow
        The trained flow on standardized features, in eval mode.
    domains_ : list of str
        Known domains: those of ``fit`` (sorted), then adapted ones in order.
    thresholds_ : dict of str to float
        Per-domain threshold used by :meth:`predict`.
    domain_counts_ : dict of str to int
        Rows each domain's statistics summarise.
    threshold_ : float
        Quantile of all training scores pooled (scikit-learn compatibility only).
    mean_, scale_, scaling_, constant_features_, decision_scores_, labels_, history_, n_features_in_
        As in :class:`~flowad.RealNVP`: robust standardization (median and MAD), training
        rows winsorized at ``±flowad.preprocessing.TRAIN_CLIP`` standardized units while
        fitting, so a few extreme rows cannot dominate the AdaBN statistics (the training
        scores in ``decision_scores_`` are those of the winsorized rows). Standardization
        is global (fitted on the pooled training domains) and is never refitted by
        ``adapt``: all domains share one input
        space (needed by :meth:`translate`), its log-determinant is the same constant for
        every domain, and each domain's shift and scale are removed by the first
        LU-linear -> AdaBN pair, whose statistics are exact per domain.

    Examples
    --------
    >>> import numpy as np
    >>> from flowad import AdaFlow
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (100, 3)), rng.normal(3, 2, (100, 3))])
    >>> det = AdaFlow(epochs=2, random_state=0).fit(X, domains=["a"] * 100 + ["b"] * 100)
    >>> det = det.adapt(rng.normal(-2, 0.5, (50, 3)), domain="c")
    >>> det.domains_
    ['a', 'b', 'c']
    >>> det.predict(rng.normal(-2, 0.5, (4, 3)), domain="c").shape
    (4,)

    References
    ----------
    Yamaguchi, Koizumi, Harada. "AdaFlow: Domain-adaptive density estimator with application to
    anomaly detection and unpaired cross-domain translation". ICASSP 2019.
    """

    def __init__(
        self,
        *,
        contamination: float = 0.05,
        n_layers: int = 2,
        alpha: float = 0.1,
        n_couplings: int = 0,
        hidden: Sequence[int] = (64, 64),
        s_max: float = 3.0,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        grad_clip: float | None = 10.0,
        threshold: float | None = None,
        dtype: str = "float32",
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        _store_params(self, locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        _check_architecture(self)

    def _build_flow(self, n_features: int) -> Flow:
        return build_adaflow(n_features, n_domains=len(self.domains_), **_architecture(self))

    def _fit_model(self, flow: Flow, Z: torch.Tensor, context: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rows = [torch.nonzero(context == k).squeeze(1) for k in range(len(self.domains_))]
        flow.eval()
        # Explicit data-dependent start: every domain's statistics under the initial weights
        # (used by train mode for a domain with < 2 samples in a minibatch).
        for k, idx in enumerate(rows):
            update_statistics(flow.bijection, Z[idx], k)
        self.history_ = self._train(flow, Z, generator, context)
        # After training, every domain's statistics exactly over its own training rows; the
        # same pass gives the rows' log-densities.
        log_density = Z.new_empty(Z.shape[0])
        for k, idx in enumerate(rows):
            z, logdet = update_statistics(flow.bijection, Z[idx], k)
            log_density[idx] = standard_normal_log_prob(z) + logdet
        return log_density

    def _log_density(self, Z: torch.Tensor, index: int) -> torch.Tensor:
        return self.flow_.log_prob(Z, self._context(Z, index))

    def _adapt_rows(self, Z: torch.Tensor, index: int, prior_count: int) -> torch.Tensor:
        z, logdet = update_statistics(self.flow_.bijection, Z, index, prior_count=prior_count)
        return standard_normal_log_prob(z) + logdet

    def _adapt_chunks(self, chunks: Callable[[], Iterator[torch.Tensor]], index: int) -> int:
        return adapt_statistics(self.flow_.bijection, chunks, index)

    # ------------------------------------------------------------ per-domain statistics rows
    def _layers(self) -> list[AdaptiveBatchNorm]:
        return adabn_layers(self.flow_.bijection)

    # ------------------------------------------------------------------------ translation
    def translate(self, X: Any, *, source: Any, target: Any) -> np.ndarray:
        """Map rows of domain ``source`` to domain ``target`` through the shared latent space.

        Runs the forward map with ``source``'s statistics (data -> latent) and the inverse map
        with ``target``'s (latent -> data), in standardized space; constant features pass
        through unchanged.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        source, target : str or int
            Known domains.

        Returns
        -------
        ndarray of shape (n_samples, n_features), float64
        """
        check_is_fitted(self)
        src, tgt = self._index(source), self._index(target)
        return self._translate(self._check_input(X), src, tgt)
