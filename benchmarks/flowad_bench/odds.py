"""The ODDS benchmark: every method × dataset × seed under the study's protocol.

:func:`run_odds` writes, to an output folder:

* ``results.csv`` – one row per dataset × method × seed (AUC, AP, fit and score seconds,
  number of parameters, sizes, hyper-parameters, versions); appended as rows finish, so a
  rerun resumes; ``results_failures.csv`` lists the tasks that raised in the latest call;
* ``table.md`` – mean ± std over seeds, mean AUC, average rank, and the study's published AUCs
  beside ours (labelled as published);
* ``auc.png`` – the dot plot.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowad.exceptions import InputError
from flowad.preprocessing import standardize
from flowad_bench.datasets import Dataset, SkippedFile, load_dataset, load_folder
from flowad_bench.methods import count_parameters, get_method, parse_methods, quiet_and_isolated
from flowad_bench.protocol import evaluate, resample_contamination, stratified_split
from flowad_bench.record import output_folder
from flowad_bench.runner import RunSummary, run_tasks

__all__ = [
    "OddsTask",
    "BenchRun",
    "METRIC_FIELDS",
    "RESULT_FIELDS",
    "QUICK_N_DATASETS",
    "run_task",
    "make_tasks",
    "select_datasets",
    "prepare_datasets",
    "run_and_load",
    "run_notes",
    "run_odds",
    "write_odds_report",
]

#: Columns of every result row that :func:`fit_and_score` measures, in order.
METRIC_FIELDS = ("auc", "ap", "fit_seconds", "score_seconds", "n_params")
#: Columns of ``results.csv``, in order (``task_id`` is appended by the runner).
RESULT_FIELDS = (
    "experiment",
    "dataset",
    "method",
    "seed",
    "setting",
    *METRIC_FIELDS,
    "n_train",
    "n_test",
    "n_features",
    "train_contamination",
    "quick",
    "params",
    "versions",
)
#: Datasets of ``--quick`` runs: the smallest ones (by rows × features).
QUICK_N_DATASETS = 3
#: Contamination modes: ``default`` leaves every detector at its default; ``oracle`` tells each
#: detector the training split's true anomaly fraction (uses training labels; labelled so).
CONTAMINATION_MODES = ("default", "oracle")


@dataclass(frozen=True)
class OddsTask:
    """One fit-and-score: a dataset file, a method, a seed, and optional experiment settings.

    Attributes
    ----------
    dataset, path : str
        Dataset name and file (read in the worker).
    method : str
    seed : int
        Seed of the split and of the detector.
    quick : bool
        Fewer epochs for the trained detectors.
    contamination : {"default", "oracle"}
    train_contamination : float or None
        If set, the training split is resampled to exactly this anomaly fraction.
    overrides : tuple of (name, value)
        Constructor arguments replacing the method's defaults (e.g. ``trim_ratio``).
    experiment : str
        Name written in the ``experiment`` column.
    setting : str
        Label of the experiment's setting (part of the task id), e.g. ``"trim=0.05"``.
    """

    dataset: str
    path: str
    method: str
    seed: int
    quick: bool = False
    contamination: str = "default"
    train_contamination: float | None = None
    overrides: tuple[tuple[str, Any], ...] = field(default=())
    experiment: str = "odds"
    setting: str = ""

    @property
    def task_id(self) -> str:
        """``dataset|method|seed`` plus ``|setting`` and ``|quick`` when they apply."""
        parts = [self.dataset, self.method, str(self.seed)]
        if self.setting:
            parts.append(self.setting)
        if self.contamination != "default":
            parts.append(f"contamination={self.contamination}")
        if self.quick:
            parts.append("quick")
        return "|".join(parts)


@functools.lru_cache(maxsize=8)
def _cached_dataset(path: str) -> Dataset:
    return load_dataset(path)


@functools.lru_cache(maxsize=1)
def _git_state() -> dict[str, Any]:
    """Commit of the flowad checkout and whether its ``flowad/`` folder has uncommitted edits."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "flowad"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if commit.returncode != 0:
        return {}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}


@functools.lru_cache(maxsize=1)
def _versions() -> str:
    import sklearn
    import torch

    import flowad

    out = {"flowad": flowad.__version__, "torch": torch.__version__, "sklearn": sklearn.__version__, **_git_state()}
    try:
        import pyod

        out["pyod"] = pyod.__version__
    except ImportError:
        pass
    return json.dumps(out, sort_keys=True)


def _json_params(estimator: Any) -> str:
    try:
        params = estimator.get_params(deep=False)
    except (AttributeError, TypeError):
        return ""
    return json.dumps(params, sort_keys=True, default=str)


