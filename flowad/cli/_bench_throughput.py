"""``flowad bench throughput``: scoring rows/s of PyTorch, ONNX and IForest (issue 5)."""

from __future__ import annotations

from pathlib import Path

import typer

from flowad.cli import bench_app
from flowad.cli._common import user_errors


@bench_app.command("throughput")
@user_errors
def throughput(
    out: Path = typer.Option(Path("results/throughput"), "--out", "-o", help="Folder for throughput.csv and README.md."),
    rows: int = typer.Option(100_000, help="Rows scored per round (resampled from the shipped thyroid data)."),
    repeats: int = typer.Option(5, help="Timed rounds per scorer."),
    seed: int = typer.Option(0, help="Seed of the models and the resampling."),
) -> None:
    """Scoring throughput (rows/s, one thread): flowad under PyTorch and onnxruntime vs PyOD IForest."""
    import numpy as np

    from flowad.bench.throughput import format_throughput, run_throughput
    from flowad.datasets import load_example

    X, _ = load_example("thyroid")
    rng = np.random.default_rng(seed)
    X_score = X[rng.integers(0, len(X), rows)]
    table = run_throughput(X, X_score, repeats=repeats, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "throughput.csv", index=False)
    command = f"flowad bench throughput --out {out} --rows {rows} --repeats {repeats} --seed {seed}"
    report = format_throughput(table, n_rows=rows, n_features=X.shape[1], command=command)
    (out / "README.md").write_text(report)
    typer.echo(report)
