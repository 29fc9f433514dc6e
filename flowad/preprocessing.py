"""Per-column standardization: the one rule for location, scale and constant columns, used by
every detector and by the benchmarks.

Two methods share one affine form ``(X - mean) / scale`` (``mean`` is the *location*):

``"robust"`` (every detector's default)
    location = median; scale = 1.4826 x the median absolute deviation from the median (MAD;
    equal to the standard deviation for normal data). Both have a 50 % breakdown point: with 3
    of 203 rows at 1e6 the statistics are those of the other 200, and a planted cluster of 30 %
    of the rows moves them by less than one standard deviation of the rest (mean and std, or
    the interquartile range, follow the cluster). A column whose MAD is 0 but which is not
    constant (a binary or few-valued column, or one constant except for a few rows) gets the
    median absolute deviation of its rows that differ from the median instead: the typical
    step away from the mode, finite and unmoved by a few extreme values.
``"standard"`` (PyOD-style baselines of the benchmarks, and model files written before robust
scaling)
    location = mean; scale = standard deviation.

A column is **constant** when every value equals the location up to a relative tolerance,
``|x - location| <= CONSTANT_RTOL * |location|`` for all rows: the test does not depend on the
magnitude of the data (a column of values around 1e-12 with spread 1e-13 is not constant, and
``X * 1e-30`` is standardized like ``X``). Constant columns get scale 1, so that the transform
stays finite, and detectors leave them out of the model.

Detectors also bound what their flow is *trained* on: :meth:`Standardization.clip_training`
winsorizes standardized training values at ``±TRAIN_CLIP`` robust units, so that a row at 1e6
(or 1e30) cannot dominate a batch-norm statistic or an untrimmed loss. It is applied at fit time
only; scoring uses the plain affine transform (no clipping, no extra log-determinant), so the
model file, the ONNX graph and every score see the same transform as before.

>>> st = Standardization.fit(np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]]))
>>> st.mean, st.constant
(array([2., 5.]), array([False,  True]))
>>> st.transform(np.array([[2.0, 7.0]]))
array([[0., 2.]])
>>> Standardization.fit(np.array([[1.0], [2.0], [3.0], [1e6]])).mean  # the median
array([2.5])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CONSTANT_RTOL",
    "DEFAULT_METHOD",
    "MAD_TO_STD",
    "METHODS",
    "TRAIN_CLIP",
    "Standardization",
    "standardize",
]

#: A column whose values all lie within this times ``|location|`` of its location is constant.
CONSTANT_RTOL = 1e-12
#: 1 / (median absolute deviation of a standard normal): MAD * MAD_TO_STD estimates the std.
MAD_TO_STD = 1.482602218505602
#: Standardized training values are winsorized at +-TRAIN_CLIP (fit time only).
TRAIN_CLIP = 20.0
#: The standardization methods; detectors use DEFAULT_METHOD.
METHODS = ("robust", "standard")
DEFAULT_METHOD = "robust"


def _robust_location_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, scale and constant mask of each column of finite ``X`` (see the module docstring)."""
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
            Median and MAD (robust to a few extreme rows), or mean and standard deviation.
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
        """``(X - mean) / scale``; with ``drop_constant`` the constant columns are left out."""
        if drop_constant:
            keep = ~self.constant
            return (X[:, keep] - self.mean[keep]) / self.scale[keep]
        return (X - self.mean) / self.scale

    @staticmethod
    def clip_training(Z: np.ndarray, bound: float = TRAIN_CLIP) -> np.ndarray:
        """Standardized training rows ``Z`` winsorized at ``±bound`` (a copy; fit time only).

        A row far outside the bulk of the data (1e6 robust units, say) still counts as an
        extreme row, at ``bound``, but can no longer dominate a minibatch's loss or its
        batch-norm statistics.
        """
        return np.clip(Z, -bound, bound)

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
