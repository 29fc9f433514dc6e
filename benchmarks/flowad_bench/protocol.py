"""The RobustRealNVP study's evaluation protocol, as small pure functions.

For each seed: a stratified random 60 % / 40 % train/test split; the detector is trained on
the training split **without labels and with its anomalies**; features are standardized with
training statistics only (:func:`flowad.preprocessing.standardize`, the library's one rule for
constant columns); ROC AUC and average precision are computed on the test split.
Labels of the training split are used only to build the experiments' training sets
(resampling anomalies to a set contamination), never by a detector.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from flowad.exceptions import InputError

__all__ = [
    "TEST_SIZE",
    "stratified_split",
    "evaluate",
    "resample_contamination",
    "split_seed",
]

#: Fraction of every dataset held out for testing.
TEST_SIZE = 0.4


def split_seed(seed: int) -> int:
    """The seed of the train/test split of protocol seed ``seed`` (the identity, documented)."""
    return int(seed)


def stratified_split(y: np.ndarray, seed: int, test_size: float = TEST_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Stratified random train/test split of the row indices.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        0/1 labels; both classes keep their proportion in both parts (up to rounding).
    seed : int
        Seed of the split; the same seed gives the same split.
    test_size : float, default=0.4

    Returns
    -------
    train_idx, test_idx : ndarray of int
        Disjoint, sorted, and together covering ``range(n_samples)``.
    """
    y = np.asarray(y)
    idx = np.arange(y.shape[0])
    train_idx, test_idx = train_test_split(idx, test_size=test_size, stratify=y, random_state=split_seed(seed))
    return np.sort(train_idx), np.sort(test_idx)


def evaluate(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """ROC AUC and average precision of anomaly ``scores`` (higher = more anomalous).

    Raises
    ------
    InputError
        If some scores are NaN/inf or ``y_true`` has a single class.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    y_true = np.asarray(y_true).reshape(-1)
    if scores.shape != y_true.shape:
        raise InputError(f"scores has {scores.shape[0]} entries but y_true has {y_true.shape[0]}.")
    bad = ~np.isfinite(scores)
    if bad.any():
        raise InputError(f"{int(bad.sum())} of {scores.size} anomaly scores are NaN/inf; AUC is undefined.")
    if np.unique(y_true).size < 2:
        raise InputError("y_true has a single class; AUC needs both normals and anomalies.")
    return float(roc_auc_score(y_true, scores)), float(average_precision_score(y_true, scores))


def resample_contamination(y: np.ndarray, train_idx: np.ndarray, contamination: float, seed: int) -> np.ndarray:
    """Training indices with exactly ``contamination`` anomalies, drawn from the training split.

    All normal training rows are kept; ``round(c / (1 - c) * n_normal)`` anomalies are drawn
    from the training split's anomalies — without replacement when there are enough, with
    replacement otherwise (so duplicates appear when the split has too few anomalies). Test
    rows are never used.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        0/1 labels of the whole dataset.
    train_idx : ndarray of int
        Rows of the training split.
    contamination : float in [0, 1)
        Wanted fraction of anomalies in the returned training set.
    seed : int

    Returns
    -------
    ndarray of int
        Row indices (sorted; may repeat anomaly rows).
    """
    if not 0.0 <= contamination < 1.0:
        raise InputError(f"contamination must be in [0, 1), got {contamination}.")
    y = np.asarray(y)
    train_idx = np.asarray(train_idx)
    normal = train_idx[y[train_idx] == 0]
    anomalous = train_idx[y[train_idx] == 1]
    n_anom = int(round(contamination / (1.0 - contamination) * normal.size))
    if n_anom > 0 and anomalous.size == 0:
        raise InputError("the training split has no anomalies to resample from.")
    rng = np.random.default_rng([int(seed), 7919])
    chosen = rng.choice(anomalous, size=n_anom, replace=n_anom > anomalous.size) if n_anom else anomalous[:0]
    return np.sort(np.concatenate([normal, chosen]))
