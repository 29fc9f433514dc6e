"""Scoring partition by partition on Dask: a lazy DataFrame, or Parquet parts written by the workers."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from flowad.dask._data import Part, folder_parts, is_folder, read_part
from flowad.dask._frame import check_domain_options, score_frame
from flowad.dask._model import ModelBlob, model_blob, worker_detector
from flowad.exceptions import FlowadError, InputError

__all__ = ["ScoreOptions", "WriteReport", "score", "write_scores", "share_model"]

ON_BAD = ("stop", "skip")
#: File listing the partitions left out by ``on_bad="skip"`` (pyarrow and Dask skip names starting with "_").
BAD_FILE = "_bad_partitions.csv"


@dataclass(frozen=True)
class ScoreOptions:
    """How each partition is scored (see :func:`flowad.dask._frame.score_frame`)."""

    columns: tuple[str, ...] | None = None
    id_column: str | None = None
    domain: str | None = None
    domain_column: str | None = None

    def apply(self, det: Any, frame: pd.DataFrame) -> pd.DataFrame:
        return score_frame(
            det, frame, columns=None if self.columns is None else list(self.columns), id_column=self.id_column,
            domain=self.domain, domain_column=self.domain_column,
        )


@dataclass
class WriteReport:
    """What :func:`write_scores` wrote: rows, flagged rows, part files and the bad partitions."""

    rows: int = 0
    flagged: int = 0
    parts: int = 0
    bad: list[dict[str, Any]] = field(default_factory=list)


def _client(client: Any) -> Any:
    if client is not None:
        return client
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def share_model(blob: ModelBlob, client: Any) -> Any:
    """The model as a graph argument: scattered once to every worker, or one graph key without a cluster."""
    import dask

    if client is not None:
        # hash=False: a fresh key per call. With hash=True the same model scattered again right
        # after an earlier call released it races the release, and the new tasks fail with
        # CancelledError (dask/distributed#3703, #4612, #8576).
        return client.scatter(blob, broadcast=True, hash=False)
    return dask.delayed(blob, pure=True)


def _label(info: dict[str, Any] | None) -> str:
    return "partition ?" if info is None else f"partition {info['number']}"


def _score_part(blob: ModelBlob, part: Part | pd.DataFrame, options: ScoreOptions, label: str | None = None) -> pd.DataFrame:
    where = part.label if isinstance(part, Part) else label
    try:
        frame = read_part(part) if isinstance(part, Part) else part
        return options.apply(worker_detector(blob), frame)
    except FlowadError as err:
        raise InputError(f"{where}: {err}") from None


def _score_partition(frame: pd.DataFrame, blob: ModelBlob, options: ScoreOptions, partition_info: dict[str, Any] | None = None) -> pd.DataFrame:
    return _score_part(blob, frame, options, _label(partition_info))


def _meta(id_dtype: Any) -> pd.DataFrame:
    return pd.DataFrame({
        "id": pd.Series([], dtype=id_dtype), "anomaly_score": pd.Series([], dtype="f8"),
        "log_density": pd.Series([], dtype="f8"), "label": pd.Series([], dtype="i8"),
    })


def _folder_id_dtype(parts: list[Part], id_column: str | None) -> Any:
    if id_column is None:
        return "i8"
    first = parts[0].path
    if first.lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        schema = pq.read_schema(first)
        if id_column in schema.names:
            return schema.field(id_column).type.to_pandas_dtype()
    return object


def _as_frame(data: Any, det: Any) -> Any:
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(data, da.Array):
        if data.ndim != 2:
            raise InputError(f"A Dask Array to score must be 2-D (rows, features), got {data.ndim}-D.")
        names = getattr(det, "feature_names_in_", None)
        cols = list(names) if names is not None and len(names) == data.shape[1] else [f"x{i}" for i in range(data.shape[1])]
        return dd.from_dask_array(data.rechunk({1: -1}), columns=cols)
    return data


def _prepare(model: Any, options: ScoreOptions) -> tuple[ModelBlob, Any]:
    blob, det = model_blob(model)
    check_domain_options(det, options.domain, options.domain_column, "the model")
    if options.domain is not None:
        det._index(options.domain)  # an unknown domain fails here, naming the known ones
    return blob, det


def score(
    model: Any,
    data: Any,
    *,
    columns: list[str] | None = None,
    id_column: str | None = None,
    domain: str | None = None,
    domain_column: str | None = None,
    client: Any = None,
) -> Any:
    """Score ``data`` partition by partition; returns a lazy Dask DataFrame.

    Parameters
    ----------
    model : path-like or fitted detector
        A model file (its bytes are sent to the workers) or a detector (saved to bytes first).
    data : dask DataFrame, dask Array or path-like
        A Dask DataFrame (its index is kept), a 2-D Dask Array (rows indexed by position), or a
        folder of Parquet/CSV files or one such file (rows indexed by their row number in the
        folder: files in name order, Parquet row groups and CSV files as partitions).
    columns : list of str, optional
        Feature columns (default: the model's own feature names).
    id_column : str, optional
        Column copied to ``id`` (default: the index).
    domain, domain_column : str, optional
        Domain of every row, or the column giving each row's domain (multi-domain models).
    client : distributed.Client, optional
        Where to scatter the model (default: the current client, if any; without one the
        model bytes are a single key of the graph, so each worker still receives them once).

    Returns
    -------
    dask.dataframe.DataFrame
        Columns ``id``, ``anomaly_score``, ``log_density``, ``label``, on the input's index and
        in the input's order. A partition that cannot be scored (missing columns, NaN rows)
        raises :class:`~flowad.exceptions.InputError` naming it (and its file) on compute.
    """
    import dask
    import dask.dataframe as dd

    options = ScoreOptions(None if columns is None else tuple(columns), id_column, domain, domain_column)
    blob, det = _prepare(model, options)
    shared = share_model(blob, _client(client))
    if is_folder(data):
        parts = folder_parts(data)
        tasks = [dask.delayed(_score_part, pure=True)(shared, p, options) for p in parts]
        divisions = [p.offset for p in parts] + [parts[-1].offset + parts[-1].rows - 1]
        return dd.from_delayed(tasks, meta=_meta(_folder_id_dtype(parts, id_column)), divisions=divisions, verify_meta=False)
    if isinstance(data, (str, os.PathLike)):
        raise InputError(f"{str(data)!r} is neither a folder nor a Parquet/CSV file.")
    frame = _as_frame(data, det)
    if not isinstance(frame, dd.DataFrame):
        raise InputError(f"data must be a Dask DataFrame, a Dask Array or a folder, got {type(data).__name__}.")
    id_dtype = frame.index.dtype if id_column is None else (frame[id_column].dtype if id_column in frame.columns else object)
    return frame.map_partitions(_score_partition, shared, options, meta=_meta(id_dtype), align_dataframes=False)


# ------------------------------------------------------------------------------ writing
def _write_part(blob: ModelBlob, part: Part | pd.DataFrame, options: ScoreOptions, index: int, label: str, staging: str, on_bad: str) -> dict[str, Any]:
    """Score one partition into ``staging/part-<index>.parquet`` (atomically); return its status.

    A bad partition raises (``on_bad="stop"``: Dask's progress bar and the job stop) or is
    reported in the status (``"skip"``).
    """
    status: dict[str, Any] = {"partition": index, "where": part.label if isinstance(part, Part) else label, "rows": 0, "flagged": 0, "error": None}
    try:
        frame = read_part(part) if isinstance(part, Part) else part
        out = options.apply(worker_detector(blob), frame)
    except FlowadError as err:
        if on_bad == "stop":
            raise InputError(f"{status['where']}: {err}") from None
        status["error"] = str(err)
        return status
    target = Path(staging) / f"part-{index:05d}.parquet"
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    out.to_parquet(tmp, index=False)
    os.replace(tmp, target)  # a retried task (worker lost) rewrites the same part: no duplicates
    status.update(rows=len(out), flagged=int(out["label"].sum()))
    return status


def _prepare_output(output: Path) -> Path:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InputError(f"Output {str(output)!r} exists and is not an empty folder; give a new folder for the score parts.")
    if not output.parent.exists():
        raise InputError(f"Output folder {str(output.parent)!r} does not exist.")
    output.mkdir(exist_ok=True)
    staging = output / f"_staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    return staging


def write_scores(
    model: Any,
    data: Any,
    output: str | os.PathLike[str],
    *,
    columns: list[str] | None = None,
    id_column: str | None = None,
    domain: str | None = None,
    domain_column: str | None = None,
    on_bad: str = "stop",
    client: Any = None,
    progress: bool = False,
) -> WriteReport:
    """Score ``data`` (a folder or a Dask DataFrame) into Parquet parts in the folder ``output``.

    Each partition is scored and written by a worker as ``part-<n>.parquet`` (``n`` in input
    order, so reading the folder back gives the input's row order). Parts are written to a
    staging folder and moved into ``output`` only when the job succeeds; a task retried after
    a worker was lost rewrites its own part, so no row is lost or duplicated.

    Parameters
    ----------
    on_bad : {"stop", "skip"}, default="stop"
        A partition that cannot be scored (missing columns, NaN rows): ``"stop"`` cancels the
        job, writes nothing and raises :class:`InputError` naming the partition and its file;
        ``"skip"`` writes the good partitions and lists the bad ones in ``_bad_partitions.csv``
        and in the returned report.
    progress : bool, default=False
        Show Dask's progress bar (needs a distributed client).

    Other parameters are those of :func:`score`.

    Returns
    -------
    WriteReport
    """
    import dask
    import dask.dataframe as dd

    if on_bad not in ON_BAD:
        raise InputError(f"on_bad must be one of {list(ON_BAD)}, got {on_bad!r}.")
    options = ScoreOptions(None if columns is None else tuple(columns), id_column, domain, domain_column)
    blob, det = _prepare(model, options)
    client = _client(client)
    if is_folder(data):
        parts: list[Any] = folder_parts(data)
        labels = [p.label for p in parts]
    else:
        frame = _as_frame(data, det)
        if not isinstance(frame, dd.DataFrame):
            raise InputError(f"data must be a folder, a Dask DataFrame or a Dask Array, got {type(data).__name__}.")
        parts = list(frame.to_delayed())
        labels = [f"partition {i}" for i in range(len(parts))]
    output = Path(output)
    staging = _prepare_output(output)
    shared = share_model(blob, client)
    tasks = [dask.delayed(_write_part, pure=False)(shared, p, options, i, labels[i], str(staging), on_bad) for i, p in enumerate(parts)]
    try:
        statuses = _run(tasks, client, progress)
        report = WriteReport()
        for status in sorted(statuses, key=lambda s: s["partition"]):
            if status["error"] is not None:
                report.bad.append(status)
                continue
            os.replace(staging / f"part-{status['partition']:05d}.parquet", output / f"part-{status['partition']:05d}.parquet")
            report.rows += status["rows"]
            report.flagged += status["flagged"]
            report.parts += 1
        if report.bad:
            pd.DataFrame([{"partition": s["partition"], "where": s["where"], "error": s["error"]} for s in report.bad]).to_csv(output / BAD_FILE, index=False)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not any(p for p in output.iterdir() if not p.name.startswith("_staging-")):
            shutil.rmtree(output, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return report


def _run(tasks: list[Any], client: Any, progress: bool) -> list[dict[str, Any]]:
    """Run the part tasks; at the first bad partition (``on_bad="stop"``) cancel the rest."""
    import dask

    hint = " (nothing written; rerun with on_bad='skip' / --on-bad skip to write the good partitions)"
    if client is None:
        try:
            return list(dask.compute(*tasks))
        except InputError as err:
            raise InputError(f"{err}{hint}") from None
    from distributed import as_completed
    from distributed import progress as progress_bar

    futures = client.compute(tasks)
    try:
        if progress:
            progress_bar(futures)  # Dask's own bar; it stops early at a failed task
        return [future.result() for future in as_completed(futures)]
    except InputError as err:
        raise InputError(f"{err}{hint}") from None
    finally:
        client.cancel(futures)
