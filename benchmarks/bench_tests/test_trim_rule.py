"""``flowad bench trim-rule``: label-free rules for the trim ratio, scored against the test AUC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flowad_bench.trim_rule import gaussian_outlier_fraction, held_out_split, rule_choices, rule_summary, run_trim_rule

from flowad.exceptions import InputError


def test_held_out_split_is_seeded_disjoint_and_a_fifth() -> None:
    train = np.arange(10, 510)
    fit, val = held_out_split(train, seed=3)
    assert np.intersect1d(fit, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([fit, val])), train)
    assert val.size == 100
    again = held_out_split(train, seed=3)
    assert np.array_equal(fit, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, held_out_split(train, seed=4)[1])


def test_outlier_fraction_finds_a_planted_cluster_and_little_in_a_gaussian(rng: np.random.Generator) -> None:
    mix = rng.normal(size=(6, 6))
    normal = rng.normal(size=(2000, 6)) @ mix
    assert gaussian_outlier_fraction(normal) < 0.05  # 2.5 % beyond the 0.975 quantile, up to noise
    cluster = rng.normal(0.0, 0.3, size=(140, 6)) + np.full(6, 8.0)  # 6.5 % of the rows (under the 0.1 trim), far off
    with_constant = np.column_stack([np.vstack([normal, cluster]), np.full(2140, 3.0)])  # ignored column
    assert 0.065 <= gaussian_outlier_fraction(with_constant) < 0.12  # the cluster and the normal rows' own tail
    with pytest.raises(InputError, match="constant"):
        gaussian_outlier_fraction(np.ones((50, 2)))


def _frame() -> pd.DataFrame:
    """Two datasets × one seed × trims 0.1 / 0.2 with known held-out NLLs and AUCs."""
    rows = []
    # a: trim 0.2 better (0.9 vs 0.8); held-out NLL at 0.1 prefers 0.1, at 0.2 and 0.3 prefers 0.2
    # b: trim 0.1 better (0.7 vs 0.6); every held-out level prefers 0.1; outlier fraction 0.18 -> 0.2
    for ds, src, t, nll, frac, auc in [
        ("a", "tab", 0.1, (1.0, 2.0, 3.0), 0.05, 0.8),
        ("a", "tab", 0.2, (1.5, 1.0, 2.0), 0.05, 0.9),
        ("b", "emb", 0.1, (1.0, 1.0, 1.0), 0.18, 0.7),
        ("b", "emb", 0.2, (2.0, 2.0, 2.0), 0.18, 0.6),
    ]:
        rows.append(
            {
                "dataset": ds,
                "source": src,
                "seed": 0,
                "n_features": 2,
                "trim_ratio": t,
                "val_nll_0.1": nll[0],
                "val_nll_0.2": nll[1],
                "val_nll_0.3": nll[2],
                "outlier_fraction": frac,
                "auc": auc,
            }
        )
    return pd.DataFrame(rows)


def test_rules_choose_from_their_signal_and_are_scored_against_the_better_trim() -> None:
    choices = rule_choices(_frame()).set_index("dataset")
    assert choices.loc["a", "held-out NLL 0.1"] == 0.1 and choices.loc["a", "held-out NLL 0.2"] == 0.2
    assert choices.loc["b", "held-out NLL 0.3"] == 0.1
    assert choices.loc["a", "Gaussian outlier fraction"] == 0.1 and choices.loc["b", "Gaussian outlier fraction"] == 0.2
    assert choices.loc["a", "held_out_gap"] == pytest.approx(-0.5) and choices.loc[
        "b", "held_out_gap"
    ] == pytest.approx(0.5)
    summary = rule_summary(choices.reset_index()).set_index("choice")
    assert summary.loc["trim 0.1 (fixed)", "mean AUC, all (2)"] == pytest.approx(0.75)
    assert summary.loc["trim 0.2 (fixed)", "mean AUC, tab (1)"] == pytest.approx(0.9)
    assert summary.loc["held-out NLL 0.2", "mean AUC, all (2)"] == pytest.approx(0.8)  # right on both
    assert summary.loc["held-out NLL 0.2", "chose the better trim"] == "2/2"
    assert summary.loc["Gaussian outlier fraction", "mean AUC, all (2)"] == pytest.approx(0.7)  # wrong on both
    assert summary.loc["Gaussian outlier fraction", "chose the better trim"] == "0/2"
    assert summary.loc["held-out NLL 0.1", "chose 0.2"] == "0/2"


def test_a_non_finite_held_out_nll_is_never_chosen() -> None:
    frame = _frame()
    frame.loc[(frame.dataset == "b") & (frame.trim_ratio == 0.1), "val_nll_0.2"] = np.nan
    assert rule_choices(frame).set_index("dataset").loc["b", "held-out NLL 0.2"] == 0.2


def test_run_writes_rows_table_plot_and_resumes(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_trim_rule(data_dir, out, datasets=["alpha", "gamma"], seeds=1, epochs=2, progress=False)
    assert run.summary.n_done == 4 and not run.summary.failures
    rows = pd.read_csv(out / "results.csv")
    assert sorted(zip(rows.dataset, rows.trim_ratio, strict=True)) == [
        ("alpha", 0.1),
        ("alpha", 0.2),
        ("gamma", 0.1),
        ("gamma", 0.2),
    ]
    assert set(rows.n_fit + rows.n_val) == {72, 120}  # the protocol's 60 % training split of 120 and 200 rows
    assert np.isfinite(rows[["val_nll_0.1", "val_nll_0.3", "outlier_fraction", "auc"]].to_numpy()).all()
    table = (out / "table.md").read_text()
    assert "| held-out NLL 0.2 |" in table and "| data | alpha |" in table
    assert (out / "rules.png").stat().st_size > 0
    again = run_trim_rule(data_dir, out, datasets=["alpha", "gamma"], seeds=1, epochs=2, progress=False)
    assert again.summary.n_done == 0 and again.summary.n_skipped == 4
    assert (out / "table.md").read_text() == table

