"""`flowad demo` end to end on the shipped data (few epochs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowad import load
from flowad.cli import app


def test_demo_writes_table_plots_and_models(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--epochs", "2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "results.md").read_text()
    assert f"Command: `flowad demo --out {tmp_path} --seed 1 --epochs 2 --n-adapt 50 --threads 1`" in table
    aucs = [float(line.split("|")[2]) for line in table.splitlines()
            if line.startswith("| ") and "ROC AUC" not in line and not line.split("|")[1].strip().isdigit()
            and not line.startswith("| rows")]
    assert len(aucs) == 16 and all(0.0 <= a <= 1.0 for a in aucs)
    for name in ("contamination_two_moons.png", "contamination_thyroid.png", "shift_two_moons.png", "shift_thyroid.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    det = load(tmp_path / "adaflow_thyroid.flowad")
    assert "new-site" in det.domains_
    assert "Who won" in result.output and result.output.count("- Contaminated training") == 2
    assert result.output.count("- Domain shift") == 2


def test_demo_bad_setting_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--n-adapt", "1"])
    assert result.exit_code == 2
    assert result.output.strip() == "flowad: error: n_adapt must be an int >= 2, got 1."


def test_demo_without_matplotlib_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("flowad: error: ")
    assert 'pip install "flowad[plots]"' in result.output


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output and "bench" in result.output
