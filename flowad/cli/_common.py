"""Helpers shared by the CLI commands: one-line user errors, progress bars, data loading."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import typer

from flowad.exceptions import FlowadError
from flowad.exceptions import InputError as FlowadInputError

F = TypeVar("F", bound=Callable[..., Any])

#: Exit code of a user mistake (bad file, wrong columns, unknown domain, bad model file).
EXIT_USER_ERROR = 2


def user_errors(fn: F) -> F:
    """Turn flowad's errors and missing files into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (FlowadError, FileNotFoundError, PermissionError, IsADirectoryError) as err:
            typer.echo(f"flowad: error: {err}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress(enabled: bool, desc: str) -> Iterator[None]:
    """A tqdm progress bar over training epochs (on stderr) while the block runs."""
    if not enabled:
        yield
        return
    from tqdm.auto import tqdm

    from flowad.training import observe_epochs

    bar: list[Any] = []

    def observer(epoch: int, total: int, loss: float) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=desc, unit="epoch", leave=False))
        bar[0].update(1)
        bar[0].set_postfix(loss=f"{loss:.3f}")

    try:
        with observe_epochs(observer):
            yield
    finally:
        if bar:
            bar[0].close()


def split_columns(spec: str | None) -> list[str] | None:
    """``"a,b , c"`` -> ``["a", "b", "c"]``; None/empty -> None."""
    if not spec:
        return None
    return [c.strip() for c in spec.split(",") if c.strip()]


def require_column(frame: pd.DataFrame, column: str | None, what: str) -> np.ndarray | None:
    """The values of ``column`` (None if not asked), with a clear error if it is missing."""
    if column is None:
        return None
    if column not in frame.columns:
        raise FlowadInputError(f"{what} column {column!r} is not in the data; available: {list(map(str, frame.columns))}.")
    return frame[column].to_numpy()


def check_columns(frame: pd.DataFrame, **options: str | list[str] | None) -> None:
    """Every column named by a command-line option is in ``frame``, and no column plays two roles.

    ``options`` maps an option's name without dashes (``id_column``, ``columns``, ...) to the
    column(s) it names; None means the option was not given.
    """
    available = list(map(str, frame.columns))
    roles: dict[str, str] = {}
    for option, value in options.items():
        if value is None:
            continue
        flag = "--" + option.replace("_", "-")
        names = [value] if isinstance(value, str) else list(value)
        missing = [c for c in names if c not in frame.columns]
        if missing:
            what = f"Columns {missing} are" if not isinstance(value, str) else f"{option.split('_')[0].capitalize()} column {value!r} is"
            raise FlowadInputError(f"{what} not in the data ({flag}); available: {available}.")
        for name in names:
            if name in roles and roles[name] != flag:
                raise FlowadInputError(f"Column {name!r} is given both to {roles[name]} and to {flag}; a column plays one role.")
            roles[name] = flag


#: A text column is numeric-looking (a stray text cell is an error, not a reason to leave the
#: column out) when at least this share of its non-empty cells parse as numbers.
NUMERIC_LOOKING = 0.5


_BAD = object()  # marks a cell that is not a number


def _cell_number(value: Any) -> Any:
    """A text column's cell as a float (NaN if missing; True/False as 1/0), or ``_BAD``."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return _BAD


def _parse(values: pd.Series) -> tuple[pd.Series, pd.Series, int]:
    """A text column as floats (NaN where missing or not a number), its cells that are not
    numbers, and how many cells are numbers."""
    parsed = values.map(_cell_number)
    bad = parsed.map(lambda v: v is _BAD).astype(bool)
    numbers = parsed.where(~bad, np.nan).astype(np.float64)
    return numbers, values[bad], int((~bad & values.notna()).sum())


def _stray_text_error(frame: pd.DataFrame, column: Any, bad: pd.Series, n_numbers: int) -> FlowadInputError:
    rows = [frame.index.get_loc(i) for i in bad.index[:3]]
    cells = ", ".join(f"row {r}: {str(v)!r}" for r, v in zip(rows, bad.iloc[:3], strict=True))
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return FlowadInputError(
        f"Column {str(column)!r} holds numbers ({n_numbers} cells) but also text that is not a number at {cells}{more} "
        "(data rows count from 0, the header excluded). "
        "Fix or blank those cells (a blank cell is a missing value, which flowad refuses too), or leave the column "
        "out with --columns."
    )


def check_numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s columns as features: numbers, booleans (0/1, as the API takes them) and text
    columns whose every cell is a number; a text cell in a numeric column is an error naming
    the column, the row and the cell."""
    converted = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            continue
        numbers, bad, n_numbers = _parse(values)
        if len(bad):
            if n_numbers == 0:
                raise FlowadInputError(
                    f"Column {str(column)!r} is text (e.g. {str(bad.iloc[0])!r} at row {frame.index.get_loc(bad.index[0])}), "
                    "not a numeric feature; encode it as numbers or leave it out of --columns."
                )
            raise _stray_text_error(frame, column, bad, n_numbers)
        converted[column] = numbers
    out = frame
    if converted:
        out = frame.copy()
        for column, values in converted.items():
            out[column] = values
    missing = out.isna().to_numpy()
    if missing.any():
        row, col = (int(i[0]) for i in np.nonzero(missing.T)[::-1])
        counts = missing.sum(axis=0)
        named = {str(c): int(n) for c, n in zip(out.columns, counts, strict=True) if n}
        raise FlowadInputError(
            f"Feature column(s) {list(named)} have empty or missing cells ({sum(named.values())} in all, "
            f"first in column {str(out.columns[col])!r} at row {row}); impute or drop those rows first."
        )
    return out


def default_features(frame: pd.DataFrame, exclude: list[str]) -> tuple[list[str], list[str]]:
    """The feature columns when ``--columns`` is not given: every column not in ``exclude``
    that holds numbers or booleans (True/False count as 0/1). Returns ``(features, left_out)``:
    ``left_out`` are the text columns. A mostly numeric column with stray text cells is an
    error (never silently dropped); so is a frame without any feature column."""
    features, left_out = [], []
    for column in frame.columns:
        if column in exclude:
            continue
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            features.append(column)
            continue
        _, bad, n_numbers = _parse(values)
        if not len(bad):
            features.append(column)  # numbers stored as text (all cells parse)
        elif n_numbers >= NUMERIC_LOOKING * (n_numbers + len(bad)):
            raise _stray_text_error(frame, column, bad, n_numbers)
        else:
            left_out.append(str(column))
    if not features:
        raise FlowadInputError(
            f"No numeric feature columns found; columns: {list(map(str, frame.columns))}"
            + (f" (left out as text: {left_out})" if left_out else "")
            + (f" (excluded by option: {exclude})" if exclude else "")
            + "."
        )
    return features, left_out


def check_output(path: Path) -> None:
    if not path.parent.exists():
        raise FlowadInputError(f"Output folder {str(path.parent)!r} does not exist.")


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")

