"""``flowad bench ddp``: DDP training samples/s, 1 vs 2 processes, and the time to the same validation NLL (issue 16)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad.exceptions import InputError
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line, output_folder


@bench_app.command("ddp")
@user_errors
def ddp(
    out: Path = typer.Option(Path("results/ddp"), "--out", "-o", help="Folder for ddp.csv, ddp_log.csv and README.md."),
    rows: int = typer.Option(200_000, min=1000, help="Training rows."),
    rows_per_file: int = typer.Option(25_000, min=100, help="Rows per Parquet file (files go round robin to the processes)."),
    epochs: int = typer.Option(3, min=1, help="Training epochs."),
    batch_size: str = typer.Option("256,1024", help="Comma-separated global batch sizes (each of N processes takes batch / N rows per step)."),
    log_every: int = typer.Option(100, min=1, help="Steps between validation NLL measurements."),
    repeats: int = typer.Option(1, min=1, help="Rounds (round-robin over 1 and 2 processes)."),
    work: Path = typer.Option(None, help="Scratch folder for the generated data and models (default: under the system temp dir, kept for reruns)."),
    seed: int = typer.Option(0, help="Seed of the data and of training."),
) -> None:
    """Training throughput (samples/s) of flowad fit --nproc 1 vs 2 on the same Parquet folder, the
    training time to the same validation NLL, and where each step's time goes."""
    from flowad_bench.ddp import format_ddp, run_ddp

    try:
        sizes = [int(b) for b in batch_size.split(",") if b.strip()]
    except ValueError:
        raise InputError(f"--batch-size must be comma-separated integers, got {batch_size!r}.") from None
    if not sizes or min(sizes) < 2:
        raise InputError(f"--batch-size needs sizes >= 2, got {batch_size!r}.")
    folder = output_folder(out)
    scratch = output_folder(work or Path(tempfile.gettempdir()) / "flowad-ddp-bench")
    table, logs = run_ddp(folder, rows=rows, rows_per_file=rows_per_file, epochs=epochs, batch_sizes=sizes, repeats=repeats,
                          seed=seed, log_every=log_every, work=scratch)
    report = format_ddp(table, logs, command=command_line())
    (folder / "README.md").write_text(report)
    typer.echo(report)
