"""Reading and writing the tabular files users keep their data in.

Formats, chosen by file extension: CSV (``.csv``, ``.tsv``, ``.txt``), Parquet (``.parquet``,
``.pq``; needs ``pyarrow``), numpy ``.npy`` (a 2-D array) and ``.npz`` (array ``X``, plus
optional 1-D arrays such as ``y``, ``ids`` or ``domain`` that become extra columns).
Arrays without column names get ``x0, x1, ...``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from flowad.exceptions import InputError
from flowad.io._atomic import atomic_write

__all__ = ["read_table", "write_table", "select_features", "SUPPORTED"]

_CSV = {".csv", ".tsv", ".txt"}
_PARQUET = {".parquet", ".pq"}
SUPPORTED = sorted(_CSV | _PARQUET | {".npy", ".npz"})


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise InputError(f"Unsupported file type {suffix or '(none)'!r} for {str(path)!r}; use one of {SUPPORTED}.")
    return suffix


def _array_frame(X: np.ndarray, source: Path) -> pd.DataFrame:
    if X.ndim != 2:
        raise InputError(f"{str(source)!r} holds a {X.ndim}-D array of shape {X.shape}; expected 2-D (rows, features).")
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read ``path`` into a DataFrame (see the module docstring for the formats).

    Raises
    ------
    InputError
        If the file is missing, empty, of an unknown type or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Data file {str(path)!r} does not exist.")
    suffix = _suffix(path)
    try:
        if suffix in _CSV:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        elif suffix in _PARQUET:
            with path.open("rb") as fh:  # one open file: a concurrent atomic replace cannot mix two versions
                frame = pd.read_parquet(fh)
        elif suffix == ".npy":
            frame = _array_frame(np.load(path, allow_pickle=False), path)
        else:
            with np.load(path, allow_pickle=False) as data:
                if "X" not in data.files:
                    raise InputError(f"{str(path)!r} has no array 'X' (found {data.files}).")
                frame = _array_frame(np.asarray(data["X"]), path)
                for key in data.files:
                    arr = np.asarray(data[key])
                    if key != "X" and arr.ndim == 1 and arr.shape[0] == len(frame):
                        frame[key] = arr
    except InputError:
        raise
    except ImportError as err:
        raise InputError(f"Reading {str(path)!r} needs an optional package: {err}. Install it with pip install pyarrow.") from None
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"Could not read {str(path)!r}: {err}") from None
    if frame.shape[0] == 0:
        raise InputError(f"{str(path)!r} has no rows.")
    return frame


def select_features(frame: pd.DataFrame, columns: list[str] | None, exclude: list[str]) -> pd.DataFrame:
    """The feature columns: ``columns`` if given, else every numeric column not in ``exclude``."""
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(f"Columns {missing} are not in the data; available: {list(map(str, frame.columns))}.")
        return frame[columns]
    numeric = [c for c in frame.columns if c not in exclude and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    if not numeric:
        raise InputError(f"No numeric feature columns found; columns: {list(map(str, frame.columns))}.")
    return frame[numeric]


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` to ``path`` (format by extension; ``.npz`` stores one array per column),
    atomically: a uniquely named temporary file in the same folder is renamed over the target
    (:mod:`flowad.io._atomic`), so concurrent writers to one path all succeed, a reader sees one
    complete table, an existing file keeps its mode, and nothing is left behind by a failure."""
    path = Path(path)
    suffix = _suffix(path)
    if path.is_dir():
        raise InputError(f"Output {str(path)!r} is a directory; give a file name.")
    if not path.parent.is_dir():
        raise InputError(f"Output folder {str(path.parent)!r} does not exist.")

    def write(fh: IO[bytes]) -> None:
        if suffix in _CSV:
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
            frame.to_csv(text, index=False, sep="\t" if suffix == ".tsv" else ",")
            text.flush()
            text.detach()
        elif suffix in _PARQUET:
            frame.to_parquet(fh, index=False)
        elif suffix == ".npy":
            np.save(fh, frame.to_numpy())
        else:
            np.savez(fh, **{str(c): frame[c].to_numpy() for c in frame.columns})

    try:
        return atomic_write(path, write)
    except ImportError as err:
        raise InputError(f"Writing {str(path)!r} needs an optional package: {err}. Install it with pip install pyarrow.") from None
