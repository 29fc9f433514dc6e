"""`flowad export` and `flowad report` end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from flowad.cli import app

runner = CliRunner()


def _data(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    df["site"] = np.repeat(["x", "y"], 100)
    df.loc[df.site == "y", "a"] += 4
    df["y"] = (rng.random(200) < 0.05).astype(int)
    df.loc[df.y == 1, "b"] += 6
    path = folder / "d.csv"
    df.to_csv(path, index=False)
    return path


def test_export_and_report(tmp_path: Path) -> None:
    data = _data(tmp_path)
    small = ["--epochs", "3", "-q"]
    assert runner.invoke(app, ["fit", str(data), "-o", str(tmp_path / "r.flowad"), "--label-column", "y", *small]).exit_code == 0
    assert runner.invoke(app, ["fit", str(data), "-o", str(tmp_path / "a.flowad"), "-m", "adaflow", "--domain-column", "site", "--label-column", "y", *small]).exit_code == 0

    res = runner.invoke(app, ["export", str(tmp_path / "a.flowad"), "-o", str(tmp_path / "a.onnx")])
    assert res.exit_code == 0, res.output
    for name in ("a.onnx", "a.stats.onnx", "a.json"):
        assert (tmp_path / name).stat().st_size > 0

    res = runner.invoke(app, ["report", str(tmp_path / "r.flowad"), str(data), "--labels", "y", "-o", str(tmp_path / "rep.html"), "-q"])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "rep.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "ROC AUC" in page and "<script" not in page
    assert (tmp_path / "rep_curves.png").exists() and (tmp_path / "rep_histogram.png").exists()

    res = runner.invoke(app, ["report", str(tmp_path / "a.flowad"), str(data), "--domain-column", "site", "--labels", "y", "-o", str(tmp_path / "ada.html"), "-q"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ada.html").read_text().count("data:image/png;base64,") == 3
    assert (tmp_path / "ada_domains.png").exists()

    res = runner.invoke(app, ["report", str(tmp_path / "r.flowad"), str(data), "--labels", "site", "-o", str(tmp_path / "bad.html")])
    assert res.exit_code == 2 and "Labels must be 0 (normal) or 1 (anomaly)" in res.output
