"""Seeded synthetic data sets with labelled anomalies, shared by studies, benchmarks and tests.

Every generator takes a ``random_state`` (int or numpy Generator), draws from a local
:func:`numpy.random.default_rng` and returns ``(X, y)`` with ``X`` float64 of shape
``(n_samples, n_features)`` and ``y`` int64 labels (1 = anomaly, 0 = normal), rows shuffled.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.datasets import make_moons

__all__ = [
    "CLUSTER_CENTER",
    "CLUSTER_STD",
    "MOONS_NOISE",
    "gaussian_mixture",
    "moons_box",
    "n_anomalies",
    "two_moons",
]

#: Standard deviation of the Gaussian noise added to the two moons (``make_moons(noise=...)``).
MOONS_NOISE = 0.05
#: Centre of the clustered anomalies: an empty region up-right of both moons, at distance
#: about 0.64 from the lower moon and 0.89 from the upper one (over 12 noise standard deviations).
CLUSTER_CENTER = (1.6, 1.0)
#: Standard deviation of the clustered anomalies (isotropic Gaussian): a tight blob.
CLUSTER_STD = 0.05
#: Margin added around the noiseless moons to get the box of the uniform anomalies.
BOX_MARGIN = 0.5

_KINDS = ("uniform", "clustered")


def _rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None:
        raise ValueError("random_state must be an int or a numpy Generator, got None; synthetic data is always seeded.")
    return np.random.default_rng(random_state)


def n_anomalies(n_samples: int, contamination: float) -> int:
    """Number of anomalies in a set of ``n_samples`` rows: ``round(contamination * n_samples)``."""
    return int(round(contamination * n_samples))


def moons_box() -> tuple[tuple[float, float], tuple[float, float]]:
    """``((x_min, x_max), (y_min, y_max))`` of the noiseless moons padded by :data:`BOX_MARGIN`.

    The noiseless moons span ``[-1, 2] x [-0.5, 1]``; uniform anomalies are drawn in this box.
    """
    m = BOX_MARGIN
    return (-1.0 - m, 2.0 + m), (-0.5 - m, 1.0 + m)


def two_moons(
    n_samples: int,
    *,
    contamination: float = 0.05,
    anomalies: str = "uniform",
    noise: float = MOONS_NOISE,
    cluster_center: tuple[float, float] = CLUSTER_CENTER,
    cluster_std: float = CLUSTER_STD,
    random_state: int | np.random.Generator = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Two moons (normal data) contaminated with a fraction ``contamination`` of anomalies.

    Normal rows come from :func:`sklearn.datasets.make_moons` with Gaussian ``noise``.
    Anomalies are either ``"uniform"`` over :func:`moons_box` (scattered; some may land on
    the moons) or ``"clustered"``: an isotropic Gaussian of std ``cluster_std`` around
    ``cluster_center``, off the moons (the setting where a plain flow learns the anomalies
    as a second mode).

    Parameters
    ----------
    n_samples : int
        Total number of rows (normal + anomalous), >= 2.
    contamination : float in [0, 1), default=0.05
        Fraction of anomalies; exactly ``round(contamination * n_samples)`` rows.
    anomalies : {"uniform", "clustered"}, default="uniform"
        Kind of anomalies.
    noise : float, default=MOONS_NOISE
        Standard deviation of the noise of the moons.
    cluster_center : tuple of 2 floats, default=CLUSTER_CENTER
        Centre of the clustered anomalies.
    cluster_std : float, default=CLUSTER_STD
        Standard deviation of the clustered anomalies.
    random_state : int or numpy Generator, default=0
        Seed; the same int gives the same data.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float64
    y : ndarray of shape (n_samples,), int64
        1 for anomalies, 0 for normal rows.

    Examples
    --------
    >>> X, y = two_moons(200, contamination=0.05, anomalies="clustered", random_state=0)
    >>> X.shape, int(y.sum())
    ((200, 2), 10)
    """
    if anomalies not in _KINDS:
        raise ValueError(f"anomalies must be one of {list(_KINDS)}, got {anomalies!r}.")
    if not (isinstance(n_samples, (int, np.integer)) and n_samples >= 2):
        raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}.")
    if not 0.0 <= contamination < 1.0:
        raise ValueError(f"contamination must be in [0, 1), got {contamination!r}.")
    rng = _rng(random_state)
    n_out = n_anomalies(n_samples, contamination)
    n_in = n_samples - n_out
    moons_seed = int(rng.integers(0, 2**31 - 1))
    X_in, _ = make_moons(n_samples=n_in, noise=noise, random_state=moons_seed)
    if anomalies == "uniform":
        (x0, x1), (y0, y1) = moons_box()
        X_out = rng.uniform(low=(x0, y0), high=(x1, y1), size=(n_out, 2))
    else:
        X_out = rng.normal(loc=cluster_center, scale=cluster_std, size=(n_out, 2))
    X = np.vstack([X_in, X_out]).astype(np.float64)
    y = np.concatenate([np.zeros(n_in, dtype=np.int64), np.ones(n_out, dtype=np.int64)])
    order = rng.permutation(n_samples)
    return X[order], y[order]


def gaussian_mixture(
    n_samples: int,
    n_features: int,
    *,
    n_components: int = 4,
    contamination: float = 0.0,
    random_state: int | np.random.Generator = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A mixture of ``n_components`` Gaussians with random means and scales, plus uniform anomalies.

    Component means are drawn in ``[-3, 3]^D`` and per-feature scales in ``[0.3, 1.0]``;
    anomalies (if any) are uniform over the bounding box of the normal rows widened by 20 %.

    Parameters
    ----------
    n_samples : int
        Total number of rows.
    n_features : int
        Dimension ``D``.
    n_components : int, default=4
        Number of Gaussian components (equal weights).
    contamination : float in [0, 1), default=0.0
        Fraction of anomalies; exactly ``round(contamination * n_samples)`` rows.
    random_state : int or numpy Generator, default=0
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), int64

    Examples
    --------
    >>> X, y = gaussian_mixture(100, 3, random_state=0)
    >>> X.shape, int(y.sum())
    ((100, 3), 0)
    """
    if not 0.0 <= contamination < 1.0:
        raise ValueError(f"contamination must be in [0, 1), got {contamination!r}.")
    if n_samples < 1 or n_features < 1 or n_components < 1:
        raise ValueError(
            f"n_samples, n_features and n_components must be >= 1, got {n_samples}, {n_features}, {n_components}."
        )
    rng = _rng(random_state)
    n_out = n_anomalies(n_samples, contamination)
    n_in = n_samples - n_out
    means = rng.uniform(-3.0, 3.0, size=(n_components, n_features))
    scales = rng.uniform(0.3, 1.0, size=(n_components, n_features))
    comp = rng.integers(0, n_components, size=n_in)
    X_in = means[comp] + scales[comp] * rng.standard_normal((n_in, n_features))
    lo, hi = X_in.min(axis=0), X_in.max(axis=0)
    pad = 0.2 * (hi - lo) + math.ulp(1.0)
    X_out = rng.uniform(lo - pad, hi + pad, size=(n_out, n_features))
    X = np.vstack([X_in, X_out])
    y = np.concatenate([np.zeros(n_in, dtype=np.int64), np.ones(n_out, dtype=np.int64)])
    order = rng.permutation(n_samples)
    return X[order], y[order]
