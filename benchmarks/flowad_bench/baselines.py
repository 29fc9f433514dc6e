"""Baselines of the published studies that are not flowad detectors.

:class:`AutoEncoderBaseline` is the AdaFlow study's autoencoder, the ``autoencoder`` method of
the domain-shift benchmarks: a ``D -> 128 -> 64 -> 128 -> D`` ReLU network trained on the
pooled training domains to reconstruct globally standardized features; the anomaly score of a
row is its mean squared reconstruction error. It is no density model and does not adapt: one
network scores every domain.

:class:`TrimmedGaussian` is RobustRealNVP's Gaussian core without the flow: the trimmed
Ledoit–Wolf Gaussian (:func:`flowad.preprocessing.robust_covariance`) of the robustly
standardized training rows, scoring by squared Mahalanobis distance. It is the simplest strong
baseline of the tabular benchmarks — a Gaussian fitted on the target's own rows, one that also
fits when there are fewer rows than columns (PyOD's MCD cannot) — and the ablation that says what
the trained couplings add to the density they start from.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.linalg import solve_triangular
from sklearn.base import BaseEstimator, OutlierMixin
from torch import Tensor, nn

from flowad._validation import check_is_fitted, check_n_features, check_X
from flowad.detectors._base import seed_from, seeded_torch
from flowad.exceptions import InputError, NonFiniteError
from flowad.preprocessing import Standardization, robust_covariance
from flowad.training import TrainConfig, fit_flow

__all__ = ["AutoEncoderBaseline", "TrimmedGaussian"]

#: Rows reconstructed per forward pass when scoring (bounds memory whatever the row count).
SCORE_BATCH = 4096


class _Net(nn.Module):
    """``D -> h1 -> ... -> hk -> ... -> h1 -> D`` with ReLU between the linear layers.

    ``log_prob`` is minus each row's mean squared reconstruction error: the library's training
    loop (:func:`flowad.training.fit_flow`) minimises the mean of ``-log_prob`` over a minibatch,
    which is then the mean reconstruction error. It is not a log-density.
    """

    def __init__(self, features: int, hidden: Sequence[int]) -> None:
        super().__init__()
        widths = [features, *hidden, *reversed(hidden[:-1]), features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def reconstruction_error(self, x: Tensor) -> Tensor:
        """Mean squared reconstruction error of each row, shape ``(batch,)``."""
        return (self.net(x) - x).square().mean(dim=1)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``-reconstruction_error(x)`` (``context`` is ignored: one network for every domain)."""
        return -self.reconstruction_error(x)


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise InputError(f"{name} must be {expected}, got {value!r}.")


def _finite(scores: np.ndarray, why: str) -> np.ndarray:
    """``scores``, or :class:`NonFiniteError` naming the rows whose score is not finite and ``why``."""
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise NonFiniteError(f"The score of {bad.size} row(s) (first: {bad[:5].tolist()}) is not finite: {why}.")
    return scores


class _ScoresAndLabels:
    """``score_samples`` and ``predict`` of a baseline, from its ``decision_function`` and ``threshold_``."""

    threshold_: float
    n_features_in_: int

    def _rows(self, X: Any, fitted: str) -> np.ndarray:
        """``X`` checked for scoring: the model fitted (attribute ``fitted`` set), finite rows of its width."""
        check_is_fitted(self, fitted)
        X = check_X(X)
        check_n_features(X, self.n_features_in_, self)
        return X

    def decision_function(self, X: Any, domain: Any = None) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_samples(self, X: Any, domain: Any = None) -> np.ndarray:
        """``-decision_function(X)`` (higher = more normal)."""
        return -self.decision_function(X, domain)

    def predict(self, X: Any, domain: Any = None) -> np.ndarray:
        """1 where the anomaly score exceeds ``threshold_``, else 0."""
        return (self.decision_function(X, domain) > self.threshold_).astype(np.int64)


