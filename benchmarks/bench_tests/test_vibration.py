"""The FEMTO / PRONOSTIA vibration benchmark: protocol, report and command, on a synthetic folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flowad_bench.vibration import (
    CONDITIONS,
    METHODS,
    VibrationBenchConfig,
    published_baselines,
    run_vibration_benchmark,
    run_vibration_task,
    splits,
    summarize,
    vibration_markdown,
)
from typer.testing import CliRunner

from flowad.cli import app
from flowad.features.vibration import femto_features

FEMTO = Path(__file__).resolve().parents[3] / "shared" / "data" / "vibration" / "femto_pronostia"
TINY = VibrationBenchConfig(n_adapt=(5, 10), seeds=(0,), epochs=2, finetune_epochs=1, iforest_trees=10)


@pytest.fixture(scope="module")
def femto_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 conditions x 1 bearing, 40 healthy + 10 late-life snapshots each; late life is louder at 6 kHz."""
    root = tmp_path_factory.mktemp("femto")
    rng = np.random.default_rng(0)
    t = np.arange(2560) / 25_600.0
    lines = ["path,bearing,condition,rpm,load_N,snapshot_idx,life_snapshots,life_fraction,label"]
    for c, cond in enumerate(CONDITIONS):
        lf = np.concatenate([np.linspace(0.05, 0.49, 40), np.linspace(0.85, 0.96, 10)])
        for k, f in enumerate(lf):
            label = int(f >= 0.85)
            sig = (1 + c) * rng.normal(size=(2560, 2)) + (3.0 * label) * np.sin(2 * np.pi * 6000 * t)[:, None]
            rel = f"B{c}/acc_{k:05d}.csv"
            (root / f"B{c}").mkdir(exist_ok=True)
            np.savetxt(root / rel, np.column_stack([np.zeros((2560, 4)), sig]), delimiter=",", fmt="%.4g")
            lines.append(f"{rel},B{c},{cond},1800,4000,{k},50,{f:.4f},{label}")
    (root / "index.csv").write_text("\n".join(lines) + "\n")
    return root


def test_splits_are_nested_and_disjoint(femto_dir: Path) -> None:
    frame = pd.read_csv(femto_dir / "index.csv")
    late = (frame.condition == "C2").to_numpy() & (frame.label == 1).to_numpy()
    parts = splits(frame, "C2", 3, (5, 10), (0.05, 0.5), late)
    assert set(parts[5].adapt) <= set(parts[10].adapt)
    for s in parts.values():
        assert not set(s.adapt) & set(s.test)
        assert (frame.condition.to_numpy()[s.test] == "C2").all()
        np.testing.assert_array_equal(frame.label.to_numpy()[s.test], s.y)
        assert s.y.sum() == 10 and (s.y == 0).sum() == 40 - len(s.adapt)


def test_task_rows_and_metrics(femto_dir: Path) -> None:
    frame, X = femto_features(femto_dir)
    rows = pd.DataFrame(run_vibration_task(frame, X, "C1", 0, TINY))
    late = rows[rows.experiment == "late_life"]
    assert set(late.method) == set(METHODS)
    assert set(rows[rows.experiment == "drift_control"].method) == set(METHODS) - {"nf_finetuned"}
    assert late.auroc.between(0, 1).all() and late.pauc.between(0, 1).all()
    assert late[late.method.isin(["adaflow", "nf_unadapted", "nf_finetuned"])].nll.notna().all()
    assert (late[late.method == "adaflow"].adapt_seconds > 0).all()
    mixtures = late[late.method.isin(["adaflow_mixture", "adaflow_mixture_latent", "adaflow_mixture_likelihood"])]
    assert mixtures.nll.notna().all() and (mixtures.adapt_seconds > 0).all()
    # late life is a strong 6 kHz tone: the per-domain Gaussian finds it
    assert late[late.method == "gauss_target_only"].auroc.min() > 0.9


