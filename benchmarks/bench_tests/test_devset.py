"""The development-set options of the ODDS runner: several data folders, the row cap, the
small-data track, method variants, reused rows, and methods that cannot run on a dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flowad_bench.datasets import DatasetError, load_folders
from flowad_bench.methods import MethodError, get_method, parse_methods, parse_variant, variant_label
from flowad_bench.odds import run_odds
from flowad_bench.protocol import stratified_split, subsample_rows, subsample_train
from flowad_bench.report import wins_ties_losses
from typer.testing import CliRunner

from bench_tests.conftest import make_dataset
from flowad.cli import app


@pytest.fixture
def second_dir(tmp_path: Path) -> Path:
    """A second data folder, as ``adbench_dev`` beside ``odds``."""
    rng = np.random.default_rng(2)
    folder = tmp_path / "more"
    folder.mkdir()
    for name, n, d in [("epsilon", 300, 5), ("zeta", 140, 2)]:
        X, y = make_dataset(rng, n=n, d=d)
        np.savez(folder / f"{name}.npz", X=X, y=y)
    return folder


# --- the row cap ------------------------------------------------------------------------------


def test_subsample_rows_keeps_strata_is_fixed_and_leaves_small_data_alone() -> None:
    y = (np.random.default_rng(0).random(5000) < 0.03).astype(int)
    rows = subsample_rows(y, 1000)
    assert rows.size == 1000 and np.unique(rows).size == 1000 and np.all(np.diff(rows) > 0)
    assert abs(int(y[rows].sum()) - round(1000 * y.mean())) <= 1  # the anomaly fraction is kept
    assert np.array_equal(rows, subsample_rows(y, 1000))  # the same rows every call (fixed seed)
    assert not np.array_equal(rows, subsample_rows(y, 1000, seed=1))
    assert np.array_equal(subsample_rows(y, 5000), np.arange(5000))
    # a rare class keeps at least two rows, so the 60/40 split stays stratifiable
    rare = np.zeros(5000, dtype=int)
    rare[:3] = 1
    assert int(rare[subsample_rows(rare, 500)].sum()) == 2


# --- the small-data track ---------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.002, 0.01, 0.1, 0.3])
def test_subsample_train_size_strata_and_at_least_five_anomalies(rate: float) -> None:
    y = (np.random.default_rng(1).random(4000) < rate).astype(int)
    y[:8] = 1  # every training split has some anomalies
    train, test = stratified_split(y, seed=3)
    idx = subsample_train(y, train, 200, seed=3)
    assert idx.size == 200 and np.isin(idx, train).all() and not np.isin(idx, test).any()
    n_split = int(y[train].sum())
    expected = max(round(200 * n_split / train.size), min(5, n_split))
    assert int(y[idx].sum()) == expected >= min(5, n_split)
    assert np.array_equal(idx, subsample_train(y, train, 200, seed=3))
    assert not np.array_equal(idx, subsample_train(y, train, 200, seed=4))


def test_subsample_train_keeps_small_splits_and_few_anomalies() -> None:
    y = np.zeros(1000, dtype=int)
    y[:3] = 1
    train = np.arange(0, 1000, 2)  # holds anomalies 0 and 2 only
    idx = subsample_train(y, train, 50, seed=0)
    assert idx.size == 50 and int(y[idx].sum()) == 2  # all the split has (fewer than 5)
    assert np.array_equal(subsample_train(y, train[:40], 50, seed=0), train[:40])
    with pytest.raises(ValueError, match="train_rows must be >= 10"):
        subsample_train(y, train, 8, seed=0)


# --- several folders, cap and track through the runner ------------------------------------------


def test_two_folders_make_one_run_with_sources(
    data_dir: Path, second_dir: Path, tmp_path: Path, fake_methods: None
) -> None:
    run = run_odds([data_dir, second_dir], tmp_path / "out", methods="Random,FirstFeature", seeds=1, progress=False)
    rows = pd.read_csv(run.results_csv)
    sources = rows.groupby("dataset")["source"].first().to_dict()
    assert sources == {"alpha": "data", "beta": "data", "gamma": "data", "delta": "data", "epsilon": "more", "zeta": "more"}
    table = run.table_md.read_text()
    assert "| epsilon | more |" in table and "| alpha | data |" in table
    assert "mean AUC, data** (4 datasets)" in table and "mean AUC, more** (2 datasets)" in table
    assert "6 datasets × 1 seeds × 2 methods" in table
    # names are looked up across folders; a name in no folder, or in two, is an error
    only = run_odds([data_dir, second_dir], tmp_path / "o2", methods="Random", seeds=1, datasets=["zeta", "beta"], progress=False)
    assert set(pd.read_csv(only.results_csv)["dataset"]) == {"zeta", "beta"}
    with pytest.raises(DatasetError, match="no dataset file for \\['nope'\\]"):
        load_folders([data_dir, second_dir], ["nope"])
    np.savez(second_dir / "alpha.npz", X=np.ones((20, 2)), y=np.r_[np.zeros(18), np.ones(2)])
    with pytest.raises(DatasetError, match="same name in several folders"):
        load_folders([data_dir, second_dir])


def test_max_rows_and_train_rows_in_rows_and_task_ids(data_dir: Path, tmp_path: Path, fake_methods: None) -> None:
    full = run_odds(data_dir, tmp_path / "full", methods="FirstFeature", seeds=2, max_rows=150, progress=False)
    rows = pd.read_csv(full.results_csv, keep_default_na=False).set_index("task_id")
    assert rows.loc["alpha|FirstFeature|0", "n_rows_used"] == 120  # under the cap: id of the plain benchmark
    assert rows.loc["delta|FirstFeature|1|max_rows=150", "n_rows_used"] == 150
    assert rows.loc["delta|FirstFeature|1|max_rows=150", "setting"] == "max_rows=150"
    assert (rows["n_train"] + rows["n_test"] == rows["n_rows_used"]).all()
    small = run_odds(data_dir, tmp_path / "small", methods="FirstFeature", seeds=2, max_rows=150, train_rows=40, progress=False)
    rows = pd.read_csv(small.results_csv).set_index("task_id")
    assert rows.loc["delta|FirstFeature|0|max_rows=150,train_rows=40", "n_train"] == 40
    assert rows.loc["delta|FirstFeature|0|max_rows=150,train_rows=40", "n_test"] == 60  # test split unchanged
    assert rows.loc["alpha|FirstFeature|0|train_rows=40", "n_test"] == 48
    assert (rows["n_train"] == 40).all() and (rows["auc"] == 1.0).all()
    assert (rows["train_contamination"] * 40 >= 5 - 1e-9).all()  # >= 5 anomalies: every split has 7 or more
    assert "small-data track: training splits subsampled to 40 rows" in small.table_md.read_text()


# --- variants --------------------------------------------------------------------------------


def test_parse_variant_literals_and_labels() -> None:
    label, method, overrides = parse_variant("robustrealnvp:trim_ratio=0.2,hidden=(32, 32),activation='tanh'")
    assert method == "RobustRealNVP"
    assert overrides == (("trim_ratio", 0.2), ("hidden", (32, 32)), ("activation", "tanh"))
    assert label == "RobustRealNVP[trim_ratio=0.2,hidden=(32, 32),activation='tanh']"
    assert label == variant_label(method, overrides)
    assert get_method(label).name == "RobustRealNVP"
    assert parse_variant("IForest:n_estimators=50")[0] == "IForest[n_estimators=50]"
    for bad, match in [
        ("RobustRealNVP", "NAME:key=value"),
        ("RobustRealNVP:trim=0.1", "has no argument"),
        ("RobustRealNVP:trim_ratio=abc", "Python literal"),
        ("RobustRealNVP:trim_ratio", "is not key=value"),
        ("RobustRealNVP:epochs=1,epochs=2", "given twice"),
        ("Nope:x=1", "unknown method"),
    ]:
        with pytest.raises(MethodError, match=match):
            parse_variant(bad)


def test_variants_are_their_own_rows_with_their_overrides(data_dir: Path, tmp_path: Path, fake_methods: None) -> None:
    run = run_odds(data_dir, tmp_path / "out", methods="Random", variants=["Random:random_state=123"], seeds=2, progress=False)
    rows = pd.read_csv(run.results_csv)
    assert set(rows["method"]) == {"Random", "Random[random_state=123]"}
    variant = rows[rows.method == "Random[random_state=123]"]
    assert variant["params"].str.contains('"random_state": 123').all()
    plain = rows[rows.method == "Random"].set_index(["dataset", "seed"])["auc"]
    assert not np.allclose(variant.set_index(["dataset", "seed"])["auc"].loc[plain.index], plain)  # other scores
    assert "| Random[random_state=123] |" in run.table_md.read_text().replace(" | Random |", " |")
    assert parse_methods("none") == []
    with pytest.raises(ValueError, match="no method to run"):
        run_odds(data_dir, tmp_path / "none", methods="none", seeds=1, progress=False)


def test_cli_repeated_data_and_variant_and_one_line_errors(data_dir: Path, second_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["bench", "odds", "-d", str(data_dir), "-d", str(second_dir), "-o", str(out), "--seeds", "1",
            "--methods", "ECOD", "--variant", "IForest:n_estimators=20", "--max-rows", "150", "--train-rows", "60",
            "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 6 * 2 and set(rows["method"]) == {"ECOD", "IForest[n_estimators=20]"}
    assert (rows["n_train"] <= 60).all() and rows["auc"].between(0.0, 1.0).all()
    bad = CliRunner().invoke(app, [*args[:-1], "--variant", "IForest:n_trees=3", "--no-progress"])
    assert bad.exit_code == 2 and bad.output.startswith("flowad: error: variant 'IForest:n_trees=3': IForest has no")
    assert len(bad.output.strip().splitlines()) == 1


# --- reused rows --------------------------------------------------------------------------------


def test_reuse_copies_rows_instead_of_running_them(data_dir: Path, tmp_path: Path, fake_methods: None) -> None:
    base = run_odds(data_dir, tmp_path / "base", methods="Random", seeds=2, progress=False)
    run = run_odds(
        data_dir, tmp_path / "new", methods="Random", variants=["Random:random_state=5"], seeds=2,
        reuse=[base.results_csv], progress=False,
    )
    assert run.summary.n_skipped == 8 and run.summary.n_done == 8
    rows = pd.read_csv(run.results_csv)
    old = pd.read_csv(base.results_csv).set_index("task_id")["auc"]
    pd.testing.assert_series_equal(rows.set_index("task_id")["auc"].loc[old.index], old)
    with pytest.raises(ValueError, match="does not exist"):
        run_odds(data_dir, tmp_path / "x", methods="Random", seeds=1, reuse=[tmp_path / "missing.csv"], progress=False)


def test_reuse_of_rows_without_a_source_column_gives_them_their_folder(data_dir: Path, tmp_path: Path,
                                                                     fake_methods: None) -> None:
    base = run_odds(data_dir, tmp_path / "base", methods="Random", seeds=1, progress=False)
    old = pd.read_csv(base.results_csv).drop(columns=["source"])  # a CSV from before the column existed
    old.to_csv(base.results_csv, index=False)
    report = run_odds(data_dir, tmp_path / "new", methods="Random", seeds=1, reuse=[base.results_csv],
                      report_only=True, progress=False)
    rows = pd.read_csv(report.results_csv)
    assert report.summary.n_done == 0 and len(rows) == 4  # copied, not run
    assert (rows["source"] == data_dir.name).all()
    pd.testing.assert_series_equal(rows.set_index("task_id")["auc"], old.set_index("task_id")["auc"])


# --- a method that cannot run on a dataset ----------------------------------------------------


def test_mcd_with_more_features_than_rows_is_a_reported_failure_not_fatal(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    folder = tmp_path / "wide"
    folder.mkdir()
    for name, n, d in [("narrow", 100, 3), ("wide", 60, 50)]:
        X, y = make_dataset(rng, n=n, d=d)
        np.savez(folder / f"{name}.npz", X=X, y=y)
    run = run_odds(folder, tmp_path / "out", methods="IForest,MCD", seeds=2, progress=False)
    assert run.summary.n_done == 6 and [t for t, _ in run.summary.failures] == ["wide|MCD|0", "wide|MCD|1"]
    failures = pd.read_csv(tmp_path / "out" / "results_failures.csv")
    assert failures["error"].str.contains("MCD: needs more training rows than features, got 36 rows and 50").all()
    table = run.table_md.read_text()
    wide = next(line for line in table.splitlines() if line.startswith("| wide |"))
    assert wide.rstrip(" |").endswith("–")
    assert "**mean AUC** (1 datasets)" in table  # the mean over datasets where every method ran ...
    assert "**mean where the method ran** (datasets)" in table and "(2) |" in table and "(1) |" in table  # ... and each
    assert "Task wide|MCD|0 failed" in table


def test_wins_ties_losses() -> None:
    means = pd.DataFrame({"IForest": [0.8, 0.7, 0.6], "a": [0.9, 0.7, 0.5], "b": [0.81, np.nan, 0.6]})
    assert wins_ties_losses(means, "IForest") == {"IForest": "–", "a": "1/1/1", "b": "1/1/0"}


def test_pca_keeps_the_training_rank_so_collinear_columns_do_not_break_it() -> None:
    from flowad_bench.odds import fit_and_score

    rng = np.random.default_rng(4)
    X, y = make_dataset(rng, n=300, d=4)
    X = np.column_stack([X, X[:, 1], np.ones(300), X[:, 0] - X[:, 2]])  # duplicate, constant, combination
    train, test = stratified_split(y, seed=0)
    result = fit_and_score("PCA", 0, X[train], X[test], y[test])  # PyOD's default: every score infinite
    assert '"n_components": 4' in result["params"] and result["auc"] > 0.9