def fit_and_score(
    method_name: str,
    seed: int,
    X_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    quick: bool = False,
    overrides: tuple[tuple[str, Any], ...] = (),
    contamination: str = "default",
    train_contamination: float | None = None,
) -> dict[str, Any]:
    """Fit a method on ``X_train`` (no labels), score ``X_test``, and return the metrics.

    Features are standardized with training statistics for the methods that need it (PyOD's);
    flowad's detectors standardize internally.

    Parameters
    ----------
    method_name : str
    seed : int
        The detector's seed.
    X_train : ndarray of shape (n_train, n_features)
    X_test : ndarray of shape (n_test, n_features)
    y_test : ndarray of shape (n_test,)
        0/1 labels, used only for the metrics.
    quick : bool, default=False
    overrides : tuple of (name, value)
        Constructor arguments.
    contamination : {"default", "oracle"}
        ``oracle`` passes ``train_contamination`` as the detector's contamination.
    train_contamination : float, optional

    Returns
    -------
    dict
        ``auc``, ``ap``, ``fit_seconds``, ``score_seconds``, ``n_params``, ``params`` (JSON).
    """
    method = get_method(method_name)
    if method.standardize:
        X_train, X_test = standardize(X_train, X_test)
    kwargs = dict(overrides)
    if contamination == "oracle":
        if train_contamination is None:
            raise InputError("contamination='oracle' needs train_contamination.")
        kwargs.setdefault("contamination", float(min(0.5, max(train_contamination, 1e-3))))
    with quiet_and_isolated(seed):
        estimator = method.build(X_train.shape[1], seed, quick=quick, **kwargs)
        t0 = time.perf_counter()
        estimator.fit(X_train)
        t1 = time.perf_counter()
        scores = estimator.decision_function(X_test)
        t2 = time.perf_counter()
    auc, ap = evaluate(y_test, scores)
    return {
        "auc": auc,
        "ap": ap,
        "fit_seconds": t1 - t0,
        "score_seconds": t2 - t1,
        "n_params": count_parameters(estimator),
        "params": _json_params(estimator),
    }


def run_task(task: OddsTask) -> dict[str, Any]:
    """Run one :class:`OddsTask` under the protocol and return its result row."""
    ds = _cached_dataset(task.path)
    train_idx, test_idx = stratified_split(ds.y, task.seed)
    if task.train_contamination is not None:
        train_idx = resample_contamination(ds.y, train_idx, task.train_contamination, task.seed)
    train_contamination = float(ds.y[train_idx].mean())
    result = fit_and_score(
        task.method,
        task.seed,
        ds.X[train_idx],
        ds.X[test_idx],
        ds.y[test_idx],
        quick=task.quick,
        overrides=task.overrides,
        contamination=task.contamination,
        train_contamination=train_contamination,
    )
    return {
        "experiment": task.experiment,
        "dataset": task.dataset,
        "method": task.method,
        "seed": task.seed,
        "setting": task.setting,
        **result,
        "n_train": int(train_idx.size),
        "n_test": int(test_idx.size),
        "n_features": int(ds.X.shape[1]),
        "train_contamination": train_contamination,
        "quick": bool(task.quick),
        "versions": _versions(),
    }


def select_datasets(datasets: list[Dataset], quick: bool) -> list[Dataset]:
    """All datasets, or in ``quick`` mode the :data:`QUICK_N_DATASETS` smallest (rows × features)."""
    if not quick:
        return datasets
    return sorted(datasets, key=lambda d: (d.size, d.name))[:QUICK_N_DATASETS]


def prepare_datasets(
    data: str | os.PathLike[str], datasets: Sequence[str] | None, quick: bool, seeds: int
) -> tuple[list[Dataset], list[SkippedFile], list[int]]:
    """The datasets of a run (:func:`select_datasets`), the unusable files, and the seeds.

    ``quick`` runs use seed 0 only; otherwise seeds ``0 .. seeds-1``.

    Raises
    ------
    InputError
        If ``seeds`` < 1, the folder does not exist or a requested dataset has no file.
    """
    found, skipped = load_folder(data, datasets)
    n_seeds = 1 if quick else int(seeds)
    if n_seeds < 1:
        raise InputError(f"seeds must be >= 1, got {seeds}.")
    return select_datasets(found, quick), skipped, list(range(n_seeds))


def make_tasks(
    datasets: Sequence[Dataset],
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    quick: bool = False,
    contamination: str = "default",
) -> list[OddsTask]:
    """Tasks in dataset-major order (dataset, then method, then seed)."""
    if contamination not in CONTAMINATION_MODES:
        raise InputError(f"contamination must be one of {CONTAMINATION_MODES}, got {contamination!r}.")
    return [
        OddsTask(dataset=d.name, path=d.path, method=m, seed=int(s), quick=quick, contamination=contamination)
        for d in datasets
        for m in methods
        for s in seeds
    ]


