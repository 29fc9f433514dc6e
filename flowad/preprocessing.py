"""Per-column standardization: the one rule for location, scale and constant columns, used by
every detector and by the benchmarks.

Two methods share one affine form ``(X - mean) / scale`` (``mean`` is the *location*):

``"robust"`` (every detector's default)
    A trimmed mean and standard deviation. A pilot location and scale with a 50 % breakdown
    point, the median and 1.4826 x the median absolute deviation (MAD), mark the rows farther
    than ``INLIER_BOUND`` (20) pilot units from the median; location and scale are the mean and
    standard deviation of the other rows. A column without such rows gets exactly its mean and
    std (so clean data is standardized as before); a few extreme rows (3 of 203 at 1e6, one at
    1e30) and even a planted cluster of 30 % of the rows far away are left out, so they cannot
    move the statistics. A column whose MAD is 0 but which is not constant (a binary or
    few-valued column, or one constant except for a few rows) gets as pilot scale the median
    distance from the median of its rows that differ from it: the typical step away from the
    mode, finite and unmoved by a few extreme values.
``"standard"`` (PyOD-style baselines of the benchmarks, and model files written before robust
scaling)
    location = mean; scale = standard deviation.

A column is **constant** when its values are equal up to a relative tolerance: under
``"robust"`` every value is within ``CONSTANT_RTOL * |median|`` of the median, under
``"standard"`` the std is at most ``CONSTANT_RTOL * |mean|``. The test does not depend on the
magnitude of the data (a column of values around 1e-12 with spread 1e-13 is not constant, and
``X * 1e-30`` is standardized like ``X``). Constant columns get scale 1, so that the transform
stays finite, and detectors leave them out of the model.

Detectors also bound what their flow is *trained* on: :meth:`Standardization.clip_training`
winsorizes standardized training values at a per-column bound (:meth:`Standardization.training_bounds`:
10 times the column's 95th percentile of absolute values, between 20 and 1e6 standardized units), so
that a few rows at 1e6 (or 1e30) cannot dominate a batch-norm statistic or an untrimmed loss while
the genuine heavy tails of sparse columns are left alone. It is applied at fit time
only; scoring uses the plain affine transform (no clipping, no extra log-determinant), so the
model file, the ONNX graph and every score see the same transform as before.

>>> st = Standardization.fit(np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]]))
>>> st.mean, st.constant
(array([2., 5.]), array([False,  True]))
>>> st.transform(np.array([[2.0, 7.0]]))
array([[0., 2.]])
>>> Standardization.fit(np.array([[1.0], [2.0], [3.0], [1e6]])).mean  # 1e6 is left out
array([2.])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowad.exceptions import InputError

__all__ = [
    "CONSTANT_RTOL",
    "DEFAULT_METHOD",
    "INLIER_BOUND",
    "MAD_TO_STD",
    "METHODS",
    "SINGULAR_RTOL",
    "MAX_TRAIN_CLIP",
    "TAIL_FACTOR",
    "TAIL_QUANTILE",
    "TRAIN_CLIP",
    "Standardization",
    "dequantization_widths",
    "robust_covariance",
    "standardize",
]

#: Relative tolerance of the constant-column test (see the module docstring).
CONSTANT_RTOL = 1e-12
#: 1 / (median absolute deviation of a standard normal): MAD * MAD_TO_STD estimates the std.
MAD_TO_STD = 1.482602218505602
#: Rows farther than this many pilot units (median, MAD) from the median are left out of a
#: column's robust mean and standard deviation.
INLIER_BOUND = 20.0
#: Smallest bound at which standardized training values are winsorized (fit time only).
TRAIN_CLIP = 20.0
#: A column's winsorizing bound is at least TAIL_FACTOR times the TAIL_QUANTILE quantile of its
#: absolute standardized training values: heavy but genuine tails stay as they are.
TAIL_QUANTILE = 0.95
TAIL_FACTOR = 10.0
#: Largest winsorizing bound: squares of values up to it stay far inside float32's range.
MAX_TRAIN_CLIP = 1e6
#: The standardization methods; detectors use DEFAULT_METHOD.
METHODS = ("robust", "standard")
DEFAULT_METHOD = "robust"


def _pilot(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD scale and constant mask of each column of finite ``X`` (see the module docstring)."""
    med = np.median(X, axis=0)
    tol = CONSTANT_RTOL * np.abs(med)
    dev = np.abs(X - med)
    varies = dev > tol  # rows that differ from the median, per column
    constant = ~varies.any(axis=0)
    scale = MAD_TO_STD * np.median(dev, axis=0)
    flat = ~constant & ~(scale > tol)  # MAD 0 (or within rounding) but not constant
    for j in np.flatnonzero(flat):
        scale[j] = np.median(dev[varies[:, j], j])
    return med, np.where(constant, 1.0, scale), constant


