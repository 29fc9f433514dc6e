"""Input checks shared by every detector.

They turn whatever the user passed (numpy array, pandas DataFrame, torch tensor, nested
lists) into a finite 2-D float64 numpy array, or raise an :class:`~flowad.exceptions.InputError`
that names the argument, what was expected and what was received.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowad.exceptions import InputError, InputTypeError, NotFittedError

__all__ = [
    "check_X",
    "check_adaptation_range",
    "check_adaptation_rows",
    "check_is_fitted",
    "check_n_features",
    "feature_names_of",
]


def feature_names_of(X: Any) -> list[str] | None:
    """Column names of a DataFrame-like ``X`` (all strings), else ``None``."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = [str(c) for c in columns]
    return names


def _is_sparse(X: Any) -> bool:
    """A scipy.sparse matrix/array (checked without importing scipy)."""
    return type(X).__module__.startswith("scipy.sparse") and hasattr(X, "toarray")


def _first_bad_cell(values: np.ndarray) -> tuple[int, Any] | None:
    """Row and value of the first cell of a 1-D object array that is not a number."""
    for i, v in enumerate(values):
        if v is None or type(v).__name__ == "NAType":  # missing: reported as NaN later
            continue
        try:
            float(v)
        except (TypeError, ValueError):
            return i, v
    return None


def _frame_to_numpy(X: Any, name: str) -> np.ndarray:
    """A DataFrame's values as float64: numeric and boolean (0/1) columns, as numpy treats a
    bool array; object columns when every cell is a number; else an error naming the column,
    the row and the cell."""
    import pandas as pd

    bad: list[str] = []
    first: tuple[str, int, Any] | None = None
    for position, (col, dt) in enumerate(X.dtypes.items()):
        if pd.api.types.is_bool_dtype(dt) or pd.api.types.is_numeric_dtype(dt):
            continue
        cell = _first_bad_cell(X.iloc[:, position].to_numpy(dtype=object))
        if cell is not None:
            bad.append(str(col))
            if first is None:
                first = (str(col), *cell)
    if first is not None:
        col, row, value = first
        raise InputTypeError(
            f"{name} has non-numeric columns {bad}: column {col!r} holds {value!r} at row {row}; "
            "flowad models numeric features only (booleans count as 0/1). Fix or drop that cell, "
            "or encode or drop these columns first."
        )
    try:
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:  # e.g. pandas extension dtypes with odd values
        raise InputTypeError(f"{name} could not be converted to float64: {err}") from None


def _to_numpy(X: Any, name: str) -> np.ndarray:
    if _is_sparse(X):
        raise InputTypeError(
            f"{name} is a scipy sparse {type(X).__name__} of shape {getattr(X, 'shape', '?')}; flowad models "
            f"dense data only. Densify it first with {name}.toarray() (it needs "
            f"{np.prod(getattr(X, 'shape', (0,))) * 8 / 2**20:.1f} MiB as float64)."
        )
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # torch.Tensor, without importing torch here
        if getattr(X, "is_sparse", False) or str(getattr(X, "layout", "")) != "torch.strided":
            raise InputTypeError(f"{name} is a sparse torch tensor; flowad models dense data only. Densify it first with {name}.to_dense().")
        return X.detach().cpu().numpy()
    if hasattr(X, "dtypes") and hasattr(X, "columns"):  # pandas DataFrame
        return _frame_to_numpy(X, name)
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


def check_adaptation_range(
    low: np.ndarray, high: np.ndarray, *, domain: str, ignore: np.ndarray | None = None, names: list[str] | None = None
) -> None:
    """Refuse a domain's adaptation rows in which a feature never changes.

    ``low`` and ``high`` are the column minima and maxima of the rows (in input units; a streamed
    adaptation accumulates them over its chunks). A column is stuck when the rows all equal
    one value up to :data:`flowad.preprocessing.CONSTANT_RTOL` relative, the project's rule
    for constant columns. The domain's variance of a stuck feature would be 0: its statistics
    singular, its scores arbitrary (1e7 to 1e10 for ordinary rows). ``ignore`` marks columns the
    model leaves out anyway (constant in the training data); ``names`` are the column names.

    Raises
    ------
    InputError
        Naming the domain and the stuck features (or saying that all rows are identical).
    """
    from flowad.preprocessing import CONSTANT_RTOL

    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    modelled = np.ones(low.shape, dtype=bool) if ignore is None else ~np.asarray(ignore, dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):
        stuck = (0.5 * (high - low) <= CONSTANT_RTOL * np.abs(0.5 * high + 0.5 * low)) & modelled
    if not stuck.any():
        return
    columns = np.flatnonzero(stuck)
    labels = [str(names[j]) for j in columns] if names is not None else [f"column {j}" for j in columns]
    if stuck.sum() == modelled.sum():
        what = f"all rows are identical (in every feature the model uses: {labels[:10]}{' ...' if len(labels) > 10 else ''})"
    else:
        what = f"feature(s) {labels[:10]}{' ...' if len(labels) > 10 else ''} never change (a stuck sensor?)"
    raise InputError(
        f"Cannot adapt domain {domain!r}: in its rows {what}, so the domain's variance of "
        f"{'them' if len(labels) > 1 else 'it'} would be 0 and its scores arbitrary. Adapt on normal rows in "
        "which every feature varies, or refit the model without the stuck feature(s)."
    )


def check_adaptation_rows(X: np.ndarray, *, domain: str, ignore: np.ndarray | None = None, names: list[str] | None = None) -> None:
    """:func:`check_adaptation_range` for validated rows ``X`` held in memory."""
    if X.shape[0]:
        check_adaptation_range(X.min(axis=0), X.max(axis=0), domain=domain, ignore=ignore, names=names)
