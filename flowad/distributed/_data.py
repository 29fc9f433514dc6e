"""Each rank's shard of a folder of Parquet/CSV files, streamed in fixed-size batches.

A folder is cut into *units*: one per non-empty Parquet row group (row counts from the file
footers, no data read) or one per CSV file (counted once, in chunks), in the order of the sorted
file names. Units go round robin to the ranks (unit ``i`` to rank ``i % world_size``), so each
rank reads only its own files or row groups.

A rank's stream is an endless sequence of passes over its shard. Pass ``p`` visits the shard's
units in an order drawn from ``(seed, rank, p)`` and the rows of each unit in an order drawn from
``(seed, rank, p, unit)``; batches are consecutive ``batch`` rows of that stream (a batch may
straddle two units or two passes). Every draw is a function of the seed, the rank and the
position, so the stream can restart at any step without replaying it (units before the position
are skipped unread): that is what makes checkpoints resumable without saving RNG states.
Memory holds one unit (one row group, or one CSV file) and one batch, whatever the size of the
data set; rows are shuffled within a unit, and units are shuffled within a pass.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flowad.exceptions import InputError
from flowad.io.folders import CSV_SUFFIXES, data_files, parquet_row_groups

__all__ = ["Unit", "ShardStream", "domain_indices", "draw_sample", "fingerprint", "folder_units", "preview", "read_domains", "read_unit", "rng_for",
           "shard", "shard_domains"]


@dataclass(frozen=True)
class Unit:
    """One readable piece of the folder: a Parquet row group or a whole CSV file."""

    index: int
    path: str
    row_group: int | None
    rows: int

    @property
    def label(self) -> str:
        return f"file {self.path!r}" + ("" if self.row_group is None else f" row group {self.row_group}")


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """A numpy generator determined by ``seed`` and ``keys`` (rank, pass, unit, ...)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, *(int(k) for k in keys)]))


