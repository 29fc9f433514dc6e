"""``flowad export`` (ONNX) and ``flowad report`` (HTML)."""

from __future__ import annotations

from pathlib import Path

import typer

from flowad.cli import app
from flowad.cli._common import check_output, require_column, user_errors
from flowad.cli._model import _features
from flowad.detectors import load
from flowad.io.tables import read_table


@app.command()
@user_errors
def export(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by flowad fit."),
    output: Path = typer.Option(..., "--output", "-o", help="ONNX scoring graph to write (.onnx)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Export a model to ONNX for devices without PyTorch.

    Writes the scoring graph (input x; outputs anomaly_score, log_density), a JSON sidecar
    (features, thresholds, domain statistics) and, for AdaFlow, the statistics graph that
    adapts to a new domain (input x; outputs each AdaBN layer's mean and variance), which
    the scoring graph takes as inputs.
    """
    from flowad.export import export_onnx

    check_output(output)
    files = export_onnx(load(model_file), output)
    if not quiet:
        typer.echo("Wrote " + ", ".join(str(p) for p in files.values()))


@app.command()
@user_errors
def report(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file."),
    data: Path = typer.Argument(..., help="Data to score: CSV, Parquet, .npy or .npz."),
    output: Path = typer.Option(Path("report.html"), "--output", "-o", help="HTML file (PNGs are written beside it)."),
    labels: str = typer.Option(None, help="Label column (1 = anomaly) for ROC / precision-recall curves."),
    domain_column: str = typer.Option(None, help="Column giving each row's domain (multi-domain models)."),
    columns: str = typer.Option(None, help="Comma-separated feature columns (default: the model's own feature names)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Write a self-contained HTML report: score histogram and threshold, per-domain
    distributions, and ROC / precision-recall curves with AUC / AP when labels are given."""
    from flowad.cli._common import split_columns
    from flowad.report import write_report

    check_output(output)
    det = load(model_file)
    frame = read_table(data)
    y = require_column(frame, labels, "Label")
    domains = require_column(frame, domain_column, "Domain")
    X = _features(frame, det, split_columns(columns), [c for c in (labels, domain_column) if c])
    files = write_report(det, X, output, labels=y, domains=domains, title=f"flowad report: {data.name}")
    if not quiet:
        typer.echo("Wrote " + ", ".join(str(p) for p in files.values()))
