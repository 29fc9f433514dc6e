"""Command groups of other installed packages (entry-point group ``flowad.cli``).

A package adds a group with ``[project.entry-points."flowad.cli"] NAME = "module:typer_app"``.
The benchmark package registers ``bench`` this way; when it is not installed (or cannot be
imported) ``flowad bench`` says how to get it instead of "no such command".
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from flowad.cli import app
from flowad.cli._common import EXIT_USER_ERROR

#: Entry-point group that other packages use to add command groups to ``flowad``.
PLUGIN_GROUP = "flowad.cli"

BENCH_INSTALL_HINT = (
    "the benchmark commands are in the separate package flowad-bench; from a flowad checkout "
    "install it with `pip install -e benchmarks/` (or run `make setup`)"
)


def _missing_group(name: str, why: str) -> None:
    @app.command(
        name,
        help=f"(not installed) {why}",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )
    def _missing(ctx: typer.Context) -> None:
        typer.echo(f"flowad: error: {why}.", err=True)
        raise typer.Exit(EXIT_USER_ERROR)


def load_plugins() -> list[str]:
    """Add every installed plugin group to :data:`flowad.cli.app`; returns the names added."""
    added = []
    found = list(entry_points(group=PLUGIN_GROUP))
    for ep in found:
        try:
            group = ep.load()
        except ImportError as err:
            hint = BENCH_INSTALL_HINT if ep.name == "bench" else f"reinstall the package that provides it ({ep.value})"
            _missing_group(ep.name, f"`flowad {ep.name}` cannot be loaded ({err}); {hint}")
            continue
        app.add_typer(group, name=ep.name)
        added.append(ep.name)
    if not any(ep.name == "bench" for ep in found):
        _missing_group("bench", BENCH_INSTALL_HINT)
    return added


load_plugins()
