"""What a result folder records, and the folder itself (one recorder for every benchmark)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from flowad.exceptions import InputError

__all__ = ["command_line", "output_folder"]


def command_line(argv: list[str] | None = None) -> str:
    """The ``flowad ...`` command as typed, shell-quoted, for a report's first line.

    ``argv`` defaults to :data:`sys.argv`. When the process was not started from the ``flowad``
    script (tests, notebooks) only ``flowad`` is recorded: the arguments of another program
    are not the command's.

    >>> command_line(["/venv/bin/flowad", "bench", "odds", "--out", "results/odds x"])
    "flowad bench odds --out 'results/odds x'"
    >>> command_line(["/venv/bin/pytest", "-q"])
    'flowad'
    """
    args = list(sys.argv if argv is None else argv)
    rest = args[1:] if args and Path(args[0]).name.startswith("flowad") else []
    return " ".join(["flowad", *(shlex.quote(a) for a in rest)])


def output_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder for results, created with its parents if missing.

    Raises
    ------
    InputError
        If ``path`` exists and is not a folder.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"output folder {str(folder)!r} is a file; give a folder (it is created if missing).")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
