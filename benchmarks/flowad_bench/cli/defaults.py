"""``flowad bench defaults``: the sweep behind RobustRealNVP's default settings."""

from __future__ import annotations

from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line, output_folder


@bench_app.command("defaults")
@user_errors
def defaults(
    data: Path = typer.Option(None, help="Folder of ODDS .npz files for the development check (omit: two moons only)."),
    out: Path = typer.Option(Path("results/defaults"), "--out", "-o", help="Folder for sweep.csv and README.md."),
    odds_seeds: int = typer.Option(2, help="Seeds per ODDS dataset."),
    moons_seeds: int = typer.Option(3, help="Seeds per two-moons setting."),
) -> None:
    """Compare candidate RobustRealNVP settings on two moons and a small ODDS development subset."""
    from flowad_bench.defaults import format_defaults, run_defaults_sweep

    folder = output_folder(out)
    results = run_defaults_sweep(data, odds_seeds=odds_seeds, moons_seeds=moons_seeds)
    results.to_csv(folder / "sweep.csv", index=False)
    text = format_defaults(results, command_line())
    (folder / "README.md").write_text(text)
    typer.echo(text)
