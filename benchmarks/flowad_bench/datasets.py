"""Read a folder of labelled anomaly-detection datasets (``.npz``, ODDS ``.mat``, CSV).

Every dataset is a matrix ``X`` of shape (n_samples, n_features) and a label vector ``y``
(1 = anomaly, 0 = normal). A file that cannot serve the benchmark (no labels, NaNs, a single
class, ...) is reported by name with the reason and skipped; it never stops the run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowad.exceptions import InputError

__all__ = [
    "Dataset",
    "DatasetError",
    "SkippedFile",
    "SUFFIXES",
    "load_dataset",
    "load_features",
    "load_folder",
    "load_folders",
    "data_folder",
    "dataset_paths",
]

#: File name endings read as datasets.
SUFFIXES = (".npz", ".mat", ".csv")
#: Column names tried, in order, as the label column of a CSV file.
CSV_LABEL_COLUMNS = ("y", "label", "labels", "outlier", "anomaly", "class", "target")


class DatasetError(InputError):
    """A dataset file cannot be used: missing labels, non-finite values, one class, ..."""


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset.

    Attributes
    ----------
    name : str
        File name without its suffix.
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), int64
        1 = anomaly, 0 = normal.
    path : str
        Where it was read from ('' for in-memory data).
    source : str
        Name of the folder it was read from by :func:`load_folders` (e.g. ``odds``,
        ``adbench_dev``); '' otherwise.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    path: str = ""
    source: str = ""

    @property
    def contamination(self) -> float:
        """Fraction of anomalies."""
        return float(self.y.mean())

    @property
    def size(self) -> int:
        """``n_samples * n_features``, used to order datasets from small to large."""
        return int(self.X.shape[0] * self.X.shape[1])


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not used, and why."""

    name: str
    path: str
    reason: str


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("X", "y") if k not in data.files]
        if missing:
            raise DatasetError(
                f"missing array(s) {missing}; an .npz dataset needs 'X' and 'y', found {sorted(data.files)}"
            )
        return np.asarray(data["X"]), np.asarray(data["y"])


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        raise DatasetError("MATLAB v7.3 (HDF5) files are not supported; re-save with '-v7'") from None
    missing = [k for k in ("X", "y") if k not in data]
    if missing:
        found = sorted(k for k in data if not k.startswith("__"))
        raise DatasetError(f"missing variable(s) {missing}; an ODDS .mat file holds 'X' and 'y', found {found}")
    return np.asarray(data["X"]), np.asarray(data["y"])


def _read_csv(path: Path, label_column: str | None) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    frame = pd.read_csv(path)
    if label_column is not None:
        candidates = [label_column]
    else:
        candidates = [c for c in frame.columns if str(c).strip().lower() in CSV_LABEL_COLUMNS]
    if not candidates or candidates[0] not in frame.columns:
        wanted = repr(label_column) if label_column is not None else f"one of {list(CSV_LABEL_COLUMNS)}"
        raise DatasetError(f"no label column: expected {wanted}, found columns {list(frame.columns)[:20]}")
    col = candidates[0]
    y = frame[col].to_numpy()
    features = frame.drop(columns=[col])
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise DatasetError(f"non-numeric feature column(s) {non_numeric[:10]}; encode them first")
    return features.to_numpy(dtype=np.float64), y


def load_dataset(path: str | os.PathLike[str], *, label_column: str | None = None) -> Dataset:
    """Read and check one dataset file.

    Parameters
    ----------
    path : path-like
        ``.npz`` with arrays ``X`` and ``y``; ODDS ``.mat`` with variables ``X`` and ``y``;
        or ``.csv`` with a header and a label column.
    label_column : str or None, default=None
        Label column of a CSV file; None tries ``y``, ``label``, ``outlier``, ... in order.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        If the file cannot be read, lacks ``X`` or ``y``, has non-finite values, rows that
        do not match, labels other than 0/1, or a single class.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".npz":
            X, y = _read_npz(p)
        elif suffix == ".mat":
            X, y = _read_mat(p)
        elif suffix == ".csv":
            X, y = _read_csv(p, label_column)
        else:
            raise DatasetError(f"unknown file type {suffix!r}; expected one of {list(SUFFIXES)}")
    except DatasetError:
        raise
    except Exception as err:  # unreadable / corrupt file: report, do not crash the run
        raise DatasetError(f"cannot be read ({type(err).__name__}: {err})") from None
    return check_dataset(p.stem, X, y, path=str(p))


def load_features(path: str | os.PathLike[str]) -> np.ndarray:
    """The feature matrix ``X`` of an ``.npz`` file, as float64; no other array (labels) is read.

    Raises
    ------
    DatasetError
        If the file is not an ``.npz`` file, cannot be read, or has no array ``X``.
    """
    p = Path(path)
    if p.suffix.lower() != ".npz":
        raise DatasetError(f"{str(p)!r}: only .npz files (array 'X') can be read without their labels")
    try:
        with np.load(p, allow_pickle=False) as data:
            if "X" not in data.files:
                raise DatasetError(f"{str(p)!r} has no array 'X' (keys: {sorted(data.files)}); expected an ODDS-style .npz")
            return np.asarray(data["X"], dtype=np.float64)
    except DatasetError:
        raise
    except Exception as err:
        raise DatasetError(f"{str(p)!r} cannot be read ({type(err).__name__}: {err})") from None


def check_dataset(name: str, X: np.ndarray, y: np.ndarray, *, path: str = "") -> Dataset:
    """Check and convert an in-memory ``(X, y)`` pair into a :class:`Dataset`.

    Raises
    ------
    DatasetError
        See :func:`load_dataset`.
    """
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"X is not numeric (dtype {np.asarray(X).dtype})") from None
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DatasetError(f"X must be a non-empty 2-D array, got shape {X.shape}")
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise DatasetError(f"X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DatasetError(
            f"X has {int(bad.sum())} NaN/inf value(s) in {rows.size} row(s) (first rows: {rows[:5].tolist()})"
        )
    try:
        yf = y.astype(np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"labels must be 0/1, got values such as {np.unique(y)[:5].tolist()}") from None
    if not np.isfinite(yf).all():
        raise DatasetError("y has NaN/inf labels")
    values = np.unique(yf)
    if not set(values.tolist()) <= {0.0, 1.0}:
        raise DatasetError(f"labels must be 0 (normal) / 1 (anomaly), got values {values[:5].tolist()}")
    if values.size < 2:
        raise DatasetError(f"y has a single class ({int(values[0])}); AUC needs both normals and anomalies")
    yi = yf.astype(np.int64)
    counts = np.bincount(yi, minlength=2)
    if counts.min() < 2:
        raise DatasetError(f"y has {counts[1]} anomalies and {counts[0]} normals; a stratified split needs 2 of each")
    return Dataset(name=name, X=X, y=yi, path=path)


def data_folder(folder: str | os.PathLike[str]) -> Path:
    """``folder`` as a path, checked to be an existing folder.

    Raises
    ------
    DatasetError
        If ``folder`` does not exist or is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"data folder {str(root)!r} does not exist or is not a folder")
    return root


