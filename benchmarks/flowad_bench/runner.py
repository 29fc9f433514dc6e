"""Run benchmark tasks in worker processes, append one CSV row per finished task, resume.

A task is a small picklable object with a unique ``task_id``; a task function turns it into
a result row (a flat dict). Rows are appended to the CSV as soon as each task finishes, so an
interrupted run loses at most the tasks in flight; a rerun skips every ``task_id`` already in
the CSV. Tasks that raise are written to a separate failures CSV, which lists the failures of
the latest call only (a rerun retries them).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from flowad.exceptions import InputError

__all__ = ["TaskLike", "RunSummary", "run_tasks", "finished_ids", "read_rows", "torch_threads"]


class TaskLike(Protocol):
    """What :func:`run_tasks` needs from a task: a unique, stable id."""

    @property
    def task_id(self) -> str: ...


@dataclass(frozen=True)
class RunSummary:
    """What a call of :func:`run_tasks` did.

    Attributes
    ----------
    n_total : int
        Tasks asked for.
    n_skipped : int
        Tasks already in the CSV (resumed).
    n_done : int
        Tasks run and written in this call.
    failures : list of (task_id, error message)
    """

    n_total: int
    n_skipped: int
    n_done: int
    failures: list[tuple[str, str]]


def read_rows(csv_path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of a result CSV as dicts of strings ([] if the file does not exist)."""
    p = Path(csv_path)
    if not p.exists() or p.stat().st_size == 0:
        return []
    with p.open(newline="") as fh:
        return list(csv.DictReader(fh))


def finished_ids(csv_path: str | os.PathLike[str]) -> set[str]:
    """``task_id`` of every row already in ``csv_path``."""
    return {r["task_id"] for r in read_rows(csv_path) if r.get("task_id")}


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Limit torch's intra-op threads to ``n`` inside the block, restoring the count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _init_worker() -> None:
    # Workers share the machine: one thread each for torch and the BLAS libraries.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    torch.set_num_threads(1)


def _call(fn: Callable[[Any], dict[str, Any]], task: Any) -> tuple[str, dict[str, Any] | None, str | None]:
    try:
        return task.task_id, fn(task), None
    except Exception as err:  # reported per task; one failing task must not stop the run
        last = traceback.extract_tb(err.__traceback__)[-1]
        where = f" ({Path(last.filename).name}:{last.lineno})"
        return task.task_id, None, f"{type(err).__name__}: {err}{where}"


class _CsvAppender:
    """Append dict rows to a CSV, writing the header once; columns fixed by the first row or file."""

    def __init__(self, path: Path, fields: Sequence[str] | None = None) -> None:
        self.path = path
        self.fields: list[str] | None = list(fields) if fields else None
        if path.exists() and path.stat().st_size > 0:
            with path.open(newline="") as fh:
                self.fields = next(csv.reader(fh))

    def append(self, row: dict[str, Any]) -> None:
        new = not (self.path.exists() and self.path.stat().st_size > 0)
        if self.fields is None:
            self.fields = list(row)
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(row.get(k)) for k in self.fields})


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def run_tasks(
    tasks: Sequence[Any],
    fn: Callable[[Any], dict[str, Any]],
    csv_path: str | os.PathLike[str],
    *,
    jobs: int = 1,
    fields: Sequence[str] | None = None,
    progress: bool = True,
    desc: str = "bench",
) -> RunSummary:
    """Run every task whose id is not yet in ``csv_path``; append a row per finished task.

    Parameters
    ----------
    tasks : sequence of task objects
        Each has a unique ``task_id``; picklable when ``jobs > 1``.
    fn : callable
        Module-level function ``fn(task) -> dict`` (the row; ``task_id`` is added).
    csv_path : path-like
        Result CSV; created with a header if missing, appended to otherwise. Failures go to
        ``<stem>_failures.csv`` beside it.
    jobs : int, default=1
        Worker processes. 1 runs in this process (torch limited to 1 thread meanwhile).
    fields : sequence of str, optional
        Column order of a new CSV (default: the keys of the first row).
    progress : bool, default=True
        Show a tqdm progress bar on stderr.
    desc : str
        Label of the progress bar.

    Returns
    -------
    RunSummary
    """
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError(
            f"task ids must be unique; got duplicates such as {sorted({i for i in ids if ids.count(i) > 1})[:3]}."
        )
    if jobs < 1:
        raise InputError(f"jobs must be >= 1, got {jobs}.")
    path = Path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = finished_ids(path)
    todo = [t for t in tasks if t.task_id not in done]
    out = _CsvAppender(path, [*fields, "task_id"] if fields else None)
    fail_path = path.with_name(f"{path.stem}_failures.csv")
    fail_path.unlink(missing_ok=True)  # it lists this call's failures; earlier ones are retried
    fail_out = _CsvAppender(fail_path, ["task_id", "error"])
    failures: list[tuple[str, str]] = []
    n_done = 0
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=desc, disable=not progress, dynamic_ncols=True)

    def record(task_id: str, row: dict[str, Any] | None, error: str | None) -> None:
        nonlocal n_done
        if error is not None:
            failures.append((task_id, error))
            fail_out.append({"task_id": task_id, "error": error})
        else:
            assert row is not None
            out.append({**row, "task_id": task_id})
            n_done += 1
        bar.update(1)

    try:
        if jobs == 1 or len(todo) <= 1:
            with torch_threads(1):
                for task in todo:
                    bar.set_postfix_str(task.task_id, refresh=False)
                    record(*_call(fn, task))
        else:
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
                futures = [pool.submit(_call, fn, t) for t in todo]
                for fut in cf.as_completed(futures):
                    record(*fut.result())
    finally:
        bar.close()
    return RunSummary(n_total=len(tasks), n_skipped=len(tasks) - len(todo), n_done=n_done, failures=failures)
