"""The adaptation-cost benchmark (flowad_bench.adaptation) on a tiny setting: every figure is
measured and reported, and the stationary rows are what they claim to be."""

from __future__ import annotations

import numpy as np
from flowad_bench.adaptation import AdaptationBenchConfig, _framed_rows, format_report, run_adaptation_benchmark


def test_framed_rows_are_overlapping_windows_of_one_signal() -> None:
    rng = np.random.default_rng(0)
    rows = _framed_rows(rng, 30, 5, rng.normal(size=(3, 4)), 1.0, 2.0)
    assert rows.shape == (30, 20)
    np.testing.assert_allclose(rows[1:, :16], rows[:-1, 4:])  # row t+1 starts one frame later


def test_tiny_run_reports_every_ratio() -> None:
    cfg = AdaptationBenchConfig(n_features=44, n_adapt=40, n_train_per_domain=60, train_epochs=1, finetune_epochs=1,
                                repeats=1, memory_rows=(), stationary_frames=11)
    result = run_adaptation_benchmark(cfg)
    t = result["timing"]
    for key in ("adapt_over_score", "adapt_frames_over_score_frames", "adapt_stationary_over_score_stationary",
                "finetune_over_adapt"):
        assert np.isfinite(t[key]) and t[key] > 0, key
    report = format_report(result)
    assert "stationary rows" in report and "rows far from stationary" in report
    assert result["memory"] == []
