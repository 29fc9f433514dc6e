"""Folders of Parquet/CSV files as one data set: which files, and their Parquet row groups.

The one listing rule of the commands that read a folder piece by piece (Dask scoring and
adaptation, DDP training): files sorted by name, hidden (``.``) and private (``_``) files
skipped, Parquet (``.parquet``, ``.pq``) and CSV (``.csv``, ``.tsv``, ``.txt``) only; a path to
one such file is a folder of one file.
"""

from __future__ import annotations

import os
from pathlib import Path

from flowad.exceptions import InputError

__all__ = ["PARQUET_SUFFIXES", "CSV_SUFFIXES", "data_files", "is_data_path", "parquet_row_groups"]

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")


def is_data_path(path: str | os.PathLike[str]) -> bool:
    """True for a folder, or for one Parquet/CSV file."""
    p = Path(path)
    return p.is_dir() or (p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES + CSV_SUFFIXES)


def data_files(path: str | os.PathLike[str]) -> list[Path]:
    """The Parquet/CSV files of folder ``path`` in name order (or ``[path]`` for one such file).

    Raises
    ------
    InputError
        If ``path`` is neither, is a file of another type, or a folder without such files.
    """
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() not in PARQUET_SUFFIXES + CSV_SUFFIXES:
            raise InputError(f"Data {str(p)!r} is not a Parquet (.parquet, .pq) or CSV (.csv, .tsv, .txt) file.")
        return [p]
    if not p.is_dir():
        raise InputError(f"Data {str(p)!r} is neither a folder nor a Parquet/CSV file.")
    files = sorted(
        f for f in p.iterdir()
        if f.is_file() and not f.name.startswith((".", "_")) and f.suffix.lower() in PARQUET_SUFFIXES + CSV_SUFFIXES
    )
    if not files:
        raise InputError(f"Folder {str(p)!r} holds no Parquet (.parquet, .pq) or CSV (.csv, .tsv, .txt) files.")
    return files


def parquet_row_groups(path: Path) -> list[tuple[int, int]]:
    """``(row group, rows)`` of every non-empty row group of a Parquet file, from its footer only.

    Raises
    ------
    InputError
        If pyarrow is missing or the footer cannot be read.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise InputError(f"Reading Parquet needs pyarrow: {err}. Install it with pip install pyarrow.") from None
    try:
        meta = pq.read_metadata(path)
    except (OSError, ValueError) as err:
        raise InputError(f"Could not read the Parquet footer of {str(path)!r}: {err}") from None
    return [(g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups) if meta.row_group(g).num_rows]