def dataset_paths(folder: str | os.PathLike[str], names: Iterable[str] | None = None) -> list[Path]:
    """Dataset files of ``folder`` (sorted by name), optionally only those whose stem is in ``names``.

    Raises
    ------
    DatasetError
        If ``folder`` is not a directory, or a requested name has no file.
    """
    root = data_folder(folder)
    paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if names is not None:
        wanted = list(dict.fromkeys(names))
        by_stem = {p.stem: p for p in paths}
        unknown = [n for n in wanted if n not in by_stem]
        if unknown:
            raise DatasetError(f"no dataset file for {unknown} in {str(root)!r}; found {sorted(by_stem)}")
        paths = [by_stem[n] for n in wanted]
    return paths


def load_folder(
    folder: str | os.PathLike[str],
    names: Iterable[str] | None = None,
    *,
    label_column: str | None = None,
) -> tuple[list[Dataset], list[SkippedFile]]:
    """Read every dataset file of ``folder``; bad files are returned as skipped, with the reason.

    Parameters
    ----------
    folder : path-like
    names : iterable of str, optional
        File stems to read (default: every ``.npz``, ``.mat`` and ``.csv`` file).
    label_column : str, optional
        Label column of CSV files.

    Returns
    -------
    datasets : list of Dataset
        In file-name order.
    skipped : list of SkippedFile
    """
    datasets: list[Dataset] = []
    skipped: list[SkippedFile] = []
    for p in dataset_paths(folder, names):
        try:
            datasets.append(load_dataset(p, label_column=label_column))
        except DatasetError as err:
            skipped.append(SkippedFile(name=p.stem, path=str(p), reason=str(err)))
    return datasets, skipped


def load_folders(
    folders: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    names: Iterable[str] | None = None,
    *,
    label_column: str | None = None,
) -> tuple[list[Dataset], list[SkippedFile]]:
    """:func:`load_folder` over one or several folders; each dataset's ``source`` is its folder's name.

    Parameters
    ----------
    folders : path-like or sequence of path-like
    names : iterable of str, optional
        File stems to read, looked up across all folders (default: every dataset file).
    label_column : str, optional

    Returns
    -------
    datasets : list of Dataset
        Folder by folder (in the order given), file-name order within a folder.
    skipped : list of SkippedFile

    Raises
    ------
    DatasetError
        If a folder does not exist, a requested name has no file in any folder, or two
        folders hold a dataset of the same name (rows are keyed by dataset name).
    """
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    roots = [data_folder(f) for f in folders]
    if not roots:
        raise DatasetError("no data folder given")
    stems: dict[str, list[Path]] = {}
    for root in roots:
        for p in dataset_paths(root):
            stems.setdefault(p.stem, []).append(root)
    twice = {s: [str(r) for r in rs] for s, rs in stems.items() if len(rs) > 1}
    if twice:
        raise DatasetError(f"datasets of the same name in several folders: {twice}; rename one or pass one folder")
    wanted = None if names is None else list(dict.fromkeys(names))
    if wanted is not None:
        unknown = [n for n in wanted if n not in stems]
        if unknown:
            raise DatasetError(f"no dataset file for {unknown} in {[str(r) for r in roots]}; found {sorted(stems)}")
    datasets: list[Dataset] = []
    skipped: list[SkippedFile] = []
    for root in roots:
        mine = None if wanted is None else [n for n in wanted if stems[n][0] == root]
        if mine == []:
            continue
        found, bad = load_folder(root, mine, label_column=label_column)
        datasets += [dataclasses.replace(d, source=root.resolve().name) for d in found]
        skipped += bad
    return datasets, skipped
