"""The ``flowad`` command line (built on Typer).

Each command lives in its own module and registers itself on :data:`app`; this module only
assembles them. Command groups of other packages join through the ``flowad.cli`` entry-point
group: the benchmark package (``benchmarks/`` in the repository) adds ``flowad bench`` that way.
No modelling logic lives here.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="flowad",
    help="Flow-based unsupervised anomaly detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from flowad.cli._common import EXIT_USER_ERROR, user_errors  # noqa: E402  (public: plugin commands use them)

# Command modules register themselves on import, in this order (the order of `--help`).
# ruff: noqa: I001
from flowad.cli import _demo  # noqa: E402,F401
from flowad.cli import _model  # noqa: E402,F401
from flowad.cli import _deploy  # noqa: E402,F401
from flowad.cli import _sound  # noqa: E402,F401
from flowad.cli import _image  # noqa: E402,F401
from flowad.cli import _plugins  # noqa: E402,F401  (last: plugin groups after the built-in commands)


__all__ = ["EXIT_USER_ERROR", "app", "main", "user_errors"]


def main() -> None:
    """Entry point of the ``flowad`` console script."""
    app()
