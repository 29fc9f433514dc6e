"""``flowad bench validation-nll``: label-free evidence on RobustRealNVP's epochs and Lipschitz bound."""

from __future__ import annotations

from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line


@bench_app.command("validation-nll")
@user_errors
def validation_nll(
    data: Path = typer.Option(..., "--data", "-d", help="Folder of ODDS-style .npz files (only the array X is read)."),
    out: Path = typer.Option(
        Path("results/defaults_evidence"), "--out", "-o", help="Folder for validation_nll.csv (resumed) and table.md."
    ),
    datasets: str = typer.Option(
        None, "--datasets", help="Comma-separated file stems (default: the defaults sweep's eight development datasets)."
    ),
    seed: int = typer.Option(0, help="Seed of the split and of every model."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes (one torch thread each)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Held-out trimmed NLL of RobustRealNVP with 25-200 epochs and lipschitz_k 1, 2, 4, on a random
    split of each dataset's rows; no label is read."""
    from flowad_bench.validation_nll import DATASETS, run_validation_nll

    names = DATASETS if datasets is None else [d for d in datasets.replace(" ", ",").split(",") if d]
    summary, table = run_validation_nll(
        data, out, datasets=names, seed=seed, jobs=jobs, progress=not no_progress, command=command_line()
    )
    for tid, err in summary.failures:
        typer.echo(f"FAILED {tid}: {err}", err=True)
    typer.echo(
        f"validation-nll: {summary.n_done} fit(s) done, {summary.n_skipped} resumed, {len(summary.failures)} failed; "
        f"table: {table}"
    )
