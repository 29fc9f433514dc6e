"""``flowad bench throughput``: scoring rows/s of PyTorch, ONNX and IForest (issue 5)."""

from __future__ import annotations

from pathlib import Path

import typer

from flowad.cli._common import user_errors
from flowad_bench.cli import bench_app


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

    X, y = load_example("thyroid")
    X_train, X_test, _, y_test = train_test_split(X, y, test_size=0.4, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    X_score = X_train[rng.integers(0, len(X_train), rows)]
    table = run_throughput(X_train, X_score, X_test=X_test, y_test=y_test, repeats=repeats, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "throughput.csv", index=False)
    command = f"flowad bench throughput --out {out} --rows {rows} --repeats {repeats} --seed {seed}"
    report = format_throughput(table, n_rows=rows, n_features=X.shape[1], command=command)
    (out / "README.md").write_text(report)
    typer.echo(report)
