"""How a result folder records the command that wrote it (one recorder for every benchmark)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def command_line(argv: list[str] | None = None) -> str:
    """The ``flowad ...`` command as typed, shell-quoted, for a report's first line.

    ``argv`` defaults to :data:`sys.argv`. When the process was not started from the ``flowad``
    script (tests, notebooks) the arguments are still recorded behind ``flowad``.

    >>> command_line(["/venv/bin/flowad", "bench", "odds", "--out", "results/odds x"])
    "flowad bench odds --out 'results/odds x'"
    """
    args = list(sys.argv if argv is None else argv)
    rest = args[1:] if args and Path(args[0]).name.startswith("flowad") else []
    return " ".join(["flowad", *(shlex.quote(a) for a in rest)])