def _robust_location_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std of each column over its rows within ``INLIER_BOUND`` pilot units (median,
    MAD) of the median, and the constant mask (see the module docstring)."""
    with np.errstate(over="ignore", invalid="ignore"):  # values near the float64 limit: inf bounds keep every row
        med, pilot, constant = _pilot(X)
        inlier = (np.abs(X - med) <= INLIER_BOUND * pilot) | constant
    # Columns without outliers: exactly the plain mean and std (computed as "standard" does);
    # the others are recomputed below (the full ones may overflow: ignored, then replaced).
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = X.mean(axis=0), X.std(axis=0)
        for j in np.flatnonzero(~inlier.all(axis=0)):
            col = X[inlier[:, j], j]
            mean[j], std[j] = col.mean(), col.std()
    # A column whose inliers all share one value (a few-valued column whose other values lie
    # beyond the bound), or whose values overflow a std, keeps its pilot statistics.
    ok = np.isfinite(mean) & np.isfinite(std) & (std > CONSTANT_RTOL * np.abs(mean))
    mean = np.where(ok | constant, mean, med)
    return np.where(np.isfinite(mean), mean, med), np.where(constant, 1.0, np.where(ok, std, pilot)), constant


@dataclass(frozen=True)
class Standardization:
    """Per-column location ``mean``, ``scale`` (1 for constant columns) and the ``constant`` mask.

    ``method`` names the rule that estimated them (``"robust"`` or ``"standard"``; see the
    module docstring); the transform is ``(X - mean) / scale`` either way.
    """

    mean: np.ndarray
    scale: np.ndarray
    constant: np.ndarray
    method: str = DEFAULT_METHOD

    @classmethod
    def fit(cls, X: np.ndarray, *, method: str = DEFAULT_METHOD) -> Standardization:
        """Statistics of the rows of ``X`` (shape ``(n_samples, n_features)``, finite).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        method : {"robust", "standard"}, default="robust"
            Mean and standard deviation of the rows within ``INLIER_BOUND`` MAD units of the
            median (robust to extreme rows), or of all rows.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        X = np.asarray(X, dtype=np.float64)
        if method == "robust":
            mean, scale, constant = _robust_location_scale(X)
        else:
            mean = X.mean(axis=0)
            std = X.std(axis=0)
            constant = std <= CONSTANT_RTOL * np.abs(mean)
            scale = np.where(constant, 1.0, std)
        return cls(mean=mean, scale=scale, constant=constant, method=method)

    def transform(self, X: np.ndarray, *, drop_constant: bool = False) -> np.ndarray:
        """``(X - mean) / scale``; with ``drop_constant`` the constant columns are left out.

        A value too far out for float64 becomes ``±inf`` silently: the detectors' non-finite
        checks (``NonFiniteError``) and :meth:`clip_training` decide what it means.
        """
        with np.errstate(over="ignore"):
            if drop_constant:
                keep = ~self.constant
                return (X[:, keep] - self.mean[keep]) / self.scale[keep]
            return (X - self.mean) / self.scale

    @staticmethod
    def clip_training(Z: np.ndarray, bound: float | np.ndarray = TRAIN_CLIP) -> np.ndarray:
        """Standardized training rows ``Z`` winsorized at ``±bound`` (a copy; fit time only;
        ``bound`` a number or one per column, e.g. :meth:`training_bounds`).

        A row far outside the bulk of the data (1e30 robust units, say) still counts as an
        extreme row, at ``bound``, but can no longer dominate a minibatch's loss or its
        batch-norm statistics.
        """
        return np.clip(Z, -bound, bound)

    @staticmethod
    def training_bounds(Z: np.ndarray) -> np.ndarray:
        """Per column, the bound at which standardized training rows ``Z`` are winsorized.

        ``TAIL_FACTOR`` (10) times the ``TAIL_QUANTILE`` (0.95) quantile of the column's
        absolute values over its rows that differ from its median (so a sparse column, mostly
        zeros, is judged by its non-zero values), at least ``TRAIN_CLIP`` (20) and at most ``MAX_TRAIN_CLIP`` (1e6). For
        a Gaussian column that is the old fixed bound (10 x 1.96 < 20). A fixed bound of 20
        robust units cut the genuine tails of sparse and heavy-tailed columns (ReLU image
        embeddings, colour histograms: up to 5 % of their values lie beyond it), so normal test
        rows met values the flow had never been trained on and looked anomalous (chance-level
        AUC on an image-embedding set); a bound tied to the column's own 95th percentile leaves
        such tails alone while a few rows (under 5 %) at 1e6 or 1e30 are still brought back.
        """
        Z = np.asarray(Z, dtype=np.float64)
        tail = np.zeros(Z.shape[1])
        with np.errstate(invalid="ignore", over="ignore"):
            for j in range(Z.shape[1]):
                col = Z[:, j]
                moved = col[col != np.median(col)] if col.size else col
                if moved.size:
                    tail[j] = TAIL_FACTOR * np.quantile(np.abs(moved), TAIL_QUANTILE)
        return np.clip(np.nan_to_num(tail, nan=np.inf), TRAIN_CLIP, MAX_TRAIN_CLIP)

    @property
    def log_scale_sum(self) -> float:
        """Sum of ``log(scale)`` over the kept columns: the log-det of the inverse transform."""
        return float(np.log(self.scale[~self.constant]).sum())


