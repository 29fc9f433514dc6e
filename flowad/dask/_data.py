"""Partitions of a data set: a folder of Parquet/CSV files, a Dask DataFrame or a Dask Array.

A folder is split into one partition per Parquet row group (or per CSV file), in the order of
the sorted file names; every partition knows its file and its first row number, so errors name
the file and the row ids of a folder are its row numbers, whatever the partitioning. The files
are read inside the tasks (on the workers), never by the client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flowad.exceptions import InputError
from flowad.io.folders import CSV_SUFFIXES, data_files, is_data_path, parquet_row_groups
from flowad.io.tables import read_table

__all__ = ["Part", "folder_parts", "read_part", "is_folder"]

@dataclass(frozen=True)
class Part:
    """One partition of a folder: a Parquet row group or a whole CSV file."""

    index: int
    path: str
    row_group: int | None
    offset: int
    rows: int

    @property
    def label(self) -> str:
        where = f"file {self.path!r}" + ("" if self.row_group is None else f" row group {self.row_group}")
        return f"partition {self.index} ({where}, rows {self.offset}-{self.offset + self.rows - 1})"


def is_folder(data: Any) -> bool:
    """True for a path to a folder, or to one Parquet/CSV file (a folder of one file)."""
    return isinstance(data, (str, os.PathLike)) and is_data_path(data)


def _csv_rows(path: str) -> int:
    return len(read_table(path))


def folder_parts(folder: str | os.PathLike[str]) -> list[Part]:
    """The partitions of ``folder`` (or of one Parquet/CSV file) in order, with their row offsets.

    Parquet row counts come from the file footers (no data read). CSV files have none: each is
    counted by a task on the active Dask scheduler (one extra read of the CSV files).
    """
    import dask

    path = Path(folder)
    files = data_files(path)
    counts: dict[Path, list[tuple[int | None, int]]] = {}
    csv = [f for f in files if f.suffix.lower() in CSV_SUFFIXES]
    for f in files:
        if f not in csv:
            counts[f] = list(parquet_row_groups(f))
    if csv:
        rows = dask.compute(*[dask.delayed(_csv_rows, pure=True)(str(f)) for f in csv])
        counts.update({f: [(None, int(n))] for f, n in zip(csv, rows, strict=True)})
    parts: list[Part] = []
    offset = 0
    for f in files:
        for group, n in counts[f]:
            parts.append(Part(len(parts), str(f), group, offset, n))
            offset += n
    if not parts:
        raise InputError(f"The files of folder {str(path)!r} hold no rows.")
    return parts


def read_part(part: Part) -> pd.DataFrame:
    """The rows of ``part``, indexed by their row numbers in the folder."""
    if part.row_group is None:
        frame = read_table(part.path)
    else:
        import pyarrow.parquet as pq

        try:
            frame = pq.ParquetFile(part.path).read_row_group(part.row_group).to_pandas()
        except (OSError, ValueError) as err:
            raise InputError(f"Could not read {part.label}: {err}") from None
    if len(frame) != part.rows:
        raise InputError(f"{part.label} now holds {len(frame)} rows, not {part.rows}: the file changed during the job.")
    frame.index = pd.RangeIndex(part.offset, part.offset + part.rows)
    return frame
