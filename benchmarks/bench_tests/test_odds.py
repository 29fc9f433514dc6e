"""The ODDS runner: rows, resume, reproducibility, reports, CLI end to end."""

from __future__ import annotations

import json
import random
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from flowad_bench.methods import MethodError, count_parameters, parse_methods
from flowad_bench.odds import OddsTask, run_odds, run_task
from flowad_bench.report import average_ranks, odds_markdown, published_auc
from typer.testing import CliRunner

from flowad.cli import app


def test_rows_per_dataset_method_seed(data_dir: Path, tmp_path: Path, fake_methods: None) -> None:
    run = run_odds(data_dir, tmp_path / "out", methods="Random,FirstFeature", seeds=2, progress=False)
    rows = pd.read_csv(run.results_csv)
    assert len(rows) == 4 * 2 * 2
    assert set(rows["task_id"]) == {
        f"{d}|{m}|{s}" for d in ("alpha", "beta", "gamma", "delta") for m in ("Random", "FirstFeature") for s in (0, 1)
    }
    for col in ("auc", "ap", "fit_seconds", "score_seconds", "n_params", "n_train", "n_test", "params", "versions"):
        assert col in rows
    # a perfect scorer gets AUC 1 through the whole pipeline; a random one about 0.5
    assert (rows.loc[rows.method == "FirstFeature", "auc"] == 1.0).all()
    assert abs(rows.loc[rows.method == "Random", "auc"].mean() - 0.5) < 0.25
    sizes = (rows["n_train"] + rows["n_test"]).groupby(rows["dataset"]).unique().map(list).to_dict()
    assert sizes == {"alpha": [120], "beta": [160], "gamma": [200], "delta": [400]}
    assert (rows["n_test"] == (rows["n_train"] + rows["n_test"]) * 0.4).all()
    table = run.table_md.read_text()
    assert "average rank" in table and "(published)" in table
    assert run.plot_png.stat().st_size > 0


def test_resume_skips_finished_rows(data_dir: Path, tmp_path: Path, fake_methods: None) -> None:
    out = tmp_path / "out"
    first = run_odds(data_dir, out, methods="Random", seeds=2, progress=False)
    assert first.summary.n_done == 8 and first.summary.n_skipped == 0
    again = run_odds(data_dir, out, methods="Random", seeds=2, progress=False)
    assert again.summary.n_done == 0 and again.summary.n_skipped == 8
    # drop one row: only that one runs again
    frame = pd.read_csv(first.results_csv)
    frame[frame.task_id != "beta|Random|1"].to_csv(first.results_csv, index=False)
    third = run_odds(data_dir, out, methods="Random", seeds=2, progress=False)
    assert third.summary.n_done == 1
    assert len(pd.read_csv(first.results_csv)) == 8
    # more seeds: only the new ones run
    fourth = run_odds(data_dir, out, methods="Random", seeds=3, progress=False)
    assert fourth.summary.n_done == 4 and fourth.summary.n_skipped == 8


def test_report_only_runs_nothing_and_says_what_is_missing(data_dir: Path, tmp_path: Path, fake_methods: None) -> None:
    out = tmp_path / "out"
    run_odds(data_dir, out, methods="Random", seeds=1, progress=False)
    report = run_odds(data_dir, out, methods="Random,FirstFeature", seeds=1, report_only=True, progress=False)
    assert report.summary.n_done == 0 and len(pd.read_csv(report.results_csv)) == 4  # nothing ran, nothing copied
    table = report.table_md.read_text()
    assert "PARTIAL: 4 of 8 runs have no result yet." in table and "Random" in table


