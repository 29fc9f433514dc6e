"""The image-embedding experiment's protocol (the RobustRealNVP study's CIFAR-10 table and figures).

Data: a folder of ``.npz`` files, each with ``X`` (n_samples, n_features), e.g. image embeddings
from a pretrained network, and ``y``. Two kinds of file are understood:

* **class files**: ``y`` holds integer class labels (at least two classes); each file is a dataset;
* **one-class files** as ADBench ships its embedding sets: ``y`` is 0/1 (1 = anomaly) and the
  file name ends in ``_<k>`` (``CIFAR10_0.npz``); the *normal* rows (``y == 0``) of such a file
  are the images of class ``k``. Files sharing a prefix are pooled into one dataset named by the
  prefix (``CIFAR10``) whose classes are the ``k`` of its files. The anomaly rows of these files
  are then not used: their class is not recorded.
  With ``own_anomalies`` each one-class file is instead a dataset of its own whose normal class
  is ``0`` (its normal rows) and whose anomalies are the file's own anomaly rows: for ADBench's
  CIFAR-10 files, images drawn from all nine other classes, so mode ``u`` is the RobustRealNVP
  study's uniform contamination over nine classes (few rows: 263 anomalies per file).

For every class ``k`` taken as the normal class, every mode and every seed
(:func:`embedding_split`):

* the normal class is shuffled; its first 60 % are the *training pool*, the other 40 % the test
  normals (``max_train`` caps the pool, never the test set);
* test anomalies: as many as test normals, drawn uniformly from the rows of all other classes,
  *before* any training anomaly, so a seed and class have one test set for every mode,
  contamination level and method (paired comparisons);
* training set of a fixed size ``M = round(pool / 0.9)`` at every contamination ``c >= 0.1``:
  ``round(c * M)`` anomalies and ``M - round(c * M)`` normals from the pool; at ``c = 0.1`` that is
  the whole pool plus ``pool / 9`` anomalies. Higher levels use *fewer normal rows*, never a
  repeated anomaly row (rows are sliced from one permutation, so levels are nested);
* anomalies of the training set: mode ``u`` ("-u") uniform over the other classes' remaining
  rows; mode ``c`` ("-c") all from one other class, chosen per (seed, normal class) by a seeded
  draw that never looks at results;
* PCA to 128 dimensions fitted on the (unlabeled) training rows only (:func:`pca_project`);
  ``pca_fit`` changes which training rows the PCA is fitted on, for the studies of how much of
  a contamination effect is the projection's: ``"all"`` (the protocol), ``"trimmed"`` (the rows
  a trimmed Gaussian keeps, :func:`trimmed_rows`: label-free) or ``"normal"`` (the normal rows:
  uses the labels, an oracle for diagnosis, never a detector's result);
* test ROC AUC and AP.

The trim-ratio study trains the trimmed flow with a misestimated trim ratio at true
contamination 0.1 (mode ``u``); the contamination study reaches 0.1 … 0.4 as above, with the
trimmed flows trimming the true level. Rows shared by several experiments (the 0.1 point of
both studies is the table's ``-u`` run) are run once.

Writes ``results.csv`` (resumable), ``table.md``, ``embeddings.png`` and, when the studies run,
``trim.png`` and ``contamination.png``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowad.exceptions import InputError
from flowad_bench.datasets import DatasetError, SkippedFile, data_folder
from flowad_bench.methods import base_name, parse_methods, parse_variant
from flowad_bench.odds import (
    METRIC_FIELDS,
    BenchRun,
    _versions,
    check_unique_labels,
    fit_and_score,
    load_only,
    run_and_load,
    run_notes,
)
from flowad_bench.report import format_mean_std, frame_to_markdown, markdown_head

__all__ = [
    "EMBEDDING_FIELDS",
    "MODES",
    "TRIMMED_METHODS",
    "EmbeddingTask",
    "load_embeddings",
    "load_one_class_files",
    "embedding_split",
    "pca_project",
    "trimmed_rows",
    "robust_distances",
    "embedding_tasks",
    "run_embedding_task",
    "run_embeddings",
]

#: Training contamination of the protocol (the table's level).
TRAIN_CONTAMINATION = 0.1
#: Fraction of the normal class in the training pool.
TRAIN_FRACTION = 0.6
#: PCA dimension.
PCA_DIM = 128
#: ``u``: anomalies uniform over the other classes; ``c``: from a single other class.
MODES = ("u", "c")
#: Which training rows the PCA is fitted on (see the module notes), as the tables say it.
_PCA_FIT_TEXT = {
    "all": "the training rows",
    "trimmed": "the training rows a trimmed Gaussian keeps (label-free)",
    "normal": "the training split's normal rows (an oracle: it uses the labels)",
}
PCA_FITS = tuple(_PCA_FIT_TEXT)
#: Methods that take ``trim_ratio`` (it defaults to their ``contamination``, 0.1).
TRIMMED_METHODS = ("TrimRealNVP", "RobustRealNVP")
#: Default methods of the two sensitivity studies.
TRIM_METHOD = "RobustRealNVP"
SENSITIVITY_METHODS = "RobustRealNVP,RealNVP,TrimRealNVP,IForest"
#: CIFAR-10's class names, to label the ``CIFAR10`` dataset's classes.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_ONE_CLASS_NAME = re.compile(r"^(?P<prefix>.+)_(?P<k>\d+)$")

EMBEDDING_FIELDS = (
    "experiment",
    "dataset",
    "normal_class",
    "mode",
    "anomaly_class",
    "method",
    "seed",
    "target_contamination",
    "trim_ratio",
    *METRIC_FIELDS,
    "n_train",
    "n_train_normal",
    "n_train_anomalies",
    "n_test",
    "n_features",
    "pca_dim",
    "train_contamination",
    "quick",
    "params",
    "versions",
)


@dataclass(frozen=True)
class EmbeddingTask:
    """One fit-and-score of the embedding protocol.

    Attributes
    ----------
    dataset, path : str
        Dataset name and file (a class file; empty for pooled one-class files).
    normal_class : int
    mode : {"u", "c"}
    method : str
    seed : int
    quick : bool
    pca_dim : int
    max_train : int or None
        Cap on the training pool of normals.
    contamination : {"default", "oracle"}
        As in :func:`flowad_bench.odds.fit_and_score`.
    overrides : tuple of (name, value)
        Constructor arguments (the studies set ``trim_ratio``).
    files : tuple of str
        The one-class files pooled into ``dataset`` (empty for a class file).
    level : float
        True training contamination (0.1 in the table).
    experiment : str
        The first experiment that asked for this run (rows are shared between experiments).
    pca_fit : {"all", "trimmed", "normal"}
        Training rows the PCA is fitted on (see the module notes); ``"trimmed"`` trims ``level``.
    own_anomalies : bool
        ``dataset`` is a one-class file taken on its own (its class 0 is its normal rows); only
        the tables' labels use it.
    """

    dataset: str
    path: str
    normal_class: int
    mode: str
    method: str
    seed: int
    quick: bool = False
    pca_dim: int = PCA_DIM
    max_train: int | None = None
    contamination: str = "default"
    overrides: tuple[tuple[str, Any], ...] = field(default=())
    files: tuple[str, ...] = ()
    level: float = TRAIN_CONTAMINATION
    experiment: str = "embeddings"
    pca_fit: str = "all"
    own_anomalies: bool = False

    @property
    def task_id(self) -> str:
        """``dataset|class=k|mode|method|seed`` (+ ``|c=..``, ``|name=value``, ``|max_train=N``, ...)."""
        parts = [self.dataset, f"class={self.normal_class}", self.mode, self.method, str(self.seed)]
        if self.level != TRAIN_CONTAMINATION:
            parts.append(f"c={self.level:g}")
        parts += [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.overrides]
        if self.max_train is not None:
            parts.append(f"max_train={self.max_train}")
        if self.pca_dim != PCA_DIM:
            parts.append(f"pca={self.pca_dim}")
        if self.pca_fit != "all":
            parts.append(f"pca_fit={self.pca_fit}")
        if self.quick:
            parts.append("quick")
        return "|".join(parts)

    @property
    def trim_ratio(self) -> float | None:
        """The trim ratio the method trains with (None for methods that do not trim)."""
        method = base_name(self.method)
        if method == "RealNVP":
            return 0.0
        if method not in TRIMMED_METHODS:
            return None
        return float(dict(self.overrides).get("trim_ratio", TRAIN_CONTAMINATION))


def load_embeddings(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read an embedding file: ``X`` (float, finite) and integer labels ``y`` (>= 2 distinct values).

    Raises
    ------
    DatasetError
        If ``X`` or ``y`` is missing, non-finite or mismatched, or there is a single class.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            if "X" not in data.files or "y" not in data.files:
                raise DatasetError(f"an embedding file needs arrays 'X' and 'y', found {sorted(data.files)}")
            X = np.asarray(data["X"], dtype=np.float64)
            y = np.asarray(data["y"]).reshape(-1)
    except DatasetError:
        raise
    except Exception as err:
        raise DatasetError(f"cannot be read ({type(err).__name__}: {err})") from None
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise DatasetError(f"X must be 2-D with one row per label; got X {X.shape}, y {y.shape}")
    if not np.isfinite(X).all():
        raise DatasetError(f"X has {int((~np.isfinite(X)).sum())} NaN/inf value(s)")
    if np.unique(y).size < 2:
        raise DatasetError("y has a single class; the protocol needs a normal class and others")
    return X, y


def _one_class_key(path: Path, y: np.ndarray) -> tuple[str, int] | None:
    """``(prefix, k)`` if ``path`` is a one-class file (0/1 labels, name ``<prefix>_<k>``)."""
    match = _ONE_CLASS_NAME.match(path.stem)
    if match is None or not set(np.unique(y).tolist()) <= {0, 1}:
        return None
    return match["prefix"], int(match["k"])


def load_one_class_files(paths: Sequence[str | os.PathLike[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Pool the normal rows of one-class files into a class-labelled set.

    Parameters
    ----------
    paths : sequence of path-like
        Files ``<prefix>_<k>.npz`` with 0/1 labels; the rows with ``y == 0`` become class ``k``.

    Returns
    -------
    X : ndarray of shape (n_rows, n_features)
    y : ndarray of int
        The class ``k`` of each row's file.

    Raises
    ------
    DatasetError
        If a file is not a one-class file, two files have the same ``k`` or different widths.
    """
    Xs, ys, seen = [], [], set()
    for p in map(Path, paths):
        X, y = load_embeddings(p)
        key = _one_class_key(p, y)
        if key is None:
            raise DatasetError(f"{p.name}: not a one-class file (0/1 labels and a name ending in _<class>)")
        if key[1] in seen:
            raise DatasetError(f"{p.name}: class {key[1]} appears in two files")
        seen.add(key[1])
        Xs.append(X[y == 0])
        ys.append(np.full(int((y == 0).sum()), key[1], dtype=np.int64))
    if len({X.shape[1] for X in Xs}) > 1:
        raise DatasetError(f"pooled files have different feature counts: {[X.shape[1] for X in Xs]}")
    return np.concatenate(Xs), np.concatenate(ys)


