"""Per-column standardization: the one rule for constant columns, used by detectors and benchmarks.

A column counts as constant when its training standard deviation is at most
``CONSTANT_RTOL * max(1, |mean|)``; its scale is then 1, so that the transform stays finite, and
detectors leave it out of the model.

>>> st = Standardization.fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
>>> st.mean, st.scale, st.constant
(array([2., 5.]), array([1., 1.]), array([False,  True]))
>>> st.transform(np.array([[4.0, 7.0]]))
array([[2., 2.]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CONSTANT_RTOL", "Standardization", "standardize"]

#: A column whose training std is at most this times max(1, |mean|) counts as constant.
CONSTANT_RTOL = 1e-12


@dataclass(frozen=True)
class Standardization:
    """Per-column location ``mean``, ``scale`` (1 for constant columns) and the ``constant`` mask."""

    mean: np.ndarray
    scale: np.ndarray
    constant: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardization:
        """Statistics of the rows of ``X`` (shape ``(n_samples, n_features)``, finite)."""
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        constant = std <= CONSTANT_RTOL * np.maximum(1.0, np.abs(mean))
        return cls(mean=mean, scale=np.where(constant, 1.0, std), constant=constant)

    def transform(self, X: np.ndarray, *, drop_constant: bool = False) -> np.ndarray:
        """``(X - mean) / scale``; with ``drop_constant`` the constant columns are left out."""
        if drop_constant:
            keep = ~self.constant
            return (X[:, keep] - self.mean[keep]) / self.scale[keep]
        return (X - self.mean) / self.scale

    @property
    def log_scale_sum(self) -> float:
        """Sum of ``log(scale)`` over the kept columns: the log-det of the inverse transform."""
        return float(np.log(self.scale[~self.constant]).sum())


def standardize(X_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """``X_train`` and each of ``others`` standardized with ``X_train``'s statistics.

    Constant training columns get scale 1 (they stay in, centred). Returns a tuple of arrays.
    """
    st = Standardization.fit(X_train)
    return tuple(st.transform(np.asarray(A, dtype=np.float64)) for A in (X_train, *others))