def standardize(X_train: np.ndarray, *others: np.ndarray, method: str = "standard") -> tuple[np.ndarray, ...]:
    """``X_train`` and each of ``others`` standardized with ``X_train``'s statistics.

    ``method`` defaults to ``"standard"`` (mean and standard deviation, what PyOD's methods
    expect); ``"robust"`` is the detectors' rule. Constant training columns get scale 1 (they stay
    in, centred). Returns a tuple of arrays.
    """
    st = Standardization.fit(X_train, method=method)
    return tuple(st.transform(np.asarray(A, dtype=np.float64)) for A in (X_train, *others))


#: A covariance whose smallest eigenvalue is at most this fraction of its largest is singular.
SINGULAR_RTOL = 1e-12


def robust_covariance(Z: np.ndarray, trim_ratio: float, *, n_iter: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Location and covariance of the rows of ``Z`` that a trimmed Ledoit–Wolf fit calls normal.

    Start from the rows nearest the coordinate-wise median (Euclidean distance in units of each
    column's median absolute deviation, its std where that is 0), leaving out the
    ``floor(trim_ratio * n)`` farthest; fit the mean and the Ledoit–Wolf shrinkage covariance of
    the rows kept; then, ``n_iter`` times, keep the rows nearest that fit in Mahalanobis distance
    and refit (concentration steps, as in the minimum covariance determinant). The
    shrinkage keeps the covariance positive definite when there are fewer rows than columns.
    A planted cluster of anomalies smaller than ``trim_ratio`` of the rows ends up outside the
    fit. The trimmed covariance is a little smaller than the covariance of the normal rows (no
    consistency factor is applied): a scale, which the flow trained on top learns.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Finite rows (standardized, for a well-conditioned fit), ``n_samples >= 2``.
    trim_ratio : float in [0, 1)
        Fraction of rows left out of each refit; 0 gives the plain Ledoit–Wolf estimate.
    n_iter : int, default=3

    Returns
    -------
    loc : ndarray of shape (n_features,)
    covariance : ndarray of shape (n_features, n_features)
        Symmetric positive definite.

    Raises
    ------
    InputError
        If the shrunk covariance is still singular (smallest eigenvalue at most
        :data:`SINGULAR_RTOL` times the largest): the rows take too few distinct values.
    """
    from sklearn.covariance import ledoit_wolf

    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise ValueError(f"robust_covariance needs a 2-D array of at least 2 rows, got shape {Z.shape}.")
    if not 0.0 <= trim_ratio < 1.0:
        raise ValueError(f"trim_ratio must be in [0, 1), got {trim_ratio}.")
    n = Z.shape[0]
    n_drop = int(np.floor(trim_ratio * n))
    if n - n_drop < 2:
        n_drop = n - 2
    med = np.median(Z, axis=0)
    spread = MAD_TO_STD * np.median(np.abs(Z - med), axis=0)
    spread = np.where(spread > 0, spread, Z.std(axis=0))
    dist = np.square((Z - med) / np.where(spread > 0, spread, 1.0)).sum(axis=1)
    for step in range(n_iter + 1):
        rows = Z[np.argsort(dist, kind="stable")[: n - n_drop]] if n_drop else Z
        loc = rows.mean(axis=0)
        cov, shrinkage = ledoit_wolf(rows - loc, assume_centered=True)
        # (1 - s) S + s (tr/d) I has every eigenvalue >= s tr/d >= s * the largest / d: a clearly
        # positive shrinkage settles it without an eigendecomposition.
        if not (shrinkage > SINGULAR_RTOL * Z.shape[1] and np.trace(cov) > 0) and not _well_conditioned(cov):
            raise InputError(
                f"The rows do not determine a covariance: even after Ledoit–Wolf shrinkage it is singular "
                f"({rows.shape[0]} rows used, {Z.shape[1]} columns). This happens when the rows take too few "
                "distinct values, e.g. only 2 rows, or every row one of two points."
            )
        if step == n_iter or n_drop == 0:
            break
        chol = np.linalg.cholesky(cov)
        dist = np.square(_solve_lower(chol, (Z - loc).T)).sum(axis=0)
    return loc, cov


def _well_conditioned(cov: np.ndarray) -> bool:
    """Smallest eigenvalue above :data:`SINGULAR_RTOL` times the largest."""
    evals = np.linalg.eigvalsh(cov)
    return bool(evals[0] > SINGULAR_RTOL * max(evals[-1], 0.0))


def _solve_lower(chol: np.ndarray, B: np.ndarray) -> np.ndarray:
    from scipy.linalg import solve_triangular

    return solve_triangular(chol, B, lower=True, check_finite=False)


def dequantization_widths(Z: np.ndarray) -> np.ndarray:
    """Per column, the width of the uniform noise that turns its values into a density.

    A column is **discrete** when it has at least 2 and at most ``n_samples / 2`` distinct
    values (every value repeats on average): counts, codes, binary and one-hot columns. Its
    width is the smallest gap between two of its distinct values, so noise drawn uniformly
    from ``[-width / 2, width / 2]`` spreads each value over its own cell without reaching
    the next one. Other columns get width 0 (left as they are).

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_features,)
    """
    Z = np.asarray(Z, dtype=np.float64)
    widths = np.zeros(Z.shape[1])
    for j in range(Z.shape[1]):
        values = np.unique(Z[:, j])
        if 2 <= values.size <= Z.shape[0] / 2:
            widths[j] = float(np.diff(values).min())
    return widths
