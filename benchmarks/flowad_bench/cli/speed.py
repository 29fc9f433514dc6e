"""``flowad bench speed``: fit time per epoch and scoring throughput against peer RealNVPs."""

from __future__ import annotations

from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad.exceptions import InputError
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line, output_folder


@bench_app.command("speed")
@user_errors
def speed(
    data: list[Path] = typer.Option(
        [], "--data", "-d", help="Extra ODDS-style .npz file(s) (array 'X') to time on, besides the synthetic mixture."
    ),
    n_samples: int = typer.Option(10_000, help="Rows of the synthetic Gaussian mixture."),
    n_features: int = typer.Option(16, help="Features of the synthetic Gaussian mixture."),
    repeats: int = typer.Option(5, help="Timed rounds per model (medians are reported)."),
    epochs_per_repeat: int = typer.Option(2, help="Epochs timed in each round."),
    n_couplings: int = typer.Option(6, help="Coupling layers of every flow."),
    hidden: int = typer.Option(64, help="Width of the two hidden layers of every coupling network."),
    batch_size: int = typer.Option(256, help="Minibatch size."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for speed.md and the raw timings (CSV)."),
) -> None:
    """Time flowad's RealNVP, TrimRealNVP and RobustRealNVP against zuko's and nflows' RealNVP
    (same depth, widths, batch size and Adam settings) on one CPU thread, and print the
    per-epoch and scoring ratios measured in this run.
    """
    from flowad_bench.datasets import load_features
    from flowad_bench.speed import SpeedConfig, default_datasets, format_speed_report, run_speed

    folder = None if out is None else output_folder(out)
    config = SpeedConfig(
        n_couplings=n_couplings,
        hidden=(hidden, hidden),
        batch_size=batch_size,
        repeats=repeats,
        epochs_per_repeat=epochs_per_repeat,
    )
    datasets = default_datasets(n_samples, n_features)
    for path in data:
        if not path.is_file():
            raise InputError(f"--data {str(path)!r} is not a file.")
        X = load_features(path)
        datasets[f"{path.stem} {X.shape[0]}x{X.shape[1]}"] = X
    results = run_speed(datasets, config)
    report = format_speed_report(results, config)
    typer.echo(report)
    if folder is not None:
        (folder / "speed.md").write_text(f"# Speed benchmark\n\nCommand: `{command_line()}`\n\n{report}", encoding="utf-8")
        results.to_csv(folder / "speed_raw.csv", index=False, float_format="%.6g")
        typer.echo(f"Wrote {folder / 'speed.md'} and {folder / 'speed_raw.csv'}")
