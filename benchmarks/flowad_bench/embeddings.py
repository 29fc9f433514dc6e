"""The image-embedding experiment's protocol on a folder of embedding ``.npz`` files.

Each file holds ``X`` (n_samples, n_features) — e.g. image embeddings from a pretrained
network — and ``y`` (n_samples,) integer class labels. For every class ``k`` taken as the
normal class and every seed:

* 60 % of class ``k`` (shuffled) are the training normals, the other 40 % the test normals;
* training contamination 0.1: ``round(0.1 / 0.9 * n_train_normal)`` anomalies drawn either
  uniformly from all other classes (mode ``u``, "-u") or from one other class chosen at
  random per seed (mode ``c``, "-c");
* PCA to 128 dimensions fitted on the (unlabeled) training set only;
* balanced test set: as many anomalies as test normals, drawn uniformly from the other
  classes' rows that are not in the training set;
* test ROC AUC and AP.

Writes ``results.csv`` (resumable), ``table.md`` and ``embeddings.png``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowad.exceptions import InputError
from flowad_bench.datasets import DatasetError, SkippedFile, data_folder
from flowad_bench.methods import parse_methods
from flowad_bench.odds import METRIC_FIELDS, BenchRun, fit_and_score, run_and_load, run_notes
from flowad_bench.report import format_mean_std, frame_to_markdown

__all__ = [
    "EMBEDDING_FIELDS",
    "MODES",
    "EmbeddingTask",
    "load_embeddings",
    "embedding_split",
    "run_embedding_task",
    "run_embeddings",
]

#: Training contamination of the protocol.
TRAIN_CONTAMINATION = 0.1
#: Fraction of the normal class used for training.
TRAIN_FRACTION = 0.6
#: PCA dimension.
PCA_DIM = 128
#: ``u``: anomalies uniform over the other classes; ``c``: from a single other class.
MODES = ("u", "c")

EMBEDDING_FIELDS = (
    "experiment",
    "dataset",
    "normal_class",
    "mode",
    "anomaly_class",
    "method",
    "seed",
    *METRIC_FIELDS,
    "n_train",
    "n_test",
    "n_features",
    "pca_dim",
    "train_contamination",
    "quick",
    "params",
)


@dataclass(frozen=True)
class EmbeddingTask:
    """One fit-and-score of the embedding protocol (fields as in :class:`flowad_bench.odds.OddsTask`)."""

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

    @property
    def task_id(self) -> str:
        """``dataset|class=k|mode|method|seed`` (+ ``|quick``, ``|max_train=N``)."""
        parts = [self.dataset, f"class={self.normal_class}", self.mode, self.method, str(self.seed)]
        if self.max_train is not None:
            parts.append(f"max_train={self.max_train}")
        if self.pca_dim != PCA_DIM:
            parts.append(f"pca={self.pca_dim}")
        if self.quick:
            parts.append("quick")
        return "|".join(parts)


def load_embeddings(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read an embedding file: ``X`` (float, finite) and integer class labels ``y`` (>= 2 classes).

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


@functools.lru_cache(maxsize=4)
def _cached(path: str) -> tuple[np.ndarray, np.ndarray]:
    return load_embeddings(path)


def embedding_split(
    y: np.ndarray, normal_class: Any, mode: str, seed: int, *, max_train: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """Row indices of the protocol's training and balanced test sets.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Class labels.
    normal_class : label
    mode : {"u", "c"}
    seed : int
    max_train : int, optional
        Cap on the training normals (the test set keeps 40 % of the class).

    Returns
    -------
    train_idx : ndarray of int
        Training rows (normals and contaminating anomalies), no labels are given to detectors.
    test_idx : ndarray of int
    y_test : ndarray of int
        1 = anomaly (another class), 0 = normal.
    anomaly_class : label or None
        The single contaminating class in mode ``c``; None in mode ``u``.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}.")
    y = np.asarray(y)
    classes = np.unique(y)
    if normal_class not in classes:
        raise InputError(f"normal_class {normal_class!r} is not among the labels {classes.tolist()}.")
    rng = np.random.default_rng([int(seed), int(np.flatnonzero(classes == normal_class)[0]), MODES.index(mode)])
    normal = rng.permutation(np.flatnonzero(y == normal_class))
    n_train_normal = int(round(TRAIN_FRACTION * normal.size))
    train_normal, test_normal = normal[:n_train_normal], normal[n_train_normal:]
    if max_train is not None:
        train_normal = train_normal[:max_train]
    n_anom = int(round(TRAIN_CONTAMINATION / (1.0 - TRAIN_CONTAMINATION) * train_normal.size))
    others = classes[classes != normal_class]
    anomaly_class = None
    if mode == "u":
        pool = np.flatnonzero(y != normal_class)
    else:
        anomaly_class = others[rng.integers(others.size)]
        pool = np.flatnonzero(y == anomaly_class)
    if pool.size < n_anom:
        raise InputError(
            f"{pool.size} rows available for {n_anom} training anomalies (class {normal_class!r}, mode {mode!r})."
        )
    train_anom = rng.choice(pool, size=n_anom, replace=False)
    rest = np.setdiff1d(np.flatnonzero(y != normal_class), train_anom)
    n_test_anom = min(test_normal.size, rest.size)
    test_anom = rng.choice(rest, size=n_test_anom, replace=False)
    train_idx = np.sort(np.concatenate([train_normal, train_anom]))
    test_idx = np.concatenate([test_normal, test_anom])
    y_test = np.concatenate([np.zeros(test_normal.size, np.int64), np.ones(n_test_anom, np.int64)])
    return train_idx, test_idx, y_test, anomaly_class