def _csv_sep(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def folder_units(folder: str | os.PathLike[str]) -> list[Unit]:
    """The units of ``folder`` (or of one Parquet/CSV file), in order."""
    units: list[Unit] = []
    for f in data_files(folder):
        if f.suffix.lower() in CSV_SUFFIXES:
            try:
                n = sum(len(chunk) for chunk in pd.read_csv(f, sep=_csv_sep(f), chunksize=1 << 16, usecols=[0]))
            except (OSError, ValueError) as err:
                raise InputError(f"Could not read {str(f)!r}: {err}") from None
            if n:
                units.append(Unit(len(units), str(f), None, n))
            continue
        for g, n in parquet_row_groups(f):
            units.append(Unit(len(units), str(f), g, n))
    if not units:
        raise InputError(f"The files of {str(folder)!r} hold no rows.")
    return units


def shard(units: Sequence[Unit], rank: int, world_size: int) -> list[Unit]:
    """Rank ``rank``'s units: every ``world_size``-th unit from ``rank`` on (round robin)."""
    if len(units) < world_size:
        raise InputError(
            f"The data has {len(units)} file(s)/row group(s) for {world_size} processes; each process reads whole files "
            "or row groups, so it needs at least one. Write the data as more files or row groups (pyarrow: "
            "row_group_size=...), or use fewer processes."
        )
    return list(units[rank::world_size])


def preview(data: str | os.PathLike[str], rows: int = 1000) -> pd.DataFrame:
    """The first ``rows`` rows of the first unit of ``data``, all columns (to check and choose
    the feature columns as the one-process ``fit`` does)."""
    unit = folder_units(data)[0]
    try:
        if unit.row_group is None:
            return pd.read_csv(unit.path, nrows=rows, sep=_csv_sep(Path(unit.path)))
        import pyarrow.parquet as pq

        return pq.ParquetFile(unit.path).read_row_group(unit.row_group).slice(0, rows).to_pandas()
    except (OSError, ValueError) as err:
        raise InputError(f"Could not read {unit.label}: {err}") from None


def _frame(unit: Unit, columns: Sequence[str]) -> pd.DataFrame:
    path = Path(unit.path)
    try:
        if unit.row_group is None:
            frame = pd.read_csv(path, sep=_csv_sep(path))
        else:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            present = set(pf.schema_arrow.names)
            frame = pf.read_row_group(unit.row_group, columns=[c for c in columns if c in present]).to_pandas()
    except (OSError, ValueError) as err:
        raise InputError(f"Could not read {unit.label}: {err}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"Columns {missing} are not in {unit.label}; available: {list(map(str, frame.columns))}.")
    if len(frame) != unit.rows:
        raise InputError(f"{unit.label} now holds {len(frame)} rows, not {unit.rows}: the data changed during the job.")
    return frame


def _domain_names(values: pd.Series, unit: Unit) -> np.ndarray:
    """Domain labels as str (ints converted, as ``AdaFlow.fit`` does); anything else is an error naming the unit."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.to_numpy(dtype=object)):
        if isinstance(v, str):
            out[i] = v
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            out[i] = str(int(v))
        else:
            raise InputError(f"Domain labels must be str or int; {unit.label} holds {v!r} at row {i}.")
    return out


def read_domains(unit: Unit, column: str) -> np.ndarray:
    """The domain labels (str) of ``unit``'s rows."""
    return _domain_names(_frame(unit, [column])[column], unit)


def read_unit(unit: Unit, columns: Sequence[str], domain_column: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The feature ``columns`` of ``unit`` as a finite float64 array, and its domain labels (str)
    when ``domain_column`` is given; errors name the unit."""
    frame = _frame(unit, [*columns, *([domain_column] if domain_column else [])])
    domains = None if domain_column is None else _domain_names(frame[domain_column], unit)
    frame = frame[list(columns)]
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values)):
            converted = pd.to_numeric(values, errors="coerce")
            bad = values[converted.isna() & values.notna()]
            if len(bad):
                raise InputError(
                    f"Column {str(column)!r} of {unit.label} holds text that is not a number "
                    f"({str(bad.iloc[0])!r} at row {frame.index.get_loc(bad.index[0])}); fix it or leave the column out with --columns."
                )
            frame = frame.assign(**{column: converted})
    X = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    bad_rows = ~np.isfinite(X).all(axis=1)
    if bad_rows.any():
        rows = np.flatnonzero(bad_rows)
        raise InputError(
            f"{unit.label} has {rows.size} row(s) with empty, NaN or infinite feature values (first at row {rows[0]} "
            f"of the unit); impute or drop those rows first."
        )
    return X, domains


class ShardStream:
    """Rank ``rank``'s endless stream of ``batch``-row arrays (see the module docstring)."""

    def __init__(self, units: Sequence[Unit], columns: Sequence[str], batch: int, seed: int, rank: int,
                 domains: tuple[str, dict[str, int]] | None = None) -> None:
        self.units = list(units)
        self.columns = list(columns)
        self.batch = int(batch)
        self.seed = int(seed)
        self.rank = int(rank)
        self.domains = domains
        self.rows = sum(u.rows for u in self.units)

    def _pass(self, p: int, skip: int) -> Iterator[np.ndarray]:
        """Rows of pass ``p`` in their shuffled order, in unit-sized blocks, after skipping ``skip``
        rows; with ``domains`` the last column holds each row's domain index."""
        order = rng_for(self.seed, self.rank, p).permutation(len(self.units))
        for i in order:
            unit = self.units[int(i)]
            if skip >= unit.rows:  # skipped unread
                skip -= unit.rows
                continue
            X, names = read_unit(unit, self.columns, None if self.domains is None else self.domains[0])
            if self.domains is not None:
                X = np.column_stack([X, domain_indices(names, self.domains[1])])
            perm = rng_for(self.seed, self.rank, p, unit.index).permutation(unit.rows)
            yield X[perm[skip:]]
            skip = 0

    def batches(self, start_step: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Batches ``start_step``, ``start_step + 1``, ... of the stream: ``(rows, domain indices or None)``."""
        p, skip = divmod(start_step * self.batch, self.rows)
        pending: list[np.ndarray] = []
        have = 0
        while True:
            for block in self._pass(p, skip):
                while block.shape[0]:
                    take = min(self.batch - have, block.shape[0])
                    pending.append(block[:take])
                    have += take
                    block = block[take:]
                    if have == self.batch:
                        out = np.concatenate(pending) if len(pending) > 1 else pending[0]
                        pending, have = [], 0
                        if self.domains is None:
                            yield out, None
                        else:
                            yield out[:, :-1], out[:, -1].astype(np.int64)
            p, skip = p + 1, 0


def domain_indices(names: np.ndarray | None, index: dict[str, int]) -> np.ndarray:
    """Each label's position in the sorted list of all domains."""
    assert names is not None
    return np.array([index[n] for n in names], dtype=np.float64)


def draw_sample(units: Sequence[Unit], columns: Sequence[str], size: int, seed: int, rank: int,
                domain_column: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A uniform sample (without replacement) of ``size`` rows of the shard ``units``, drawn from
    ``(seed, rank)``; every row when the shard holds at most ``size`` rows. Reads one unit at a
    time. Returns the rows and, with ``domain_column``, their domain labels (str)."""
    total = sum(u.rows for u in units)
    if size >= total:
        chosen = np.arange(total)
    else:
        chosen = np.sort(rng_for(seed, rank, 2**31 - 1).choice(total, size=size, replace=False))
    out: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    start = 0
    for unit in units:
        lo, hi = np.searchsorted(chosen, [start, start + unit.rows])
        if hi > lo:
            X, names = read_unit(unit, columns, domain_column)
            out.append(X[chosen[lo:hi] - start])
            if names is not None:
                labels.append(names[chosen[lo:hi] - start])
        start += unit.rows
    rows = np.concatenate(out) if out else np.empty((0, len(columns)))
    if domain_column is None:
        return rows, None
    return rows, np.concatenate(labels) if labels else np.empty(0, dtype=object)


def shard_domains(units: Sequence[Unit], column: str) -> dict[str, int]:
    """Rows per domain label in the shard ``units`` (one read of the domain column per unit)."""
    counts: dict[str, int] = {}
    for unit in units:
        names, n = np.unique(read_domains(unit, column), return_counts=True)
        for name, c in zip(names, n, strict=True):
            counts[str(name)] = counts.get(str(name), 0) + int(c)
    return counts


def fingerprint(units: Sequence[Unit]) -> str:
    """A digest of the units (file names, row groups, row counts): a resumed run must see the same data layout."""
    h = hashlib.sha256()
    for u in units:
        h.update(f"{Path(u.path).name}|{u.row_group}|{u.rows};".encode())
    return h.hexdigest()[:16]
