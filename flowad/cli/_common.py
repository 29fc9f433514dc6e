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


def check_output(path: Path) -> None:
    if not path.parent.exists():
        raise FlowadInputError(f"Output folder {str(path.parent)!r} does not exist.")


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")

