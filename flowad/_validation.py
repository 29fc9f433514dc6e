"""Input checks shared by every detector.

They turn whatever the user passed (numpy array, pandas DataFrame, torch tensor, nested
lists) into a finite 2-D float64 numpy array, or raise an :class:`~flowad.exceptions.InputError`
that names the argument, what was expected and what was received.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowad.exceptions import InputError, InputTypeError, NotFittedError

__all__ = ["check_X", "check_is_fitted", "check_n_features", "feature_names_of"]


def feature_names_of(X: Any) -> list[str] | None:
    """Column names of a DataFrame-like ``X`` (all strings), else ``None``."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = [str(c) for c in columns]
    return names


def _to_numpy(X: Any, name: str) -> np.ndarray:
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # torch.Tensor, without importing torch here
        return X.detach().cpu().numpy()
    if hasattr(X, "dtypes") and hasattr(X, "columns"):  # pandas DataFrame
        import pandas as pd

        bad = [str(c) for c, dt in X.dtypes.items() if not (pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt))]
        if bad:
            raise InputError(
                f"{name} has non-numeric columns {bad}; flowad models numeric features only. "
                "Encode or drop these columns first."
            )
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        return np.asarray(X)
    except Exception as err:  # ragged lists and the like
        raise InputError(f"{name} could not be read as a 2-D numeric array: {err}") from None


def check_X(X: Any, *, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """Validate ``X`` and return it as a C-contiguous 2-D float64 array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Numpy array, pandas DataFrame, torch tensor or nested sequence.
    name : str, default="X"
        The argument's name, used in error messages.
    min_samples : int, default=1
        Fewest rows accepted.

    Returns
    -------
    ndarray of shape (n_samples, n_features), dtype float64

    Raises
    ------
    InputError
        If ``X`` is not 2-D, is empty, has too few rows, is not numeric, or holds NaN/inf.
    """
    if X is None:
        raise InputError(f"{name} is None; expected an array of shape (n_samples, n_features).")
    arr = _to_numpy(X, name)
    if np.iscomplexobj(arr):
        raise InputError(f"Complex data not supported: {name} must be real-valued, got dtype {arr.dtype}.")
    if arr.dtype == object:  # e.g. numbers stored as Python objects; strings fail here
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise InputTypeError(
                f"{name} must be numeric, but an element could not be converted to float ({err}). "
                "Encode or drop non-numeric columns first."
            ) from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(
            f"{name} must be numeric, got an array of dtype {arr.dtype}. "
            "Encode or drop non-numeric columns first."
        )
    if arr.ndim != 2:
        hint = " Reshape a single feature with X.reshape(-1, 1) or a single sample with X.reshape(1, -1)." if arr.ndim == 1 else ""
        raise InputError(f"{name} must be 2-D of shape (n_samples, n_features), got {arr.ndim}-D shape {arr.shape}.{hint}")
    n, d = arr.shape
    if d == 0:
        raise InputError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if n < min_samples:
        what = "is empty" if n == 0 else f"has {n} sample(s)"
        raise InputError(f"{name} {what}; at least {min_samples} sample(s) are required.")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        rows, cols = np.nonzero(~finite)
        n_nan = int(np.isnan(arr).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise InputError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite value(s), first at row {rows[0]}, "
            f"column {cols[0]}. Impute or drop them before calling flowad."
        )
    return arr


def check_n_features(X: np.ndarray, expected: int, estimator: object, *, name: str = "X") -> None:
    """Raise if ``X`` does not have the number of features the estimator was fitted with."""
    if X.shape[1] != expected:
        raise InputError(
            f"{name} has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{expected} features as input (the number it was fitted with)."
        )


def check_is_fitted(estimator: object, attribute: str = "flow_") -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has the fitted ``attribute``."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. "
            "Call 'fit' with appropriate arguments before using this estimator."
        )