class AutoEncoderBaseline(_ScoresAndLabels, OutlierMixin, BaseEstimator):
    """Autoencoder baseline: anomaly score = mean squared reconstruction error.

    Features are standardized with the training rows' mean and standard deviation
    (:class:`flowad.preprocessing.Standardization` with ``method="standard"``, as in the study;
    constant columns are left out). The network (encoder widths ``hidden``, mirrored decoder,
    ReLU, float32) is trained with Adam on the pooled rows of every training domain,
    minibatches reshuffled each epoch, the gradient norm clipped at ``grad_clip``.

    Parameters
    ----------
    hidden : tuple of int, default=(128, 64)
        Encoder widths; the decoder mirrors them (``D -> 128 -> 64 -> 128 -> D``).
    epochs : int, default=100
    batch_size : int, default=256
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=1e-5
        Adam (L2) weight decay.
    grad_clip : float or None, default=10.0
        Maximum global gradient norm; None disables clipping.
    contamination : float, default=0.05
        Expected fraction of anomalies: ``threshold_`` is the ``1 - contamination`` quantile of
        the training scores.
    device : str, default="cpu"
        Torch device.
    random_state : int, numpy Generator or None, default=None
        Seeds the initial weights (``seed``) and the minibatch order (``seed + 1``); the global
        torch and numpy generators are left as they were.

    Attributes
    ----------
    net_ : nn.Module
        The trained autoencoder.
    standardization_ : Standardization
        Training statistics.
    history_ : list of float
        Mean training loss (reconstruction error) per epoch.
    decision_scores_ : ndarray of shape (n_samples,)
        Anomaly scores of the training rows.
    threshold_ : float
    n_features_in_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4))
    >>> ae = AutoEncoderBaseline(hidden=(8, 2), epochs=5, random_state=0).fit(X)
    >>> scores = ae.decision_function(np.vstack([X[:3], 10 + X[:1]]))
    >>> bool(scores[-1] > scores[:3].max())
    True
    """

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (128, 64),
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        grad_clip: float | None = 10.0,
        contamination: float = 0.05,
        device: str = "cpu",
        random_state: Any = None,
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.contamination = contamination
        self.device = device
        self.random_state = random_state

    def _validate_params(self) -> None:
        h = self.hidden
        ok = isinstance(h, (tuple, list)) and len(h) >= 1 and all(isinstance(w, numbers.Integral) and w >= 1 for w in h)
        _check("hidden", h, ok, "a non-empty tuple of positive ints, e.g. (128, 64)")
        _check("epochs", self.epochs, isinstance(self.epochs, numbers.Integral) and self.epochs >= 1, "an int >= 1")
        bs = self.batch_size
        _check("batch_size", bs, isinstance(bs, numbers.Integral) and bs >= 2, "an int >= 2")
        _check("lr", self.lr, isinstance(self.lr, numbers.Real) and self.lr > 0, "a float > 0")
        w = self.weight_decay
        _check("weight_decay", w, isinstance(w, numbers.Real) and w >= 0, "a float >= 0")
        g = self.grad_clip
        _check("grad_clip", g, g is None or (isinstance(g, numbers.Real) and g > 0), "None or a float > 0")
        c = self.contamination
        _check("contamination", c, isinstance(c, numbers.Real) and 0.0 < c <= 0.5, "a float in (0, 0.5]")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise InputError(f"device must be a torch device such as 'cpu' or 'cuda', got {self.device!r}.") from None

    def fit(self, X: Any, y: Any = None, *, domains: Any = None) -> AutoEncoderBaseline:
        """Train on the rows of ``X`` (assumed normal), all domains pooled.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        domains : array-like of shape (n_samples,) or None, default=None
            Domain label of each row; only its length is checked (the rows are pooled).

        Returns
        -------
        self
        """
        self._validate_params()
        X = check_X(X, min_samples=2)
        if domains is not None and len(domains) != X.shape[0]:
            raise InputError(f"domains must hold one label per row of X ({X.shape[0]}), got {len(domains)}.")
        self.n_features_in_ = X.shape[1]
        self.device_ = torch.device(self.device)
        seed = seed_from(self.random_state)
        st = Standardization.fit(X, method="standard")  # the study's: mean and standard deviation
        if st.constant.all():
            raise InputError(f"All {X.shape[1]} features of X are constant in the training data; there is nothing to model.")
        if st.constant.any():
            warnings.warn(
                f"Columns {np.flatnonzero(st.constant).tolist()} are constant in the training data; they are left out.",
                UserWarning,
                stacklevel=2,
            )
        self.standardization_ = st
        Z = self._standardize(X)
        with seeded_torch(seed, self.device_):
            net = _Net(Z.shape[1], tuple(int(w) for w in self.hidden)).to(device=self.device_, dtype=torch.float32)
        generator = torch.Generator(device=self.device_).manual_seed(seed + 1)
        config = TrainConfig(
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            grad_clip=None if self.grad_clip is None else float(self.grad_clip),
        )
        self.history_ = fit_flow(net, Z, config, generator=generator)
        self.net_ = net.eval()
        self.decision_scores_ = self.decision_function(X)
        self.threshold_ = float(np.percentile(self.decision_scores_, 100.0 * (1.0 - self.contamination)))
        return self

    def _standardize(self, X: np.ndarray) -> Tensor:
        Z = self.standardization_.transform(X, drop_constant=True)
        return torch.as_tensor(Z, dtype=torch.float32, device=self.device_)

    def decision_function(self, X: Any, domain: Any = None) -> np.ndarray:
        """Anomaly score of each row: its mean squared reconstruction error (higher = more anomalous).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        domain : ignored
            Accepted for the multi-domain API; one network scores every domain.

        Returns
        -------
        ndarray of shape (n_samples,), float64

        Raises
        ------
        NonFiniteError
            If a row's error overflows float32.
        """
        X = self._rows(X, "net_")
        out = np.empty(X.shape[0], dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, X.shape[0], SCORE_BATCH):
                Z = self._standardize(X[start : start + SCORE_BATCH])
                out[start : start + SCORE_BATCH] = self.net_.reconstruction_error(Z).double().cpu().numpy()
        return _finite(out, "their values lie far outside the training range")


