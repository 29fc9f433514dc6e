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
    "MIN_CONTAMINATION_ROWS",
    "contamination_train_size",
    "subsample_contamination",
    "split_seed",
    "SUBSAMPLE_SEED",
    "MIN_TRAIN_ANOMALIES",
    "subsample_rows",
    "subsample_train",
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


#: Fewest training rows :func:`subsample_contamination` accepts (a dataset whose training split
#: cannot give that many rows at the highest contamination level is left out of the study).
MIN_CONTAMINATION_ROWS = 100


def contamination_train_size(y: np.ndarray, train_idx: np.ndarray, low: float, high: float) -> int:
    """Rows of every training set of a fair contamination study over levels ``low`` … ``high``.

    The largest ``n`` such that ``high * n`` anomalies and ``(1 - low) * n`` normal rows both
    exist in the training split, so every level can be reached without repeating a row.
    """
    y = np.asarray(y)
    labels = y[np.asarray(train_idx)]
    n_anom, n_norm = int((labels == 1).sum()), int((labels != 1).sum())
    return int(np.floor(min(n_anom / high, n_norm / (1.0 - low)) + 1e-9))


def subsample_contamination(
    y: np.ndarray,
    train_idx: np.ndarray,
    contamination: float,
    seed: int,
    low: float,
    high: float,
    min_rows: int = MIN_CONTAMINATION_ROWS,
) -> np.ndarray:
    """Training indices at ``contamination``, reached by subsampling — never repeating a row.

    The fair design of the contamination study: every level ``low <= c <= high`` has the same
    number of training rows ``n`` (:func:`contamination_train_size`), ``round(c * n)`` anomalies
    and the rest normal rows, all distinct rows of the training split. Anomalies and normal rows
    are taken from the front of two permutations drawn with ``seed`` alone, so the levels are
    nested: a higher level adds anomalies and drops normal rows, nothing else changes. Test rows
    are never used.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        0/1 labels of the whole dataset.
    train_idx : ndarray of int
        Rows of the training split.
    contamination : float
        This level, in [``low``, ``high``].
    seed : int
        The protocol seed.
    low, high : float
        Lowest and highest level of the study (they fix ``n``).
    min_rows : int, default=MIN_CONTAMINATION_ROWS

    Returns
    -------
    ndarray of int
        Sorted, distinct row indices, a subset of ``train_idx``.

    Raises
    ------
    InputError
        If the levels are out of order or range, or ``n < min_rows`` (too few anomalies).
    """
    if not 0.0 <= low <= contamination <= high < 1.0:
        raise InputError(f"need 0 <= low <= contamination <= high < 1, got {low}, {contamination}, {high}.")
    y = np.asarray(y)
    train_idx = np.asarray(train_idx)
    n = contamination_train_size(y, train_idx, low, high)
    if n < min_rows:
        raise InputError(
            f"the training split has too few anomalies for contamination up to {high:g} without repeating rows: "
            f"{n} training rows (< {min_rows})."
        )
    rng = np.random.default_rng([int(seed), 15485863])
    anomalous = rng.permutation(train_idx[y[train_idx] == 1])
    normal = rng.permutation(train_idx[y[train_idx] != 1])
    n_anom = int(round(contamination * n))
    return np.sort(np.concatenate([anomalous[:n_anom], normal[: n - n_anom]]))


#: Seed of :func:`subsample_rows` (the ``--max-rows`` cap): fixed, independent of the protocol
#: seed, so every seed and every method sees the same subsampled dataset.
SUBSAMPLE_SEED = 0
#: Fewest anomalies :func:`subsample_train` keeps when the training split has that many.
MIN_TRAIN_ANOMALIES = 5


def subsample_rows(y: np.ndarray, max_rows: int, seed: int = SUBSAMPLE_SEED) -> np.ndarray:
    """Rows of a dataset capped at ``max_rows``, stratified, with a fixed seed.

    A dataset with at most ``max_rows`` rows is returned whole (``arange(n)``). A larger one is
    subsampled to exactly ``max_rows`` rows, each class keeping its proportion (up to
    rounding, and at least 2 rows of each class so that the 60/40 split stays stratifiable),
    drawn with ``seed`` — by default :data:`SUBSAMPLE_SEED`, the same for every protocol seed.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        0/1 labels.
    max_rows : int
        Cap, >= 10.
    seed : int, default=SUBSAMPLE_SEED

    Returns
    -------
    ndarray of int
        Sorted row indices.

    Raises
    ------
    InputError
        If ``max_rows`` < 10.
    """
    if int(max_rows) < 10:
        raise InputError(f"max_rows must be >= 10, got {max_rows}.")
    y = np.asarray(y).reshape(-1)
    n = y.shape[0]
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng([int(seed), 104729])
    anomalous, normal = np.flatnonzero(y == 1), np.flatnonzero(y != 1)
    n_anom = int(round(max_rows * anomalous.size / n))
    n_anom = min(anomalous.size, max(n_anom, min(2, anomalous.size)), max_rows - 2)
    chosen = np.concatenate(
        [rng.choice(anomalous, n_anom, replace=False), rng.choice(normal, max_rows - n_anom, replace=False)]
    )
    return np.sort(chosen)


def subsample_train(
    y: np.ndarray, train_idx: np.ndarray, n_rows: int, seed: int, min_anomalies: int = MIN_TRAIN_ANOMALIES
) -> np.ndarray:
    """The training split subsampled to ``n_rows`` rows (the small-data track), stratified.

    Rule: a split of at most ``n_rows`` rows is kept whole. Otherwise the split's anomaly
    fraction is kept (``round(n_rows * fraction)`` anomalies), but never fewer than
    ``min(min_anomalies, anomalies in the split)`` — so a split that has 5 or more anomalies
    keeps at least 5, which raises the training contamination of very clean datasets — and the
    rest are normal rows; both drawn without replacement with the protocol ``seed``. Test rows
    are never touched; labels only choose rows, no detector sees them.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        0/1 labels of the whole dataset.
    train_idx : ndarray of int
        Rows of the training split.
    n_rows : int
        Wanted training rows, >= 2 * ``min_anomalies``.
    seed : int
        The protocol seed.
    min_anomalies : int, default=MIN_TRAIN_ANOMALIES

    Returns
    -------
    ndarray of int
        Sorted row indices, a subset of ``train_idx``.

    Raises
    ------
    InputError
        If ``n_rows`` is too small.
    """
    if int(n_rows) < 2 * min_anomalies:
        raise InputError(f"train_rows must be >= {2 * min_anomalies}, got {n_rows}.")
    y = np.asarray(y)
    train_idx = np.asarray(train_idx)
    if train_idx.size <= n_rows:
        return np.sort(train_idx)
    anomalous = train_idx[y[train_idx] == 1]
    normal = train_idx[y[train_idx] != 1]
    n_anom = int(round(n_rows * anomalous.size / train_idx.size))
    n_anom = min(anomalous.size, max(n_anom, min(min_anomalies, anomalous.size)))
    n_norm = min(normal.size, n_rows - n_anom)
    n_anom = n_rows - n_norm  # only when the split has too few normals
    rng = np.random.default_rng([int(seed), 15485863])
    chosen = np.concatenate([rng.choice(anomalous, n_anom, replace=False), rng.choice(normal, n_norm, replace=False)])
    return np.sort(chosen)