@functools.lru_cache(maxsize=4)
def _cached(path: str, files: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    return load_one_class_files(files) if files else load_embeddings(path)


def embedding_split(
    y: np.ndarray,
    normal_class: Any,
    mode: str,
    seed: int,
    *,
    max_train: int | None = None,
    contamination: float = TRAIN_CONTAMINATION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """Row indices of the protocol's training and balanced test sets (see the module notes).

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Class labels.
    normal_class : label
    mode : {"u", "c"}
    seed : int
    max_train : int, optional
        Cap on the training pool of normals (the test set keeps 40 % of the class).
    contamination : float in [0, 1), default=0.1
        Fraction of anomalies in the training set. From 0.1 up, the training set keeps the size
        it has at 0.1 and holds fewer normals; below 0.1 it keeps the whole pool of normals.
        Anomaly rows are never repeated.

    Returns
    -------
    train_idx : ndarray of int
        Training rows (normals and contaminating anomalies); detectors get no labels.
    test_idx : ndarray of int
    y_test : ndarray of int
        1 = anomaly (another class), 0 = normal.
    anomaly_class : label or None
        The single contaminating class in mode ``c``; None in mode ``u``.

    Raises
    ------
    InputError
        For an unknown mode or class, a contamination outside [0, 1), or too few rows.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}.")
    if not 0.0 <= float(contamination) < 1.0:
        raise InputError(f"contamination must be in [0, 1), got {contamination!r}.")
    y = np.asarray(y)
    classes = np.unique(y)
    if normal_class not in classes:
        raise InputError(f"normal_class {normal_class!r} is not among the labels {classes.tolist()}.")
    k = int(np.flatnonzero(classes == normal_class)[0])
    rng = np.random.default_rng([int(seed), k])
    normal = rng.permutation(np.flatnonzero(y == normal_class))
    others = rng.permutation(np.flatnonzero(y != normal_class))
    n_pool = int(round(TRAIN_FRACTION * normal.size))
    pool, test_normal = normal[:n_pool], normal[n_pool:]
    if max_train is not None:
        pool = pool[:max_train]
    n_test_anom = min(test_normal.size, others.size // 2)
    test_anom, remaining = others[:n_test_anom], others[n_test_anom:]
    other_classes = classes[classes != normal_class]
    anomaly_class = None
    if mode == "c":
        anomaly_class = other_classes[np.random.default_rng([int(seed), k, 1]).integers(other_classes.size)]
        remaining = remaining[y[remaining] == anomaly_class]
    c = float(contamination)
    if c >= TRAIN_CONTAMINATION:
        size = int(round(pool.size / (1.0 - TRAIN_CONTAMINATION)))
        n_anom = int(round(c * size))
        n_norm = size - n_anom
    else:
        n_norm = pool.size
        n_anom = int(round(c / (1.0 - c) * n_norm))
    if n_norm < 2 or remaining.size < n_anom:
        raise InputError(
            f"class {normal_class!r}, mode {mode!r}, contamination {c:g}: {n_norm} training normal(s) and "
            f"{remaining.size} rows for {n_anom} training anomalies; use a lower contamination or more rows."
        )
    train_idx = np.sort(np.concatenate([pool[:n_norm], remaining[:n_anom]]))
    test_idx = np.concatenate([test_normal, test_anom])
    y_test = np.concatenate([np.zeros(test_normal.size, np.int64), np.ones(n_test_anom, np.int64)])
    return train_idx, test_idx, y_test, anomaly_class


def pca_project(
    X_train: np.ndarray, X_test: np.ndarray, dim: int, seed: int, *, fit_rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """PCA fitted on training rows only (at most one component fewer than the rows it is fitted
    on); both sets projected.

    Parameters
    ----------
    X_train, X_test : ndarray
    dim : int
    seed : int
    fit_rows : ndarray of bool, optional
        The training rows to fit the PCA on (default: all); every row is projected.

    Returns
    -------
    X_train, X_test : ndarray
    dim : int
        The dimension used.
    """
    from sklearn.decomposition import PCA

    X_fit = X_train if fit_rows is None else X_train[np.asarray(fit_rows, dtype=bool)]
    dim = int(min(dim, X_fit.shape[1], X_fit.shape[0] - 1))
    pca = PCA(n_components=dim, random_state=seed).fit(X_fit)
    return pca.transform(X_train), pca.transform(X_test), dim


def trimmed_rows(Z: np.ndarray, trim_ratio: float) -> np.ndarray:
    """The rows of ``Z`` a trimmed Gaussian calls normal: all but the ``floor(trim_ratio * n)``
    farthest in Mahalanobis distance from :func:`flowad.preprocessing.robust_covariance` (trimmed
    Ledoit–Wolf) fitted with ``trim_ratio`` on the robustly standardized rows. Uses no labels.

    Returns
    -------
    ndarray of bool, shape (n_samples,)
    """
    keep = np.ones(Z.shape[0], dtype=bool)
    n_drop = int(np.floor(trim_ratio * Z.shape[0]))
    if n_drop == 0:
        return keep
    dist = robust_distances(Z, trim_ratio)
    keep[np.argsort(dist, kind="stable")[Z.shape[0] - n_drop:]] = False
    return keep


def robust_distances(Z: np.ndarray, trim_ratio: float) -> np.ndarray:
    """Squared Mahalanobis distance of every row of ``Z`` from :func:`flowad.preprocessing.robust_covariance`
    (trimmed Ledoit–Wolf, ``trim_ratio``) fitted on the robustly standardized rows. Uses no labels.

    Returns
    -------
    ndarray of shape (n_samples,)
    """
    from flowad.preprocessing import Standardization, robust_covariance

    Z = Standardization.fit(Z, method="robust").transform(Z)
    loc, cov = robust_covariance(Z, trim_ratio)
    diff = Z - loc
    return np.einsum("ij,ij->i", diff, np.linalg.solve(cov, diff.T).T)


def run_embedding_task(task: EmbeddingTask) -> dict[str, Any]:
    """Run one :class:`EmbeddingTask` and return its result row."""
    X, y = _cached(task.path, task.files)
    train_idx, test_idx, y_test, anomaly_class = embedding_split(
        y, task.normal_class, task.mode, task.seed, max_train=task.max_train, contamination=task.level
    )
    is_anom = y[train_idx] != task.normal_class
    fit_rows = None
    if task.pca_fit == "trimmed":
        fit_rows = trimmed_rows(pca_project(X[train_idx], X[test_idx], task.pca_dim, task.seed)[0], task.level)
    elif task.pca_fit == "normal":
        fit_rows = ~is_anom
    X_train, X_test, dim = pca_project(X[train_idx], X[test_idx], task.pca_dim, task.seed, fit_rows=fit_rows)
    train_contamination = float(is_anom.mean())
    result = fit_and_score(
        task.method,
        task.seed,
        X_train,
        X_test,
        y_test,
        quick=task.quick,
        overrides=task.overrides,
        contamination=task.contamination,
        train_contamination=train_contamination,
    )
    trim = task.trim_ratio
    return {
        "experiment": task.experiment,
        "dataset": task.dataset,
        "normal_class": task.normal_class,
        "mode": task.mode,
        "anomaly_class": "" if anomaly_class is None else np.asarray(anomaly_class).item(),
        "method": task.method,
        "seed": task.seed,
        "target_contamination": task.level,
        "trim_ratio": "" if trim is None else trim,
        **result,
        "n_train": int(train_idx.size),
        "n_train_normal": int((~is_anom).sum()),
        "n_train_anomalies": int(is_anom.sum()),
        "n_test": int(test_idx.size),
        "n_features": int(X.shape[1]),
        "pca_dim": dim,
        "train_contamination": train_contamination,
        "quick": bool(task.quick),
        "versions": _versions(),
    }


@dataclass(frozen=True)
class _Source:
    name: str
    path: str
    files: tuple[str, ...]
    classes: tuple[int, ...]
    #: A one-class file taken on its own (``own_anomalies``): class 0 is its normal rows.
    own_anomalies: bool = False


def _sources(root: Path, own_anomalies: bool = False) -> tuple[list[_Source], list[SkippedFile]]:
    """Class files and pooled groups of one-class files of ``root``, and the unusable files.
    ``own_anomalies``: each one-class file is a source of its own, normal class 0 (its normal
    rows), its own anomaly rows the other class."""
    sources: list[_Source] = []
    skipped: list[SkippedFile] = []
    groups: dict[str, list[tuple[int, Path]]] = {}
    for p in sorted(root.glob("*.npz")):
        try:
            _, y = load_embeddings(p)
        except DatasetError as err:
            skipped.append(SkippedFile(p.stem, str(p), str(err)))
            continue
        key = _one_class_key(p, y)
        if key is None:
            sources.append(_Source(p.stem, str(p), (), tuple(np.unique(y).tolist())))
        elif own_anomalies:
            sources.append(_Source(p.stem, str(p), (), (0,), own_anomalies=True))
        else:
            groups.setdefault(key[0], []).append((key[1], p))
    for prefix, members in sorted(groups.items()):
        if len(members) < 2:
            (_, p), = members
            skipped.append(SkippedFile(p.stem, str(p), "a one-class file (0/1 labels) needs a sibling "
                                       f"{prefix}_<k>.npz of another class to draw anomalies from"))
            continue
        members.sort()
        sources.append(_Source(prefix, str(root), tuple(str(p) for _, p in members), tuple(k for k, _ in members)))
    return sources, skipped


def _check_levels(name: str, values: Sequence[float]) -> list[float]:
    vals = [float(v) for v in values]
    bad = [v for v in vals if not 0.0 <= v < 0.5]
    if bad:
        raise InputError(f"{name} must be numbers in [0, 0.5), got {list(values)}.")
    return vals


def embedding_tasks(
    sources: Sequence[_Source],
    names: Sequence[str],
    *,
    modes: Sequence[str] = MODES,
    classes: Sequence[int] | None = None,
    seeds: int = 5,
    trim_ratios: Sequence[float] = (),
    contaminations: Sequence[float] = (),
    trim_method: str = TRIM_METHOD,
    sensitivity_methods: Sequence[str] = (),
    sensitivity_seeds: int | None = None,
    quick: bool = False,
    pca_dim: int = PCA_DIM,
    max_train: int | None = None,
    variants: dict[str, tuple[tuple[str, Any], ...]] | None = None,
    pca_fit: str = "all",
) -> list[EmbeddingTask]:
    """Every task of a run, seed-major (a partial run has whole seeds), each run once.

    For each seed: the table (every source, normal class, mode and method at contamination
    0.1), then the trim-ratio study (mode ``u``, ``trim_method`` with each trim ratio), then the
    contamination study (mode ``u``, each level, ``sensitivity_methods``; trimmed flows trim the
    true level). A study's task equal to an earlier one (the 0.1 points) is not repeated.
    ``variants`` maps a variant label among the method names to its constructor overrides
    (:func:`flowad_bench.methods.parse_variant`); they apply over the study's trim ratio.
    """
    n_sens = seeds if sensitivity_seeds is None else int(sensitivity_seeds)
    out: dict[str, EmbeddingTask] = {}
    variants = variants or {}

    def add(src: _Source, c: int, mode: str, m: str, s: int, level: float, trim: float | None, experiment: str) -> None:
        settings: dict[str, Any] = {}
        if base_name(m) in TRIMMED_METHODS and trim is not None and trim != TRAIN_CONTAMINATION:
            settings["trim_ratio"] = float(trim)
        settings.update(variants.get(m, ()))
        overrides = tuple(settings.items())
        task = EmbeddingTask(src.name, src.path, c, mode, m, s, quick=quick, pca_dim=pca_dim, max_train=max_train,
                             overrides=overrides, files=src.files, level=float(level), experiment=experiment,
                             pca_fit=pca_fit, own_anomalies=src.own_anomalies)
        out.setdefault(task.task_id, task)

    for s in range(max(seeds, n_sens)):
        for src in sources:
            chosen = [c for c in src.classes if classes is None or c in classes]
            if quick:
                chosen = chosen[:2]
            for c in chosen:
                if s < seeds:
                    for mode in modes:
                        for m in names:
                            add(src, c, mode, m, s, TRAIN_CONTAMINATION, None, "embeddings")
                if s < n_sens:
                    for r in trim_ratios:
                        add(src, c, "u", trim_method, s, TRAIN_CONTAMINATION, r, "trim-sensitivity")
                    for level in contaminations:
                        for m in sensitivity_methods:
                            add(src, c, "u", m, s, level, level, "contamination-sensitivity")
    return list(out.values())


def run_embeddings(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    methods: str | Sequence[str] = "RealNVP,TrimRealNVP,RobustRealNVP,IForest",
    modes: Sequence[str] = MODES,
    classes: Sequence[int] | None = None,
    seeds: int = 5,
    max_train: int | None = None,
    pca_dim: int = PCA_DIM,
    trim_ratios: Sequence[float] = (),
    contaminations: Sequence[float] = (),
    sensitivity_methods: str | Sequence[str] = SENSITIVITY_METHODS,
    sensitivity_seeds: int | None = None,
    jobs: int = 1,
    quick: bool = False,
    report_only: bool = False,
    own_anomalies: bool = False,
    variants: Sequence[str] = (),
    pca_fit: str = "all",
    progress: bool = True,
    command: str = "",
) -> BenchRun:
    """Run the embedding protocol on the ``.npz`` files of ``data`` (see the module notes).

    Parameters
    ----------
    data, out : path-like
        Folder of embedding files; output folder (resumed if it has ``results.csv``).
    methods : str or list of str
        Methods of the table.
    modes : sequence of {"u", "c"}, default=("u", "c")
    classes : sequence of int, optional
        Normal classes to use (default: every class).
    seeds : int, default=5
    max_train : int, optional
        Cap on the training pool of normals (for speed; stated in the task id).
    pca_dim : int, default=128
    trim_ratios : sequence of float, default=()
        Trim-ratio study (RobustRealNVP at true contamination 0.1, mode ``u``); empty: not run.
    contaminations : sequence of float, default=()
        Contamination study levels (mode ``u``); empty: not run.
    sensitivity_methods : str or list of str
        Methods of the contamination study.
    sensitivity_seeds : int, optional
        Seeds of the two studies (default: ``seeds``).
    jobs, quick, progress, command
        As in :func:`flowad_bench.odds.run_odds`; ``quick`` uses one seed, the first two
        classes and at most 500 training normals.
    report_only : bool, default=False
        Run nothing: write the table and plots from the rows of these tasks already in
        ``out/results.csv`` (a partial run's report; missing rows are listed as PARTIAL).
    own_anomalies : bool, default=False
        One-class files are not pooled: each is a dataset whose anomalies are its own anomaly
        rows (see the module notes).
    variants : sequence of str
        ``NAME:key=value,...`` specs (:func:`flowad_bench.methods.parse_variant`): each also runs
        as its own row label in the table and, when it runs, the contamination study (its
        arguments over the study's trim ratio).
    pca_fit : {"all", "trimmed", "normal"}, default="all"
        Training rows the PCA is fitted on (see the module notes; ``"normal"`` uses the labels:
        a diagnosis, not a detector's result).

    Returns
    -------
    BenchRun
    """
    bad_modes = [m for m in modes if m not in MODES]
    if bad_modes or not modes:
        raise InputError(f"modes must be a non-empty subset of {MODES}, got {list(modes)}.")
    if pca_fit not in PCA_FITS:
        raise InputError(f"pca_fit must be one of {PCA_FITS}, got {pca_fit!r}.")
    root = data_folder(data)
    parsed = [parse_variant(v) for v in variants]
    labels = [label for label, _, _ in parsed]
    names = parse_methods(methods) + labels
    sens_names = parse_methods(sensitivity_methods) + labels if contaminations else []
    for group in (names, sens_names):
        check_unique_labels(group)
    trims = _check_levels("trim ratios", trim_ratios)
    levels = _check_levels("contaminations", contaminations)
    n_seeds = 1 if quick else int(seeds)
    n_sens = n_seeds if (quick or sensitivity_seeds is None) else int(sensitivity_seeds)
    if n_seeds < 1 or n_sens < 1 or pca_dim < 1 or (max_train is not None and max_train < 2):
        raise InputError(
            f"seeds, sensitivity seeds and pca_dim must be >= 1 and max_train >= 2, got {seeds}, "
            f"{sensitivity_seeds}, {pca_dim}, {max_train}."
        )
    if quick and max_train is None:
        max_train = 500
    sources, skipped = _sources(root, own_anomalies)
    tasks = embedding_tasks(
        sources, names, modes=modes, classes=classes, seeds=n_seeds, trim_ratios=trims, contaminations=levels,
        sensitivity_methods=sens_names, sensitivity_seeds=n_sens, quick=quick, pca_dim=pca_dim, max_train=max_train,
        variants={label: overrides for label, _, overrides in parsed}, pca_fit=pca_fit,
    )
    if report_only:
        run, frame = load_only(tasks, out, skipped=skipped, table="table.md", plot="embeddings.png")
    else:
        run, frame = run_and_load(
            tasks, run_embedding_task, out, fields=EMBEDDING_FIELDS, skipped=skipped, table="table.md",
            plot="embeddings.png", jobs=jobs, progress=progress, desc="embeddings",
        )
    quick_note = "QUICK mode: one seed, two normal classes, at most 500 training normals, reduced epochs."
    notes = run_notes(run, len(tasks), len(frame), quick_note if quick else None)
    if not frame.empty:
        frame = frame.assign(**_task_columns(frame, tasks))
    folder = run.table_md.parent
    run.table_md.write_text(
        embeddings_markdown(frame, names, command=command, notes=notes, trim_ratios=trims, contaminations=levels,
                            sensitivity_methods=sens_names, pca_dim=pca_dim, pca_fit=pca_fit)
    )
    if not frame.empty:
        plot_embeddings(frame[frame["in_table"]], run.plot_png, names)
        if trims:
            plot_study(_trim_frame(frame, trims), folder / "trim.png", factor="trim ratio (true contamination 0.1)",
                       methods=[TRIM_METHOD], title="RobustRealNVP with a misestimated trim ratio")
        if levels:
            plot_study(_contamination_frame(frame, levels, sens_names), folder / "contamination.png",
                       factor="true training contamination", methods=sens_names,
                       title="AUC vs true contamination (trimmed flows trim the true level)")
    return run


def _task_columns(frame: pd.DataFrame, tasks: Sequence[EmbeddingTask]) -> dict[str, pd.Series]:
    """Per row: whether it is a table cell, its contamination level, its trim ratio and its
    label in the tables."""
    by_id = {t.task_id: t for t in tasks}
    ids = frame["task_id"]
    return {
        "in_table": ids.map(lambda i: by_id[i].level == TRAIN_CONTAMINATION and not by_id[i].overrides),
        "level": ids.map(lambda i: by_id[i].level),
        "trim": ids.map(lambda i: by_id[i].trim_ratio),
        "label": ids.map(lambda i: _label(by_id[i].dataset, by_id[i].normal_class, by_id[i].own_anomalies)),
    }


def _label(dataset: str, k: Any, own_anomalies: bool = False) -> str:
    """How the tables name normal class ``k`` of ``dataset``."""
    own = _ONE_CLASS_NAME.match(dataset) if own_anomalies else None
    if own is not None and str(k) == "0":  # a one-class file on its own: class 0 is its normal rows
        file_class = int(own["k"])
        if own["prefix"].upper() == "CIFAR10" and file_class < len(CIFAR10_CLASSES):
            return f"{dataset} / normal rows ({CIFAR10_CLASSES[file_class]})"
        return f"{dataset} / normal rows"
    if dataset.upper().startswith("CIFAR10") and str(k).isdigit() and int(k) < len(CIFAR10_CLASSES):
        return f"{dataset} / {k} {CIFAR10_CLASSES[int(k)]}"
    return f"{dataset} / class {k}"


def _class_text(value: Any) -> str:
    """A class label read back from the CSV (``4.0`` -> ``"4"``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _trim_frame(frame: pd.DataFrame, trims: Sequence[float]) -> pd.DataFrame:
    sub = frame[(frame["method"] == TRIM_METHOD) & (frame["mode"] == "u") & (frame["level"] == TRAIN_CONTAMINATION)]
    sub = sub[sub["trim"].isin(list(trims))]
    return sub.assign(factor=sub["trim"].astype(float), dataset=sub["label"])


def _contamination_frame(frame: pd.DataFrame, levels: Sequence[float], methods: Sequence[str]) -> pd.DataFrame:
    sub = frame[(frame["mode"] == "u") & frame["method"].isin(list(methods)) & frame["level"].isin(list(levels))]
    # a plain trimmed flow's row belongs to the study when it trims the true level (the others are
    # the trim-ratio study's); a variant's rows all do (its own arguments may fix the trim ratio)
    trimmed = sub["method"].map(base_name).isin(TRIMMED_METHODS) & ~sub["method"].str.contains("[", regex=False)
    sub = sub[~trimmed | (sub["trim"].astype(float) == sub["level"].astype(float))]
    return sub.assign(factor=sub["level"].astype(float), dataset=sub["label"])


def _study_table(sub: pd.DataFrame, values: Sequence[float], methods: Sequence[str], factor: str) -> list[str]:
    """Rows = class × method plus a mean per method; columns = factor values (mean ± std over seeds)."""
    if sub.empty:
        return ["No results yet.", ""]
    stats = sub.groupby(["dataset", "method", "factor"])["auc"].agg(["mean", "std", "size"])
    rows: dict[str, list[str]] = {}
    for m in methods:
        for d in dict.fromkeys(sub["dataset"]):
            if (d, m) in stats.droplevel(2).index:
                g = stats.loc[(d, m)]
                rows[f"{d} / {m}"] = [
                    format_mean_std(g["mean"].get(v, np.nan), 0.0 if np.isnan(g["std"].get(v, 0.0)) else g["std"].get(v, 0.0))
                    for v in values
                ]
    per = sub.groupby(["method", "factor", "dataset"])["auc"].mean()
    for m in methods:
        if m in per.index.get_level_values(0):
            means = per.loc[m].groupby(level=0).mean()
            rows[f"**mean over classes / {m}**"] = [f"{means.get(v, np.nan):.3f}" for v in values]
    seeds = sub.groupby(["dataset", "method", "factor"])["seed"].nunique()
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[f"{factor} = {v:g}" for v in values])
    return [frame_to_markdown(table, "normal class / method"), "",
            f"Seeds per cell: {int(seeds.min())}–{int(seeds.max())}.", ""]


def embeddings_markdown(
    frame: pd.DataFrame,
    methods: list[str],
    *,
    command: str = "",
    notes: list[str] | None = None,
    trim_ratios: Sequence[float] = (),
    contaminations: Sequence[float] = (),
    sensitivity_methods: Sequence[str] = (),
    pca_dim: int = PCA_DIM,
    pca_fit: str = "all",
) -> str:
    """The table (rows = method × mode, columns = normal classes) and, if run, the two studies.

    ``frame`` holds the run's rows with the columns :func:`_task_columns` adds (``label`` names
    each row's normal class in the tables)."""
    parts = markdown_head(f"Image-embedding protocol (one class normal, PCA {pca_dim} fitted on {_PCA_FIT_TEXT[pca_fit]}, balanced test)", command)
    parts += [
        "## Table: training contamination 0.1",
        "",
        "Mode -u: training anomalies uniform over the other classes; -c: all from one other class "
        "(a seeded draw per seed and normal class). Test ROC AUC, mean ± std over seeds.",
        "",
    ]
    table = frame[frame["in_table"]] if not frame.empty else frame
    if table.empty:
        parts += ["No results yet.", ""]
    else:
        stats = table.groupby(["method", "mode", "label"])["auc"].agg(["mean", "std"])
        labels = list(dict.fromkeys(table["label"]))
        modes = [m for m in MODES if m in set(table["mode"])]
        setting_means = table.groupby(["method", "mode", "label"])["auc"].mean()
        rows = {}
        for m in methods:
            for mode in modes:
                if (m, mode) not in stats.droplevel(2).index:
                    continue
                cells = [
                    format_mean_std(stats["mean"].get((m, mode, lab), np.nan),
                                    np.nan_to_num(stats["std"].get((m, mode, lab), 0.0)))
                    for lab in labels
                ]
                rows[f"{m} -{mode}"] = [*cells, f"{setting_means.loc[(m, mode)].mean():.3f}"]
        parts += [frame_to_markdown(pd.DataFrame.from_dict(rows, orient="index", columns=[*labels, "mean"]),
                                    "method / mode"), ""]
        # Average over every (class, mode) setting, and settings where each method beats the others.
        wide = setting_means.unstack(0)
        overall = {}
        for m in methods:
            if m not in wide:
                continue
            row = [f"{wide[m].mean():.3f}"]
            for mode in modes:
                row.append(f"{wide[m].xs(mode, level=0).mean():.3f}" if mode in wide.index.get_level_values(0) else "–")
            if TRIM_METHOD in methods and TRIM_METHOD in wide and m != TRIM_METHOD:
                both = wide[[TRIM_METHOD, m]].dropna()
                row.append(f"{int((both[TRIM_METHOD] > both[m]).sum())}/{len(both)}")
            else:
                row.append("")
            overall[m] = row
        cols = ["mean over settings", *(f"mean -{mode}" for mode in modes), f"settings {TRIM_METHOD} wins"]
        parts += ["### Means over the settings (normal class × mode)", "",
                  frame_to_markdown(pd.DataFrame.from_dict(overall, orient="index", columns=cols), "method"), ""]
        c_rows = table[(table["mode"] == "c")].drop_duplicates(["label", "seed"])
        if not c_rows.empty:
            drawn = c_rows.sort_values("seed").groupby("label")["anomaly_class"].apply(
                lambda s: ", ".join(_class_text(v) for v in s)
            )
            parts += ["-c anomaly class by seed (0, 1, …): " + "; ".join(f"{k}: {v}" for k, v in drawn.items()) + ".", ""]
        n_seeds = table.groupby(["method", "mode", "label"])["seed"].nunique()
        parts += [f"Seeds per cell: {int(n_seeds.min())}–{int(n_seeds.max())}.", ""]
    if trim_ratios:
        parts += ["## Trim-ratio sensitivity (RobustRealNVP, true contamination 0.1, mode -u)", "",
                  "The trim ratio 0.1 column is the table's RobustRealNVP -u run (its default trims the "
                  "contamination, 0.1).", ""]
        parts += _study_table(_trim_frame(frame, trim_ratios) if not frame.empty else frame, trim_ratios,
                              [TRIM_METHOD], "trim")
    if contaminations:
        parts += ["## Contamination sensitivity (mode -u, trimmed flows trim the true level)", "",
                  "Each level keeps the training set's size at 0.1 and holds fewer normal rows; no anomaly "
                  "row is repeated. The test set of a seed and class is the same at every level. The 0.1 column "
                  "is the table's -u run.", ""]
        parts += _study_table(
            _contamination_frame(frame, contaminations, sensitivity_methods) if not frame.empty else frame,
            contaminations, sensitivity_methods, "c")
    if notes:
        parts += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(parts)


def plot_study(frame: pd.DataFrame, path: str | os.PathLike[str], *, factor: str, methods: list[str],
               title: str) -> None:
    """AUC against a study's factor: mean over normal classes per method, thin lines per class."""
    if frame.empty:
        return
    from flowad_bench.sensitivity import plot_sensitivity

    plot_sensitivity(frame, path, factor=factor, methods=methods, title=title)


def plot_embeddings(frame: pd.DataFrame, path: str | os.PathLike[str], methods: list[str]) -> None:
    """Bar chart of mean AUC (over files, classes and seeds) per method and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = (
        frame.groupby(["method", "mode", "dataset", "normal_class"])["auc"]
        .mean()
        .groupby(level=[0, 1])
        .agg(["mean", "std"])
    )
    modes = [m for m in MODES if m in set(frame["mode"])]
    fig, ax = plt.subplots(figsize=(1.2 * len(methods) + 3, 4))
    x = np.arange(len(methods))
    width = 0.8 / max(1, len(modes))
    for j, mode in enumerate(modes):
        means = [per["mean"].get((m, mode), np.nan) for m in methods]
        stds = [per["std"].get((m, mode), 0.0) for m in methods]
        ax.bar(x - 0.4 + width * (j + 0.5), means, width, yerr=np.nan_to_num(stds), capsize=2, label=f"-{mode}")
    ax.set_xticks(x)
    ax.set_xticklabels(methods, rotation=30, ha="right")
    ax.set_ylabel("test ROC AUC (mean over normal classes)")
    ax.set_ylim(0.0, 1.0)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.legend()
    fig.tight_layout()
    fig.savefig(Path(path), dpi=120)
    plt.close(fig)