def test_training_rows_never_include_test_rows(data_dir: Path, fake_methods: None) -> None:
    from flowad_bench import odds
    from flowad_bench.datasets import load_dataset
    from flowad_bench.protocol import stratified_split

    ds = load_dataset(data_dir / "gamma.npz")
    captured = {}
    real = odds.fit_and_score

    def spy(method, seed, X_train, X_test, y_test, **kw):  # noqa: ANN001, ANN003, ANN202
        captured["train"], captured["test"] = X_train, X_test
        return real(method, seed, X_train, X_test, y_test, **kw)

    odds.fit_and_score = spy
    try:
        run_task(OddsTask("gamma", str(data_dir / "gamma.npz"), "FirstFeature", seed=3))
    finally:
        odds.fit_and_score = real
    train_idx, test_idx = stratified_split(ds.y, 3)
    np.testing.assert_array_equal(captured["train"], ds.X[train_idx])
    np.testing.assert_array_equal(captured["test"], ds.X[test_idx])
    train_rows = {r.tobytes() for r in captured["train"]}
    assert not any(r.tobytes() in train_rows for r in captured["test"])


def test_flowad_seed_reproduces_and_global_rng_untouched(tmp_path: Path) -> None:
    from bench_tests.conftest import make_dataset

    X, y = make_dataset(np.random.default_rng(5), n=150, d=3, rate=0.2, shift=0.5)
    X[:, 0] -= 10.0 * y  # undo the easy first feature: a hard dataset, so AUC depends on the seed
    np.savez(tmp_path / "hard.npz", X=X, y=y)
    path = str(tmp_path / "hard.npz")
    task = OddsTask("hard", path, "RobustRealNVP", seed=0, quick=True)
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
    a, b = run_task(task), run_task(task)
    assert a["auc"] == b["auc"] and a["ap"] == b["ap"]
    assert a["n_params"] > 0
    assert json.loads(a["params"])["epochs"] == 20
    c = run_task(OddsTask("hard", path, "RobustRealNVP", seed=1, quick=True))
    assert c["auc"] != a["auc"] or c["ap"] != a["ap"]
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and random.getstate() == py_state
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_pyod_deep_baseline_is_quiet_seeded_and_isolated(data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("pyod")
    task = OddsTask("alpha", str(data_dir / "alpha.npz"), "AutoEncoder", seed=0, quick=True)
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
    a, b = run_task(task), run_task(task)
    assert a["auc"] == b["auc"]
    assert a["n_params"] > 0
    assert capsys.readouterr().out == ""
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and random.getstate() == py_state
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_bad_dataset_is_skipped_and_named_in_report(data_dir: Path, tmp_path: Path, fake_methods: None) -> None:
    np.savez(data_dir / "broken.npz", X=np.ones((10, 2)))
    run = run_odds(data_dir, tmp_path / "out", methods="Random", seeds=1, progress=False)
    assert [s.name for s in run.skipped] == ["broken"]
    assert "broken" in run.table_md.read_text()
    assert run.summary.n_done == 4


def test_failing_task_is_recorded_not_fatal(
    data_dir: Path, tmp_path: Path, fake_methods: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench_tests import _fakes

    def boom(self, X):  # noqa: ANN001, ANN202
        return np.full(X.shape[0], np.nan)

    monkeypatch.setattr(_fakes.RandomScorer, "decision_function", boom)
    run = run_odds(data_dir, tmp_path / "out", methods="Random,FirstFeature", seeds=1, progress=False)
    assert len(run.summary.failures) == 4 and run.summary.n_done == 4
    assert "NaN" in (tmp_path / "out" / "results_failures.csv").read_text()


def test_quick_selects_three_smallest_datasets(data_dir: Path, tmp_path: Path, fake_methods: None) -> None:
    run = run_odds(data_dir, tmp_path / "out", methods="FirstFeature", quick=True, progress=False)
    rows = pd.read_csv(run.results_csv)
    assert sorted(rows["dataset"]) == ["alpha", "beta", "gamma"]
    assert set(rows["seed"]) == {0} and rows["quick"].all()


def test_parse_methods_groups_and_errors() -> None:
    assert parse_methods("flowad") == ["RealNVP", "TrimRealNVP", "RobustRealNVP"]
    assert parse_methods("robustrealnvp, IForest") == ["RobustRealNVP", "IForest"]
    with pytest.raises(MethodError, match="unknown method 'Nope'"):
        parse_methods("Nope")


def test_average_ranks() -> None:
    means = pd.DataFrame({"a": [0.9, 0.8, 0.7], "b": [0.8, 0.8, 0.9], "c": [0.5, np.nan, 0.1]}, index=["x", "y", "z"])
    ranks = average_ranks(means)
    assert ranks.to_dict() == {"a": 1.5, "b": 1.5, "c": 3.0}  # row y (missing c) is left out


def test_published_numbers_sit_beside_ours_labelled_and_unchanged() -> None:
    pub = published_auc()
    assert {"RobustRealNVP", "RealNVP", "IForest"} <= set(pub.columns)
    assert pub.stack().between(0.0, 1.0).all()
    name = str(pub.index[0])
    frame = pd.DataFrame(
        {
            "dataset": [name, name],
            "method": ["RobustRealNVP", "LOF"],
            "seed": [0, 0],
            "auc": [0.25, 0.5],
            "ap": [0.1, 0.2],
            "fit_seconds": [1.0, 1.0],
            "score_seconds": [0.0, 0.0],
            "n_params": [10.0, np.nan],
        }
    )
    lines = odds_markdown(frame, methods=["RobustRealNVP", "LOF"]).splitlines()
    header = next(line for line in lines if line.startswith("| dataset |"))  # the ROC AUC table comes first
    row = next(line for line in lines if line.startswith(f"| {name} |"))
    cells = dict(zip(*([c.strip() for c in line.strip("|").split("|")] for line in (header, row)), strict=True))
    assert cells["RobustRealNVP"] == "0.250 ± 0.000"
    assert cells["RobustRealNVP (published)"] == f"{pub.loc[name, 'RobustRealNVP']:.3f}"  # the shipped number
    assert "LOF (published)" not in cells  # the study published no LOF column


def test_count_parameters_none_for_non_neural() -> None:
    class Plain:
        pass

    assert count_parameters(Plain()) is None


def test_cli_quick_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "quick"
    np.savez(data_dir / "aaa_one_class.npz", X=np.ones((30, 2)), y=np.zeros(30))
    args = [
        "bench",
        "odds",
        "--data",
        str(data_dir),
        "--out",
        str(out),
        "--quick",
        "--methods",
        "flowad,IForest,ECOD",
        "--no-progress",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 3 * 5
    assert rows["auc"].between(0.0, 1.0).all()
    # the shifted anomalies are easy: the trimmed flows and the baselines separate them well; the
    # untrimmed RealNVP also fits the anomalies of its contaminated training split, so it may lag
    assert rows.loc[rows.method != "RealNVP", "auc"].min() > 0.9
    assert rows.loc[rows.method == "RealNVP", "auc"].min() > 0.8
    assert (out / "table.md").exists() and (out / "auc.png").exists()
    assert "15 run(s) done" in result.output
    assert "skipped 'aaa_one_class'" in result.output and "single class" in result.output
    assert "aaa_one_class" in (out / "table.md").read_text()
    again = CliRunner().invoke(app, args)
    assert "0 run(s) done, 15 resumed" in again.output


def test_cli_parallel_jobs(data_dir: Path, tmp_path: Path) -> None:
    def run(out: Path, jobs: int) -> pd.Series:
        args = ["bench", "odds", "-d", str(data_dir), "-o", str(out), "--seeds", "1", "--methods", "IForest,ECOD"]
        result = CliRunner().invoke(app, [*args, "--jobs", str(jobs), "--no-progress"])
        assert result.exit_code == 0, result.output
        return pd.read_csv(out / "results.csv").set_index("task_id")["auc"].sort_index()

    pd.testing.assert_series_equal(run(tmp_path / "par", 2), run(tmp_path / "ser", 1))


def test_cli_records_the_command_as_typed(
    data_dir: Path, tmp_path: Path, fake_methods: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "my out"
    args = ["bench", "odds", "-d", str(data_dir), "-o", str(out), "-m", "FirstFeature", "--quick", "--no-progress"]
    monkeypatch.setattr(sys, "argv", ["/venv/bin/flowad", *args])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    typed = "flowad " + " ".join(shlex.quote(a) for a in args)
    assert f"```\n{typed}\n```" in (out / "table.md").read_text()
