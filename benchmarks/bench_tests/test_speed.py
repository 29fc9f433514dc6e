"""A tiny run of the speed benchmark: a well-formed table with positive, finite timings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flowad_bench.datasets import load_features
from flowad_bench.speed import (
    MODEL_NAMES,
    SpeedConfig,
    default_datasets,
    format_speed_report,
    run_speed,
    speed_ratios,
    summarize_speed,
)


@pytest.fixture(scope="module")
def tiny_results():
    cfg = SpeedConfig(n_couplings=2, hidden=(8, 8), batch_size=64, repeats=2, epochs_per_repeat=1)
    data = default_datasets(n_samples=256, n_features=4)
    return cfg, run_speed(data, cfg)


def test_table_is_well_formed(tiny_results) -> None:
    cfg, res = tiny_results
    assert set(res["model"]) == set(MODEL_NAMES)  # zuko and nflows are installed with the bench extra
    assert len(res) == len(MODEL_NAMES) * cfg.repeats * cfg.epochs_per_repeat
    for col in ("epoch_seconds", "epoch_cpu_seconds", "score_rows_per_s", "score_rows_per_cpu_s"):
        assert np.isfinite(res[col]).all() and (res[col] > 0).all(), col
    med = summarize_speed(res)
    assert len(med) == len(MODEL_NAMES)


def test_ratios_and_report(tiny_results) -> None:
    cfg, res = tiny_results
    ratios = speed_ratios(res)
    assert {"flowad RobustRealNVP / flowad RealNVP", "flowad RealNVP / zuko RealNVP"} <= set(ratios["ratio"])
    assert np.isfinite(ratios[["cpu", "wall"]].to_numpy()).all() and (ratios[["cpu", "wall"]] > 0).all().all()
    report = format_speed_report(res, cfg)
    assert "| flowad RobustRealNVP / flowad RealNVP | epoch time |" in report


def test_thread_count_is_restored() -> None:
    before = torch.get_num_threads()
    run_speed(default_datasets(64, 2), SpeedConfig(n_couplings=1, hidden=(4,), repeats=1, epochs_per_repeat=1), models=["flowad RealNVP"])
    assert torch.get_num_threads() == before


def test_load_features_and_bad_model(tmp_path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((5, 3)), y=np.zeros(5))
    assert load_features(path).shape == (5, 3)
    np.savez(tmp_path / "bad.npz", Z=np.ones(2))
    with pytest.raises(ValueError, match="no array 'X'"):
        load_features(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="model must be one of"):
        run_speed(default_datasets(64, 2), models=["sklearn"])


def test_constant_column_is_timed_not_nan() -> None:
    X = default_datasets(128, 3)["gmm 128x3"]
    X[:, 1] = 5.0
    res = run_speed({"const": X}, SpeedConfig(n_couplings=1, hidden=(4,), repeats=1, epochs_per_repeat=1), models=["flowad RealNVP"])
    assert np.isfinite(res["epoch_seconds"]).all()
