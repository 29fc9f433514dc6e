"""``flowad bench ...``: the benchmark commands, added to the ``flowad`` command line as a plugin.

The benchmark package declares the entry point ``flowad.cli: bench = flowad_bench.cli:bench_app``;
``flowad`` finds it at start-up (see :mod:`flowad.cli`). Each command lives in its own module and
registers itself on :data:`bench_app` on import; the import order below is the order of ``--help``.
"""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks and reproductions of the published studies.", no_args_is_help=True)

# ruff: noqa: I001
from flowad_bench.cli import throughput  # noqa: E402,F401
from flowad_bench.cli import defaults  # noqa: E402,F401
from flowad_bench.cli import validation_nll  # noqa: E402,F401
from flowad_bench.cli import odds  # noqa: E402,F401
from flowad_bench.cli import two_moons  # noqa: E402,F401
from flowad_bench.cli import speed  # noqa: E402,F401
from flowad_bench.cli import adaptation  # noqa: E402,F401
from flowad_bench.cli import vibration  # noqa: E402,F401
from flowad_bench.cli import sound  # noqa: E402,F401
from flowad_bench.cli import audio_features  # noqa: E402,F401
from flowad_bench.cli import scaleout  # noqa: E402,F401
from flowad_bench.cli import ddp  # noqa: E402,F401
from flowad_bench.cli import images  # noqa: E402,F401
from flowad_bench.cli import fuzz  # noqa: E402,F401
