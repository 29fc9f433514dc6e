"""The ODDS benchmark: every method × dataset × seed under the study's protocol.

The same runner serves the 26-dataset development set (several data folders in one run and
one table, e.g. ``odds`` and ``adbench_dev``), its options:

* ``max_rows`` – a dataset with more rows is first subsampled to that many, stratified, with a
  fixed seed independent of the protocol seed (:func:`flowad_bench.protocol.subsample_rows`);
  the task id and ``setting`` then carry ``max_rows=N``; ``n_rows_used`` records the rows used;
* ``train_rows`` – the small-data track: after the 60/40 split the training split is
  subsampled to that many rows, stratified, seeded by the protocol seed, keeping at least 5
  anomalies when the split has them (:func:`flowad_bench.protocol.subsample_train`); the test
  split is unchanged; the task id and ``setting`` carry ``train_rows=N``;
* ``variants`` – flowad (or PyOD) methods with constructor overrides, each its own row label
  ``Name[key=value,...]`` (:func:`flowad_bench.methods.parse_variant`);
* ``reuse`` – result CSVs whose rows of this run's tasks are copied into ``results.csv``
  instead of being run again (e.g. the baselines of a committed run beside new variants).

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
from flowad_bench.datasets import Dataset, SkippedFile, load_dataset, load_folders
from flowad_bench.methods import count_parameters, get_method, parse_methods, parse_variant, quiet_and_isolated
from flowad_bench.protocol import (
    evaluate,
    resample_contamination,
    stratified_split,
    subsample_contamination,
    subsample_rows,
    subsample_train,
)
from flowad_bench.record import output_folder
from flowad_bench.runner import RunSummary, read_rows, run_tasks

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
    "source",
    "method",
    "seed",
    "setting",
    *METRIC_FIELDS,
    "n_train",
    "n_test",
    "n_features",
    "n_rows_used",
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
        If set, the training split is brought to exactly this anomaly fraction: by resampling
        its anomalies (with replacement when too few), or — with ``contamination_range`` — by
        subsampling distinct rows to a size shared by every level of the range.
    contamination_range : (low, high) or None
        The fair design of the contamination study
        (:func:`flowad_bench.protocol.subsample_contamination`).
    overrides : tuple of (name, value)
        Constructor arguments replacing the method's defaults (e.g. ``trim_ratio``).
    experiment : str
        Name written in the ``experiment`` column.
    setting : str
        Label of the experiment's setting (part of the task id), e.g. ``"trim=0.05"``.
    source : str
        Folder the dataset came from (written in the ``source`` column; not in the task id).
    max_rows : int or None
        Cap on the dataset's rows (stratified subsample, fixed seed) before the split.
    train_rows : int or None
        Rows of the training split after subsampling (the small-data track).
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
    source: str = ""
    max_rows: int | None = None
    train_rows: int | None = None
    contamination_range: tuple[float, float] | None = None

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


@functools.lru_cache(maxsize=4)
def _capped_dataset(path: str, max_rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    ds = _cached_dataset(path)
    if max_rows is None or ds.X.shape[0] <= max_rows:
        return ds.X, ds.y
    rows = subsample_rows(ds.y, max_rows)
    return ds.X[rows], ds.y[rows]


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
    flowad's detectors standardize internally. A method that cannot be fitted on this shape
    raises :class:`~flowad_bench.methods.MethodError` (:meth:`Method.refuse`); arguments a method
    takes from the training data (:attr:`Method.data_kwargs`, e.g. PCA's rank) are set before
    the timed fit.

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
    method.refuse(X_train.shape[0], X_train.shape[1])
    if method.standardize:
        X_train, X_test = standardize(X_train, X_test)
    kwargs = {**(method.data_kwargs(X_train) if method.data_kwargs is not None else {}), **dict(overrides)}
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
    X, y = _capped_dataset(task.path, task.max_rows)
    train_idx, test_idx = stratified_split(y, task.seed)
    if task.train_rows is not None:
        train_idx = subsample_train(y, train_idx, task.train_rows, task.seed)
    if task.train_contamination is not None and task.contamination_range is not None:
        low, high = task.contamination_range
        train_idx = subsample_contamination(y, train_idx, task.train_contamination, task.seed, low, high)
    elif task.train_contamination is not None:
        train_idx = resample_contamination(y, train_idx, task.train_contamination, task.seed)
    train_contamination = float(y[train_idx].mean())
    result = fit_and_score(
        task.method,
        task.seed,
        X[train_idx],
        X[test_idx],
        y[test_idx],
        quick=task.quick,
        overrides=task.overrides,
        contamination=task.contamination,
        train_contamination=train_contamination,
    )
    return {
        "experiment": task.experiment,
        "dataset": task.dataset,
        "source": task.source,
        "method": task.method,
        "seed": task.seed,
        "setting": task.setting,
        **result,
        "n_train": int(train_idx.size),
        "n_test": int(test_idx.size),
        "n_features": int(X.shape[1]),
        "n_rows_used": int(y.shape[0]),
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
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    datasets: Sequence[str] | None,
    quick: bool,
    seeds: int,
) -> tuple[list[Dataset], list[SkippedFile], list[int]]:
    """The datasets of a run (:func:`select_datasets`), the unusable files, and the seeds.

    ``data`` is one folder or several (:func:`flowad_bench.datasets.load_folders`; each
    dataset's ``source`` is its folder's name). ``quick`` runs use seed 0 only; otherwise seeds
    ``0 .. seeds-1``.

    Raises
    ------
    InputError
        If ``seeds`` < 1, a folder does not exist, a requested dataset has no file, or two
        folders hold datasets of the same name.
    """
    found, skipped = load_folders(data, datasets)
    n_seeds = 1 if quick else int(seeds)
    if n_seeds < 1:
        raise InputError(f"seeds must be >= 1, got {seeds}.")
    return select_datasets(found, quick), skipped, list(range(n_seeds))


def task_setting(n_rows: int, max_rows: int | None = None, train_rows: int | None = None) -> str:
    """The ``setting`` of a dataset's tasks: ``max_rows=N`` if the dataset (``n_rows``) is capped,
    ``train_rows=N`` on the small-data track, joined by ``,``; '' when neither applies (so the
    task ids of uncapped full-track runs are those of the plain ODDS benchmark)."""
    parts = []
    if max_rows is not None and n_rows > max_rows:
        parts.append(f"max_rows={int(max_rows)}")
    if train_rows is not None:
        parts.append(f"train_rows={int(train_rows)}")
    return ",".join(parts)


def check_unique_labels(labels: Sequence[str]) -> None:
    """Refuse a run whose methods and variants share a row label (their rows would collide)."""
    repeated = sorted({x for x in labels if list(labels).count(x) > 1})
    if repeated:
        raise InputError(f"a method or variant is given twice: {repeated}.")


def make_tasks(
    datasets: Sequence[Dataset],
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    quick: bool = False,
    contamination: str = "default",
    variants: Sequence[tuple[str, str, tuple[tuple[str, Any], ...]]] = (),
    max_rows: int | None = None,
    train_rows: int | None = None,
) -> list[OddsTask]:
    """Tasks in dataset-major order (dataset, then method — ``methods`` then ``variants`` — then seed).

    ``variants`` are :func:`flowad_bench.methods.parse_variant` triples (label, method,
    overrides); the label is the task's method. ``max_rows`` and ``train_rows``: see the module.
    """
    if contamination not in CONTAMINATION_MODES:
        raise InputError(f"contamination must be one of {CONTAMINATION_MODES}, got {contamination!r}.")
    if max_rows is not None:
        subsample_rows(np.array([0, 1]), max_rows)  # validates the cap
    if train_rows is not None:
        subsample_train(np.array([0, 1]), np.array([0]), train_rows, 0)  # validates the size
    runs: list[tuple[str, tuple[tuple[str, Any], ...]]] = [(m, ()) for m in methods]
    runs += [(label, overrides) for label, _, overrides in variants]
    check_unique_labels([label for label, _ in runs])
    return [
        OddsTask(
            dataset=d.name,
            path=d.path,
            method=label,
            seed=int(s),
            quick=quick,
            contamination=contamination,
            overrides=overrides,
            setting=task_setting(d.X.shape[0], max_rows, train_rows),
            source=d.source,
            max_rows=max_rows,
            train_rows=train_rows,
        )
        for d in datasets
        for label, overrides in runs
        for s in seeds
    ]


def reuse_rows(
    tasks: Sequence[Any], sources: Sequence[str | os.PathLike[str]], csv_path: str | os.PathLike[str], fields: Sequence[str]
) -> int:
    """Copy into ``csv_path`` the rows of ``sources`` (result CSVs) whose ``task_id`` is one of
    ``tasks`` and not yet in ``csv_path``; return how many were copied.

    The copied rows keep every recorded column (versions and commit included), so the folder
    stays self-contained; the runner then skips those tasks. A row from a CSV written before the
    ``source`` column existed gets its task's ``source`` (the data folder, which the task id
    does not hold); nothing measured is filled in.

    Raises
    ------
    InputError
        If a source file does not exist.
    """
    import csv

    wanted = {t.task_id: t for t in tasks}
    path = Path(csv_path)
    have = {r["task_id"] for r in read_rows(path) if r.get("task_id")}
    rows: list[dict[str, str]] = []
    for src in sources:
        if not Path(src).is_file():
            raise InputError(f"--reuse file {str(src)!r} does not exist; give a results.csv of an earlier run.")
        for r in read_rows(src):
            tid = r.get("task_id", "")
            if tid in wanted and tid not in have:
                have.add(tid)
                source = getattr(wanted[tid], "source", "")
                rows.append(r if r.get("source") or not source else {**r, "source": source})
    if not rows:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not (path.exists() and path.stat().st_size > 0)
    if new:
        header = [*fields, "task_id"]
    else:
        with path.open(newline="") as fh:
            header = next(csv.reader(fh))
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore", restval="")
        if new:
            writer.writeheader()
        writer.writerows(rows)
    return len(rows)


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
    reuse: Sequence[str | os.PathLike[str]] = (),
) -> tuple[BenchRun, pd.DataFrame]:
    """Run ``tasks`` into ``out/results.csv`` (resuming) and load the rows of these tasks.

    Returns the :class:`BenchRun` (``table`` and ``plot`` are file names in ``out``) and the
    rows of ``results.csv`` whose ``task_id`` is one of ``tasks`` (empty when there are none).
    Rows of ``reuse`` CSVs for these tasks are copied in first (:func:`reuse_rows`).
    """
    from flowad_bench.report import load_results

    folder = output_folder(out)
    csv_path = folder / "results.csv"
    if reuse:
        reuse_rows(tasks, reuse, csv_path, fields)
    summary = run_tasks(tasks, fn, csv_path, jobs=jobs, fields=fields, progress=progress, desc=desc)
    run = BenchRun(summary, skipped, csv_path, folder / table, folder / plot)
    if not csv_path.exists():
        return run, pd.DataFrame()
    frame = load_results(csv_path)
    return run, frame[frame["task_id"].isin({t.task_id for t in tasks})]


def load_only(
    tasks: Sequence[Any], out: str | os.PathLike[str], *, skipped: list[SkippedFile], table: str, plot: str
) -> tuple[BenchRun, pd.DataFrame]:
    """A :class:`BenchRun` that ran nothing, and the rows of ``tasks`` already in ``out/results.csv``
    (for a report of a partial run: the missing rows are then listed as PARTIAL by :func:`run_notes`)."""
    from flowad_bench.report import load_results

    folder = output_folder(out)
    csv_path = folder / "results.csv"
    frame = load_results(csv_path) if csv_path.exists() else pd.DataFrame()
    if not frame.empty:
        frame = frame[frame["task_id"].isin({t.task_id for t in tasks})]
    return BenchRun(RunSummary(len(tasks), len(frame), 0, []), skipped, csv_path, folder / table, folder / plot), frame


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
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    methods: str | Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    seeds: int = 5,
    jobs: int = 1,
    quick: bool = False,
    contamination: str = "default",
    variants: Sequence[str] = (),
    max_rows: int | None = None,
    train_rows: int | None = None,
    reuse: Sequence[str | os.PathLike[str]] = (),
    report_only: bool = False,
    progress: bool = True,
    command: str = "",
) -> BenchRun:
    """Run the ODDS benchmark on the dataset files of ``data``; write results, table and plot.

    Parameters
    ----------
    data : path-like or sequence of path-like
        Folder(s) of ``.npz`` / ``.mat`` / ``.csv`` datasets; several folders make one run and
        one table (dataset names must differ). Unusable files are skipped and listed.
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
    variants : sequence of str
        ``NAME:key=value,...`` specs (:func:`flowad_bench.methods.parse_variant`), each run as
        its own method labelled ``NAME[key=value,...]``.
    max_rows : int, optional
        Cap on each dataset's rows (stratified subsample with a fixed seed, before the split).
    train_rows : int, optional
        Small-data track: training split subsampled to this many rows (>= 5 anomalies kept
        when the split has them; test split unchanged).
    reuse : sequence of path-like
        Result CSVs whose rows of this run's tasks are copied instead of re-run.
    report_only : bool, default=False
        Run no task: write the table and plot from the rows of these tasks in ``out/results.csv``
        (after copying those of ``reuse``; a partial run's report: missing rows are listed as
        PARTIAL).
    progress : bool, default=True
    command : str
        Command line written into the table.

    Returns
    -------
    BenchRun
    """
    names = parse_methods(methods)
    parsed = [parse_variant(v) for v in variants]
    if not names and not parsed:
        raise InputError("no method to run: give --methods and/or --variant.")
    chosen, skipped, seed_list = prepare_datasets(data, datasets, quick, seeds)
    tasks = make_tasks(
        chosen, names, seed_list, quick=quick, contamination=contamination, variants=parsed,
        max_rows=max_rows, train_rows=train_rows,
    )
    if report_only:
        if reuse:
            reuse_rows(tasks, reuse, output_folder(out) / "results.csv", RESULT_FIELDS)
        run, frame = load_only(tasks, out, skipped=skipped, table="table.md", plot="auc.png")
    else:
        run, frame = run_and_load(
            tasks, run_task, out, fields=RESULT_FIELDS, skipped=skipped, table="table.md", plot="auc.png",
            jobs=jobs, progress=progress, desc="odds", reuse=reuse,
        )
    track = []
    if max_rows is not None:
        track.append(f"datasets over {max_rows} rows subsampled to {max_rows} (stratified, fixed seed)")
    if train_rows is not None:
        track.append(f"small-data track: training splits subsampled to {train_rows} rows (>= 5 anomalies kept when present)")
    write_odds_report(
        run, frame, len(tasks), methods=[*names, *(p[0] for p in parsed)], command=command, quick=quick,
        contamination=contamination, track=track,
    )
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
    track: Sequence[str] = (),
) -> None:
    """Write ``table.md`` and ``auc.png`` from ``frame``, the rows of this run's ``n_tasks`` tasks.

    ``track`` lines (row caps, the small-data track) are added to the notes."""
    from flowad_bench.report import odds_markdown, plot_odds

    quick_note = "QUICK mode: one seed, the three smallest datasets, reduced epochs — a smoke test, not the study's table."
    notes = run_notes(run, n_tasks, len(frame), quick_note if quick else None)
    notes += list(track)
    if contamination == "oracle":
        notes.append("contamination=oracle: each detector was told the training split's true anomaly fraction.")
    if frame.empty:
        run.table_md.write_text("# ODDS benchmark\n\nNo results yet.\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
        return
    sources = sorted(set(frame["source"].dropna().astype(str)) - {""}) if "source" in frame else []
    title = ("Benchmark on " + " + ".join(sources) if len(sources) > 1 else "ODDS benchmark") + (" (quick)" if quick else "")
    run.table_md.write_text(odds_markdown(frame, methods=methods, title=title, command=command, notes=notes))
    plot_odds(frame, run.plot_png, methods=methods, title=title)