@dataclass
class BenchRun:
    """What a benchmark runner (ODDS, the studies, the embeddings) did and wrote.

    Attributes
    ----------
    summary : RunSummary
    skipped : list of SkippedFile
        Dataset files that were not usable, with the reason.
    results_csv, table_md, plot_png : Path
    """

    summary: RunSummary
    skipped: list[SkippedFile]
    results_csv: Path
    table_md: Path
    plot_png: Path


def run_and_load(
    tasks: Sequence[Any],
    fn: Callable[[Any], dict[str, Any]],
    out: str | os.PathLike[str],
    *,
    fields: Sequence[str],
    skipped: list[SkippedFile],
    table: str,
    plot: str,
    jobs: int = 1,
    progress: bool = True,
    desc: str = "bench",
) -> tuple[BenchRun, pd.DataFrame]:
    """Run ``tasks`` into ``out/results.csv`` (resuming) and load the rows of these tasks.

    Returns the :class:`BenchRun` (``table`` and ``plot`` are file names in ``out``) and the
    rows of ``results.csv`` whose ``task_id`` is one of ``tasks`` (empty when there are none).
    """
    from flowad_bench.report import load_results

    folder = output_folder(out)
    csv_path = folder / "results.csv"
    summary = run_tasks(tasks, fn, csv_path, jobs=jobs, fields=fields, progress=progress, desc=desc)
    run = BenchRun(summary, skipped, csv_path, folder / table, folder / plot)
    if not csv_path.exists():
        return run, pd.DataFrame()
    frame = load_results(csv_path)
    return run, frame[frame["task_id"].isin({t.task_id for t in tasks})]


def run_notes(run: BenchRun, n_tasks: int, n_rows: int, quick_note: str | None = None) -> list[str]:
    """Notes of a report: skipped files, failed tasks, missing rows, and ``quick_note`` if given."""
    notes = [f"Skipped dataset file {s.name!r} ({s.path}): {s.reason}" for s in run.skipped]
    notes += [f"Task {tid} failed: {err}" for tid, err in run.summary.failures]
    if n_rows < n_tasks:
        notes.append(f"PARTIAL: {n_tasks - n_rows} of {n_tasks} runs have no result yet.")
    if quick_note:
        notes.append(quick_note)
    return notes


def run_odds(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    methods: str | Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    seeds: int = 5,
    jobs: int = 1,
    quick: bool = False,
    contamination: str = "default",
    progress: bool = True,
    command: str = "",
) -> BenchRun:
    """Run the ODDS benchmark on the dataset files of ``data``; write results, table and plot.

    Parameters
    ----------
    data : path-like
        Folder of ``.npz`` / ``.mat`` / ``.csv`` datasets. Unusable files are skipped and listed.
    out : path-like
        Output folder (created). An existing ``results.csv`` there is resumed.
    methods : str or list of str, optional
        Method names or groups (``all``, ``flowad``, ``pyod``); default all available.
    datasets : list of str, optional
        File stems to use (default: all).
    seeds : int, default=5
        Seeds ``0 .. seeds-1`` (``quick`` uses 1).
    jobs : int, default=1
        Worker processes (each with one torch thread).
    quick : bool, default=False
        One seed, the three smallest datasets, few epochs.
    contamination : {"default", "oracle"}, default="default"
    progress : bool, default=True
    command : str
        Command line written into the table.

    Returns
    -------
    BenchRun
    """
    names = parse_methods(methods)
    chosen, skipped, seed_list = prepare_datasets(data, datasets, quick, seeds)
    tasks = make_tasks(chosen, names, seed_list, quick=quick, contamination=contamination)
    run, frame = run_and_load(
        tasks, run_task, out, fields=RESULT_FIELDS, skipped=skipped, table="table.md", plot="auc.png",
        jobs=jobs, progress=progress, desc="odds",
    )
    write_odds_report(run, frame, len(tasks), methods=names, command=command, quick=quick, contamination=contamination)
    return run


def write_odds_report(
    run: BenchRun,
    frame: pd.DataFrame,
    n_tasks: int,
    *,
    methods: list[str],
    command: str = "",
    quick: bool = False,
    contamination: str = "default",
) -> None:
    """Write ``table.md`` and ``auc.png`` from ``frame``, the rows of this run's ``n_tasks`` tasks."""
    from flowad_bench.report import odds_markdown, plot_odds

    quick_note = "QUICK mode: one seed, the three smallest datasets, reduced epochs — a smoke test, not the study's table."
    notes = run_notes(run, n_tasks, len(frame), quick_note if quick else None)
    if contamination == "oracle":
        notes.append("contamination=oracle: each detector was told the training split's true anomaly fraction.")
    if frame.empty:
        run.table_md.write_text("# ODDS benchmark\n\nNo results yet.\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
        return
    title = "ODDS benchmark" + (" (quick)" if quick else "")
    run.table_md.write_text(odds_markdown(frame, methods=methods, title=title, command=command, notes=notes))
    plot_odds(frame, run.plot_png, methods=methods, title=title)