class TrimmedGaussian(_ScoresAndLabels, OutlierMixin, BaseEstimator):
    """A trimmed Gaussian: anomaly score = squared Mahalanobis distance from a robust fit.

    The training rows are standardized robustly (:class:`flowad.preprocessing.Standardization`,
    ``method="robust"``, constant columns left out), then
    :func:`flowad.preprocessing.robust_covariance` fits the location and Ledoit–Wolf covariance
    of the ``1 - trim_ratio`` rows nearest the fit (concentration steps). This is the density
    :class:`flowad.RobustRealNVP` starts from before training (its Gaussian core, but without the
    detector's training winsorization and dequantization noise's variance). Deterministic; uses
    no labels.

    Parameters
    ----------
    trim_ratio : float in [0, 0.5) or None, default=None
        Fraction of training rows left out of the fit; None means ``contamination``, as in
        RobustRealNVP (whose whitening trims the same fraction).
    contamination : float in (0, 0.5], default=0.1
        Expected fraction of anomalies: ``threshold_`` is the ``1 - contamination`` quantile of
        the training scores, and the trim when ``trim_ratio`` is None.
    random_state : ignored
        Accepted so that the benchmark can pass a seed to every method; the fit is deterministic.

    Attributes
    ----------
    trim_ratio_ : float
        The trim used.
    standardization_ : Standardization
    location_ : ndarray of shape (n_kept_features,)
    covariance_ : ndarray of shape (n_kept_features, n_kept_features)
        In standardized units, over the non-constant columns.
    cholesky_ : ndarray of shape (n_kept_features, n_kept_features)
        Lower Cholesky factor of ``covariance_``.
    decision_scores_ : ndarray of shape (n_samples,)
    threshold_ : float
    n_features_in_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> g = TrimmedGaussian().fit(X)
    >>> scores = g.decision_function(np.vstack([X[:3], 6 + X[:1]]))
    >>> bool(scores[-1] > scores[:3].max())
    True
    """

    def __init__(self, *, trim_ratio: float | None = None, contamination: float = 0.1, random_state: Any = None) -> None:
        self.trim_ratio = trim_ratio
        self.contamination = contamination
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> TrimmedGaussian:
        """Fit the trimmed Gaussian on the rows of ``X`` (unlabeled; ``y`` is ignored)."""
        t, c = self.trim_ratio, self.contamination
        _check("trim_ratio", t, t is None or (isinstance(t, numbers.Real) and 0.0 <= t < 0.5), "None or a float in [0, 0.5)")
        _check("contamination", c, isinstance(c, numbers.Real) and 0.0 < c <= 0.5, "a float in (0, 0.5]")
        self.trim_ratio_ = float(c if t is None else t)
        X = check_X(X, min_samples=2)
        self.n_features_in_ = X.shape[1]
        st = Standardization.fit(X, method="robust")
        if st.constant.all():
            raise InputError(f"All {X.shape[1]} features of X are constant in the training data; there is nothing to model.")
        self.standardization_ = st
        self.location_, self.covariance_ = robust_covariance(st.transform(X, drop_constant=True), self.trim_ratio_)
        self.cholesky_ = np.linalg.cholesky(self.covariance_)
        self.decision_scores_ = self.decision_function(X)
        self.threshold_ = float(np.percentile(self.decision_scores_, 100.0 * (1.0 - c)))
        return self

    def decision_function(self, X: Any, domain: Any = None) -> np.ndarray:
        """Squared Mahalanobis distance of each row from the fit (higher = more anomalous).

        ``domain`` is ignored (accepted for the multi-domain API; one Gaussian scores every domain).

        Raises
        ------
        NonFiniteError
            If a row's distance overflows float64.
        """
        X = self._rows(X, "covariance_")
        diff = self.standardization_.transform(X, drop_constant=True) - self.location_
        out = np.square(solve_triangular(self.cholesky_, diff.T, lower=True, check_finite=False)).sum(axis=0)
        return _finite(out, "their values overflow float64")
