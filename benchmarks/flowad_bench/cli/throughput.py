"""``flowad bench throughput``: scoring rows/s of PyTorch, ONNX and IForest (issue 5)."""

from __future__ import annotations

from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad.exceptions import InputError
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line, output_folder


@bench_app.command("throughput")
@user_errors
def throughput(
    out: Path = typer.Option(Path("results/throughput"), "--out", "-o", help="Folder for throughput.csv and README.md."),
    rows: int = typer.Option(100_000, help="Rows scored per round (resampled from the shipped thyroid data's training split)."),
    repeats: int = typer.Option(5, help="Timed rounds per scorer."),
    seed: int = typer.Option(0, help="Seed of the models and the resampling."),
) -> None:
    """Scoring throughput (rows/s, one thread) of three RobustRealNVP sizes under PyTorch and
    onnxruntime vs PyOD IForest, on the shipped thyroid data (60/40 split; test AUC beside it).
    """
    import numpy as np
    from sklearn.model_selection import train_test_split

    from flowad.datasets import load_example
    from flowad_bench.throughput import format_throughput, run_throughput

    if rows < 1 or repeats < 1:
        raise InputError(f"--rows and --repeats must be >= 1, got {rows} and {repeats}.")
    folder = output_folder(out)
    X, y = load_example("thyroid")
    X_train, X_test, _, y_test = train_test_split(X, y, test_size=0.4, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    X_score = X_train[rng.integers(0, len(X_train), rows)]
    table = run_throughput(X_train, X_score, X_test=X_test, y_test=y_test, repeats=repeats, seed=seed)
    table.to_csv(folder / "throughput.csv", index=False)
    report = format_throughput(table, n_rows=rows, n_features=X.shape[1], command=command_line())
    (folder / "README.md").write_text(report)
    typer.echo(report)
