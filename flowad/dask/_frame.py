"""Scoring one in-memory table: shared by ``flowad score`` (one process) and every Dask partition.

Nothing here imports Dask, so the single-process command line uses it without the extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from flowad.exceptions import InputError
from flowad.io.tables import select_features

__all__ = ["SCORE_COLUMNS", "feature_frame", "score_frame"]

#: Columns of a scores table, after the row id.
SCORE_COLUMNS = ("anomaly_score", "log_density", "label")


def feature_frame(frame: pd.DataFrame, det: Any, columns: list[str] | None, exclude: list[str]) -> pd.DataFrame:
    """Columns the model was fitted on (by name when it has names), else the selection rules."""
    names = getattr(det, "feature_names_in_", None)
    if columns is None and names is not None:
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise InputError(f"The data lacks the model's feature columns {missing}; it has {list(map(str, frame.columns))}.")
        return frame[list(names)]
    return select_features(frame, columns, exclude)


def _column(frame: pd.DataFrame, column: str | None, what: str) -> np.ndarray | None:
    if column is None:
        return None
    if column not in frame.columns:
        raise InputError(f"{what} column {column!r} is not in the data; available: {list(map(str, frame.columns))}.")
    return frame[column].to_numpy()


def check_domain_options(det: Any, domain: str | None, domain_column: str | None, model_name: str) -> None:
    """Refuse --domain with --domain-column, and either of them for a single-domain model."""
    if domain is not None and domain_column is not None:
        raise InputError("Give --domain or --domain-column, not both.")
    if (domain is not None or domain_column is not None) and not hasattr(det, "domains_"):
        raise InputError(f"{model_name!r} holds a single-domain {type(det).__name__} model; --domain/--domain-column apply to adaflow models.")


def score_frame(
    det: Any,
    frame: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    id_column: str | None = None,
    domain: str | None = None,
    domain_column: str | None = None,
) -> pd.DataFrame:
    """Each row's id, anomaly score (negative log-likelihood), log-density and 0/1 label.

    Parameters
    ----------
    det : fitted detector
    frame : DataFrame
        Rows to score.
    columns : list of str or None
        Feature columns (default: the model's own feature names).
    id_column : str or None
        Column copied to ``id``; None copies ``frame``'s index (the row numbers of a file, of a
        folder's partition in the folder).
    domain, domain_column : str or None
        Domain of every row, or the column giving each row's domain (multi-domain models).

    Returns
    -------
    DataFrame with columns ``id``, ``anomaly_score``, ``log_density``, ``label``, on ``frame``'s index.
    """
    X = feature_frame(frame, det, columns, [c for c in (id_column, domain_column) if c])
    ids = _column(frame, id_column, "Id")
    if len(frame) == 0:  # an empty partition (e.g. of a filtered Dask DataFrame) has no scores
        return pd.DataFrame({"id": frame.index.to_numpy() if ids is None else ids, "anomaly_score": np.empty(0),
                             "log_density": np.empty(0), "label": np.empty(0, dtype=np.int64)}, index=frame.index)
    if ids is None:
        ids = frame.index.to_numpy()
    per_row = _column(frame, domain_column, "Domain")
    if per_row is None:
        kw = {} if domain is None else {"domain": domain}
        log_density = det.score_samples(X, **kw)
        threshold: Any = det.thresholds_[det.domains_[det._index(domain)]] if hasattr(det, "thresholds_") else det.threshold_
    else:
        log_density = np.empty(len(frame))
        threshold = np.empty(len(frame))
        names = per_row.astype(str)
        for name in pd.unique(names):
            mask = names == name
            log_density[mask] = det.score_samples(X[mask], domain=name)
            threshold[mask] = det.thresholds_[name]
    anomaly = -log_density
    return pd.DataFrame(
        {"id": ids, "anomaly_score": anomaly, "log_density": log_density, "label": (anomaly > threshold).astype(np.int64)},
        index=frame.index,
    )