def run_embedding_task(task: EmbeddingTask) -> dict[str, Any]:
    """Run one :class:`EmbeddingTask` and return its result row."""
    from sklearn.decomposition import PCA

    X, y = _cached(task.path)
    train_idx, test_idx, y_test, anomaly_class = embedding_split(
        y, task.normal_class, task.mode, task.seed, max_train=task.max_train
    )
    X_train, X_test = X[train_idx], X[test_idx]
    dim = int(min(task.pca_dim, X_train.shape[1], X_train.shape[0] - 1))
    pca = PCA(n_components=dim, random_state=task.seed).fit(X_train)
    X_train, X_test = pca.transform(X_train), pca.transform(X_test)
    train_contamination = float((y[train_idx] != task.normal_class).mean())
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
    return {
        "experiment": "embeddings",
        "dataset": task.dataset,
        "normal_class": task.normal_class,
        "mode": task.mode,
        "anomaly_class": "" if anomaly_class is None else np.asarray(anomaly_class).item(),
        "method": task.method,
        "seed": task.seed,
        **result,
        "n_train": int(train_idx.size),
        "n_test": int(test_idx.size),
        "n_features": int(X.shape[1]),
        "pca_dim": dim,
        "train_contamination": train_contamination,
        "quick": bool(task.quick),
    }


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
    jobs: int = 1,
    quick: bool = False,
    progress: bool = True,
    command: str = "",
) -> BenchRun:
    """Run the embedding protocol on every ``.npz`` file of ``data``.

    Parameters
    ----------
    data, out : path-like
        Folder of embedding files; output folder (resumed if it has ``results.csv``).
    methods : str or list of str
    modes : sequence of {"u", "c"}, default=("u", "c")
    classes : sequence of int, optional
        Normal classes to use (default: every class of each file).
    seeds : int, default=5
    max_train : int, optional
        Cap on training normals per task (for speed; stated in the task id).
    pca_dim : int, default=128
    jobs, quick, progress, command
        As in :func:`flowad_bench.odds.run_odds`; ``quick`` uses one seed, the first two
        classes and at most 500 training normals.

    Returns
    -------
    BenchRun
    """
    bad_modes = [m for m in modes if m not in MODES]
    if bad_modes or not modes:
        raise InputError(f"modes must be a non-empty subset of {MODES}, got {list(modes)}.")
    root = data_folder(data)
    names = parse_methods(methods)
    n_seeds = 1 if quick else int(seeds)
    if n_seeds < 1 or pca_dim < 1 or (max_train is not None and max_train < 2):
        raise InputError(f"seeds and pca_dim must be >= 1 and max_train >= 2, got {seeds}, {pca_dim}, {max_train}.")
    if quick and max_train is None:
        max_train = 500
    tasks: list[EmbeddingTask] = []
    skipped: list[SkippedFile] = []
    for p in sorted(root.glob("*.npz")):
        try:
            _, y = load_embeddings(p)
        except DatasetError as err:
            skipped.append(SkippedFile(p.stem, str(p), str(err)))
            continue
        labels = np.unique(y).tolist()
        chosen = [c for c in labels if classes is None or c in classes]
        if quick:
            chosen = chosen[:2]
        tasks += [
            EmbeddingTask(p.stem, str(p), c, mode, m, s, quick=quick, pca_dim=pca_dim, max_train=max_train)
            for c in chosen
            for mode in modes
            for m in names
            for s in range(n_seeds)
        ]
    run, frame = run_and_load(
        tasks, run_embedding_task, out, fields=EMBEDDING_FIELDS, skipped=skipped, table="table.md",
        plot="embeddings.png", jobs=jobs, progress=progress, desc="embeddings",
    )
    quick_note = "QUICK mode: one seed, two normal classes, at most 500 training normals, reduced epochs."
    notes = run_notes(run, len(tasks), len(frame), quick_note if quick else None)
    run.table_md.write_text(embeddings_markdown(frame, names, command=command, notes=notes))
    if not frame.empty:
        plot_embeddings(frame, run.plot_png, names)
    return run


def embeddings_markdown(
    frame: pd.DataFrame, methods: list[str], *, command: str = "", notes: list[str] | None = None
) -> str:
    """Table: rows = file / normal class, columns = method × mode (AUC mean ± std over seeds)."""
    parts = ["# Image-embedding protocol (one class normal, training contamination 0.1, PCA 128, balanced test)", ""]
    if command:
        parts += ["Command:", "", "```", command, "```", ""]
    parts += [
        "Mode -u: contamination uniform over the other classes; -c: from one other class. Test ROC AUC, mean ± std over seeds.",
        "",
    ]
    if frame.empty:
        parts += ["No results yet.", ""]
    else:
        stats = frame.groupby(["dataset", "normal_class", "method", "mode"])["auc"].agg(["mean", "std"]).fillna(0.0)
        keys = list(dict.fromkeys(zip(frame["dataset"], frame["normal_class"], strict=True)))
        modes = [m for m in MODES if m in set(frame["mode"])]
        cols = [(m, mode) for m in methods for mode in modes]
        rows = {}
        for d, c in keys:
            rows[f"{d} / class {c}"] = [
                format_mean_std(stats["mean"].get((d, c, m, mode), np.nan), stats["std"].get((d, c, m, mode), 0.0))
                for m, mode in cols
            ]
        per = frame.groupby(["method", "mode", "dataset", "normal_class"])["auc"].mean().groupby(level=[0, 1]).mean()
        rows["**mean**"] = [f"{per.get((m, mode), np.nan):.3f}" for m, mode in cols]
        table = pd.DataFrame.from_dict(rows, orient="index", columns=[f"{m} -{mode}" for m, mode in cols])
        parts += [frame_to_markdown(table, "file / normal class"), ""]
    if notes:
        parts += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(parts)


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
