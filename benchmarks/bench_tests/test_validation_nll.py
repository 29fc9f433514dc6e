"""``flowad bench validation-nll``: label-free split, one row per dataset × setting, resumable, table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flowad_bench import validation_nll
from flowad_bench.validation_nll import label_free_split
from typer.testing import CliRunner

from flowad.cli import app


@pytest.fixture
def unlabeled_dir(tmp_path: Path, rng: np.random.Generator) -> Path:
    """Two .npz files holding only X: a run that read labels would fail on them."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name, n in [("small", 150), ("other", 200)]:
        np.savez(folder / f"{name}.npz", X=rng.normal(size=(n, 3)))
    return folder


@pytest.fixture
def few_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation_nll, "SETTINGS", ({"epochs": 2}, {"epochs": 3, "lipschitz_k": 2.0}))


def test_split_is_seeded_disjoint_and_sized_from_row_count_only() -> None:
    fit, val = label_free_split(1000, seed=3)
    assert np.intersect1d(fit, val).size == 0
    assert fit.size + val.size == 600 and val.size == 120  # 60 % training part, 20 % of it held out
    again = label_free_split(1000, seed=3)
    assert np.array_equal(fit, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, label_free_split(1000, seed=4)[1])


def test_command_writes_rows_table_and_resumes(unlabeled_dir: Path, tmp_path: Path, few_settings: None) -> None:
    out = tmp_path / "out"
    args = ["bench", "validation-nll", "-d", str(unlabeled_dir), "-o", str(out), "--datasets", "small,other", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 fit(s) done" in result.output
    rows = pd.read_csv(out / "validation_nll.csv")
    assert sorted(zip(rows.dataset, rows.epochs, rows.lipschitz_k, strict=True)) == [
        ("other", 2, 1.0), ("other", 3, 2.0), ("small", 2, 1.0), ("small", 3, 2.0)
    ]
    assert set(rows.n_fit + rows.n_val) == {90, 120}  # 60 % of 150 and of 200 rows
    assert np.isfinite(rows[["val_trimmed_nll", "train_trimmed_nll"]].to_numpy()).all()
    table = (out / "table.md").read_text()
    assert "| small (72, 3) |" in table and "e3 k2" in table
    for line in table.splitlines():
        if line.startswith(("| small", "| other")):
            assert line.count("**") == 2  # the best setting of each dataset in bold
    again = CliRunner().invoke(app, args)
    assert "0 fit(s) done, 4 resumed" in again.output


def test_trimmed_nll_drops_the_worst_tenth() -> None:
    scores = np.r_[np.zeros(9), 1000.0]
    assert validation_nll._trimmed(scores) == 0.0
