"""``flowad bench scaleout``: scoring rows/s and peak memory, 1 process vs a local Dask cluster (issue 16)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad.exceptions import InputError
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line, output_folder


@bench_app.command("scaleout")
@user_errors
def scaleout(
    out: Path = typer.Option(Path("results/scaleout"), "--out", "-o", help="Folder for scaleout.csv and README.md."),
    rows: str = typer.Option("1000000,10000000", help="Comma-separated data sizes (rows)."),
    rows_per_file: int = typer.Option(250_000, min=1000, help="Rows per Parquet file (= per partition)."),
    features: int = typer.Option(10, min=2, help="Features per row."),
    repeats: int = typer.Option(1, min=1, help="Rounds per configuration (round-robin)."),
    epochs: int = typer.Option(5, min=1, help="Training epochs of the scored model (its scoring cost does not depend on them)."),
    work: Path = typer.Option(None, help="Scratch folder for the generated Parquet data (default: a folder under the system temp dir, kept for reruns)."),
    seed: int = typer.Option(0, help="Seed of the data and the model."),
) -> None:
    """Rows/s scoring N rows read from Parquet: one process vs local Dask clusters of 1 and 2
    worker processes, with each process's peak memory at every size (it must stay flat).
    """
    import tempfile

    from flowad_bench.scaleout import format_scaleout, run_scaleout

    try:
        sizes = [int(s) for s in rows.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--rows must be comma-separated integers, got {rows!r}.") from None
    if not sizes or min(sizes) < 1:
        raise InputError(f"--rows needs at least one positive size, got {rows!r}.")
    folder = output_folder(out)
    scratch = output_folder(work or Path(tempfile.gettempdir()) / "flowad-scaleout")
    table = run_scaleout(sizes, folder, folder / "scaleout.csv", rows_per_file=rows_per_file, n_features=features,
                         repeats=repeats, seed=seed, epochs=epochs, work=scratch)
    table = table[table["rows"].isin(sizes)]
    report = format_scaleout(table, command=command_line(), rows_per_file=rows_per_file, cores=os.cpu_count() or 1)
    (folder / "README.md").write_text(report)
    typer.echo(report)
