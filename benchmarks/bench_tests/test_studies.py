"""The study's other experiments: sensitivity, spectral-norm ablation, image-embedding protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flowad_bench.embeddings import embedding_split, run_embeddings
from typer.testing import CliRunner

from flowad.cli import app


def _invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    return result.output


def test_trim_sensitivity_cli(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "trim"
    _invoke(
        [
            "bench",
            "trim-sensitivity",
            "-d",
            str(data_dir),
            "-o",
            str(out),
            "--quick",
            "--trim-ratios",
            "0.05,0.2",
            "--datasets",
            "alpha,beta",
            "--design",
            "resample",
        ]
    )
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 2 * 2
    assert set(rows["setting"]) == {"trim=0.05", "trim=0.2"}
    # the training split was resampled to a true contamination of 0.1
    assert rows["train_contamination"].between(0.09, 0.11).all()
    assert "trim ratio = 0.05" in (out / "table.md").read_text()
    assert (out / "sensitivity.png").exists()


def test_trim_sensitivity_reaches_its_contamination_from_distinct_rows_by_default(data_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    y = (np.arange(1000) % 20 == 0).astype(int)  # 5 % anomalies: 30 of the 600 training rows
    np.savez(data_dir / "sparse.npz", X=rng.normal(size=(1000, 3)) + 4.0 * y[:, None], y=y)
    args = ["bench", "trim-sensitivity", "-d", str(data_dir), "--quick", "--trim-ratios", "0.1", "--datasets", "sparse"]
    _invoke([*args, "-o", str(tmp_path / "fair")])
    _invoke([*args, "-o", str(tmp_path / "resampled"), "--design", "resample"])
    fair, resampled = (pd.read_csv(tmp_path / name / "results.csv") for name in ("fair", "resampled"))
    # fair: all 30 training anomalies and 270 of the 570 normal rows; resampled: every normal row
    # and 63 anomalies drawn from the 30, so some repeat
    assert fair["n_train"].tolist() == [300] and resampled["n_train"].tolist() == [633]
    assert fair["setting"].tolist() == ["trim=0.1,design=subsample"] and resampled["setting"].tolist() == ["trim=0.1"]
    assert np.allclose([fair["train_contamination"].iloc[0], resampled["train_contamination"].iloc[0]], 0.1, atol=0.005)
    assert "Fair design" in (tmp_path / "fair" / "table.md").read_text()


def test_contamination_sensitivity_cli(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cont"
    _invoke(
        [
            "bench",
            "contamination-sensitivity",
            "-d",
            str(data_dir),
            "-o",
            str(out),
            "--quick",
            "--contaminations",
            "0.1,0.3",
            "--methods",
            "RobustRealNVP,IForest",
            "--datasets",
            "alpha",
            "--design",
            "resample",
        ]
    )
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 2 * 2
    for c in (0.1, 0.3):
        got = rows.loc[rows.setting == f"contamination={c:g}", "train_contamination"]
        assert np.allclose(got, c, atol=0.01)
    params = rows.loc[(rows.method == "RobustRealNVP") & (rows.setting == "contamination=0.3"), "params"].iloc[0]
    assert '"contamination": 0.3' in params  # the trim ratio follows the true contamination
    assert (out / "sensitivity.png").exists()


def test_fair_contamination_study_subsamples_to_one_size_and_skips_sets_with_few_anomalies(
    data_dir: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    y = (np.arange(600) % 10 < 3).astype(int)  # 30 % anomalies: 108 in the training split
    X = rng.normal(size=(600, 3)) + 4.0 * y[:, None]
    np.savez(data_dir / "rich.npz", X=X, y=y)
    out = tmp_path / "fair"
    _invoke(["bench", "contamination-sensitivity", "-d", str(data_dir), "-o", str(out), "--quick",
             "--contaminations", "0.1,0.3", "--methods", "IForest", "--variant", "IForest:n_estimators=20",
             "--datasets", "alpha,rich"])
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["dataset"]) == {"rich"}  # alpha (120 rows) cannot reach 0.3 with 100 distinct rows
    assert set(rows["setting"]) == {"contamination=0.1,design=subsample", "contamination=0.3,design=subsample"}
    assert rows["n_train"].nunique() == 1 and rows["n_train"].iloc[0] >= 100
    assert np.allclose(rows.groupby("setting")["train_contamination"].mean(), [0.1, 0.3], atol=0.005)
    variant = rows[rows.method == "IForest[n_estimators=20]"]
    assert len(variant) == 2 and variant["params"].str.contains('"n_estimators": 20').all()
    assert variant["params"].str.contains('"contamination": 0.3').any()  # the study's argument kept
    table = (out / "table.md").read_text()
    assert "alpha" in table and "too few anomalies" in table and "Fair design" in table
    assert "IForest[n_estimators=20]" in table


def test_sn_ablation_reuses_odds_rows(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "abl"
    _invoke(["bench", "odds", "-d", str(data_dir), "-o", str(out), "--quick", "--methods", "TrimRealNVP,RobustRealNVP"])
    output = _invoke(["bench", "sn-ablation", "-d", str(data_dir), "-o", str(out), "--quick"])
    assert "0 run(s) done, 6 resumed" in output
    text = (out / "ablation.md").read_text()
    assert "Robust − Trim" in text and "gamma" in text
    assert (out / "ablation.png").exists()


def _embeddings(
    rng: np.random.Generator, n_per_class: int = 120, n_classes: int = 4, d: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    centers = rng.normal(0.0, 3.0, size=(n_classes, d))
    y = np.repeat(np.arange(n_classes), n_per_class)
    return centers[y] + rng.normal(size=(y.size, d)), y


@pytest.mark.parametrize("mode", ["u", "c"])
def test_embedding_split_protocol(rng: np.random.Generator, mode: str) -> None:
    _, y = _embeddings(rng)
    train, test, y_test, anomaly_class = embedding_split(y, 2, mode, seed=0)
    assert np.intersect1d(train, test).size == 0
    n_normal_train = int((y[train] == 2).sum())
    assert n_normal_train == 72  # 60 % of the class
    assert abs((y[train] != 2).mean() - 0.1) < 0.01
    assert int((y_test == 0).sum()) == int((y_test == 1).sum()) == 48  # balanced test set
    np.testing.assert_array_equal(y_test, (y[test] != 2).astype(int))
    if mode == "c":
        assert anomaly_class != 2 and set(y[train][y[train] != 2]) == {anomaly_class}
    else:
        assert anomaly_class is None and len(set(y[train][y[train] != 2])) > 1


def test_embeddings_cli(tmp_path: Path, rng: np.random.Generator) -> None:
    folder = tmp_path / "emb"
    folder.mkdir()
    X, y = _embeddings(rng)
    np.savez(folder / "toy.npz", X=X, y=y)
    np.savez(folder / "broken.npz", X=X)
    out = tmp_path / "out"
    output = _invoke(
        [
            "bench",
            "embeddings",
            "-d",
            str(folder),
            "-o",
            str(out),
            "--quick",
            "--methods",
            "RobustRealNVP,IForest",
            "--pca-dim",
            "8",
        ]
    )
    assert "skipped 'broken'" in output
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 2 * 2 * 2  # two classes (quick) x two modes x two methods
    assert (rows["pca_dim"] == 8).all()
    assert rows["auc"].min() > 0.8  # well-separated classes
    assert "RobustRealNVP -u" in (out / "table.md").read_text()
    assert (out / "embeddings.png").exists()


def test_embeddings_rejects_bad_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="modes"):
        run_embeddings(tmp_path, tmp_path / "o", modes=["x"])
