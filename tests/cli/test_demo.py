"""`flowad demo` end to end on the shipped data (few epochs)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flowad import load
from flowad.cli import app
from flowad.datasets import load_example


def test_demo_writes_table_plot_and_models(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| thyroid") or line.startswith("| cardio")]
    assert len(rows) == 6
    aucs = [float(r.split("|")[3]) for r in rows]
    assert all(0.0 <= a <= 1.0 for a in aucs)
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    det = load(tmp_path / "robust_realnvp_thyroid.flowad")
    X, _ = load_example("thyroid")
    assert det.decision_function(X[:5]).shape == (5,)
    assert "Mean ROC AUC" in result.output


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output and "bench" in result.output
