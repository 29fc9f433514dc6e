"""The ``flowad`` command line (built on Typer).

Each command lives in its own module and registers itself on :data:`app` or
:data:`bench_app`; this module only assembles them. No modelling logic lives here.
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
bench_app = typer.Typer(help="Benchmarks and reproductions of the published studies.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

# Command modules register themselves on import, in this order (the order of `--help`).
# ruff: noqa: I001
from flowad.cli import _demo  # noqa: E402,F401
from flowad.cli import _model  # noqa: E402,F401
from flowad.cli import _deploy  # noqa: E402,F401
from flowad.cli import _bench_throughput  # noqa: E402,F401
from flowad.cli import _bench_defaults  # noqa: E402,F401
from flowad.cli import _bench_odds  # noqa: E402,F401
from flowad.cli import _bench_two_moons  # noqa: E402,F401
from flowad.cli import _bench_speed  # noqa: E402,F401
from flowad.cli import _bench_adaptation  # noqa: E402,F401
from flowad.cli import _bench_vibration  # noqa: E402,F401
from flowad.cli import _bench_sound  # noqa: E402,F401
from flowad.cli import _bench_audio_features  # noqa: E402,F401
from flowad.cli import _sound  # noqa: E402,F401


def main() -> None:
    """Entry point of the ``flowad`` console script."""
    app()