def test_benchmark_report_and_command(femto_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = run_vibration_benchmark(femto_dir, out, TINY, progress=False)
    assert (out / "results.csv").is_file() and (out / "features.npz").is_file()
    assert len(pd.read_csv(out / "results.csv")) == len(results)
    stamp = (out / "results.csv").stat().st_mtime_ns
    again = run_vibration_benchmark(femto_dir, out, TINY, progress=False)  # resumes: every task is done
    assert len(again) == len(results) and (out / "results.csv").stat().st_mtime_ns == stamp
    s = summarize(results)
    assert set(s.n_seeds) == {1}
    md = vibration_markdown(results, TINY, "flowad bench vibration --test", {})
    assert "published in the data README" in md
    assert "below* their healthy level" in md and "offline benchmark" in md
    assert "AdaFlow against the other methods" in md and "issue" not in md.lower()
    pub = published_baselines()
    late = md[md.index("## AUROC, healthy vs late life") : md.index("## pAUC")]
    assert "N=10 README (published)" in late
    for _, p in pub[(pub.experiment == "late_life") & (pub.n_adapt == 10)].iterrows():
        row = next(line for line in late.splitlines() if line.startswith(f"| {p.method} |"))
        assert f"{p.auroc:.3f}" in row  # each published AUROC sits in its method's row
    for _, p in pub[pub.experiment == "drift_control"].iterrows():  # the README's control, read from the table
        assert f"{p.auroc:.2f}" in md[: md.index("Flow settings")]

    res = CliRunner().invoke(
        app, ["bench", "vibration", "--data", str(femto_dir), "--out", str(tmp_path / "cli"), "--quick", "--no-validate",
              "--n-adapt", "5", "--n-adapt", "10"]
    )
    assert res.exit_code == 0, res.output
    assert "Command: `flowad" in (tmp_path / "cli" / "table.md").read_text()
    assert (tmp_path / "cli" / "auroc.png").stat().st_size > 1000


def test_command_reports_a_missing_folder(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "vibration", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "index.csv" in res.output


@pytest.mark.skipif(not FEMTO.is_dir(), reason="needs ../shared/data/vibration/femto_pronostia")
def test_real_data_simple_baselines_match_the_readme(tmp_path: Path) -> None:
    """On the real data our features and simple baselines land within 0.05 of the README's AUROCs."""
    frame, X = femto_features(FEMTO, tmp_path / "features.npz")
    cfg = VibrationBenchConfig(n_adapt=(10, 100), seeds=(0,), epochs=1, finetune_epochs=1, iforest_trees=50, drift_control=False)
    rows = pd.concat([pd.DataFrame(run_vibration_task(frame, X, t, 0, cfg)) for t in CONDITIONS])
    ours = rows.groupby(["method", "n_adapt"]).auroc.mean()
    pub = published_baselines()
    for _, p in pub[(pub.experiment == "late_life") & pub.n_adapt.isin([10, 100])].iterrows():
        assert abs(ours[(p.method, p.n_adapt)] - p.auroc) < 0.05, (p.method, p.n_adapt, ours[(p.method, p.n_adapt)])


def test_knn_target_scores_are_distances_to_the_nearest_adaptation_row() -> None:
    from flowad_bench.shift import knn_target_scores

    from flowad.preprocessing import standardize

    rng = np.random.default_rng(0)
    adapt, test = rng.normal(size=(30, 4)), rng.normal(size=(50, 4)) * 2
    a, t = standardize(adapt, test)
    ref = np.sqrt(((t[:, None, :] - a[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    np.testing.assert_allclose(knn_target_scores(adapt, test, batch=7), ref, rtol=1e-9, atol=1e-9)
    assert knn_target_scores(adapt, adapt).max() < 1e-6


def test_gaussian_limits_rows_and_the_baseline_match_the_benchmark(femto_dir: Path, tmp_path: Path) -> None:
    from flowad_bench.vibration.limits import ESTIMATORS, gaussian_limits, limits_markdown

    frame, X = femto_features(femto_dir)
    results, distances = gaussian_limits(frame, X, [0], [5, 10])
    assert len(results) == len(CONDITIONS) * 2 * len(ESTIMATORS) and results.auroc.between(0, 1).all()
    assert list(distances.target) == list(CONDITIONS) and (distances.drop(columns="target") >= 0).all().all()
    # the study's baseline row is the benchmark's target-only Gaussian on the same splits
    bench = pd.DataFrame(run_vibration_task(frame, X, "C2", 0, TINY))
    bench = bench[(bench.experiment == "late_life") & (bench.method == "gauss_target_only")].set_index("n_adapt").auroc
    ours = results[(results.target == "C2") & (results.estimator == "target_gaussian")].set_index("n_adapt").auroc
    pd.testing.assert_series_equal(ours.sort_index(), bench.sort_index(), check_names=False)
    md = limits_markdown(results, distances, "flowad bench vibration-limits --test")
    assert "| `oracle_correlation` |" in md and "| C3 |" in md

    res = CliRunner().invoke(app, ["bench", "vibration-limits", "--data", str(femto_dir), "--out", str(tmp_path / "lim"),
                                   "--seeds", "1", "--n-adapt", "5"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "lim" / "results.csv")) == len(CONDITIONS) * len(ESTIMATORS)
    bad = CliRunner().invoke(app, ["bench", "vibration-limits", "--data", str(femto_dir), "--out", str(tmp_path / "x"), "--n-adapt", "2"])
    assert bad.exit_code == 2 and "--n-adapt" in bad.output


def test_source_statistics_and_the_scale_prior_weight() -> None:
    from flowad_bench.vibration.limits import SourceStatistics, correlation, scale_prior_weight

    rng = np.random.default_rng(1)
    A = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5)) * np.arange(1, 6)
    np.testing.assert_allclose(correlation(A), np.corrcoef(A, rowvar=False), atol=1e-12)
    same = SourceStatistics.of([A, A.copy()])  # two identical conditions: no spread, their own correlation
    assert same.profile_spread == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(same.correlation, correlation(A))
    np.testing.assert_allclose(same.log_var_profile, np.log(A.var(axis=0, ddof=1)) - np.log(A.var(axis=0, ddof=1)).mean())
    scaled = SourceStatistics.of([A, A * np.array([1, 1, 1, 1, 8.0])])  # one feature 8x louder in one condition
    assert scaled.profile_spread > 0.1
    # the target's own variances weigh more with more rows and a less reliable prior
    assert scale_prior_weight(5, 0.4) < scale_prior_weight(50, 0.4) < 1
    assert scale_prior_weight(10, 0.0) == 0.0 and scale_prior_weight(10, 1e9) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two source"):
        SourceStatistics.of([A])
