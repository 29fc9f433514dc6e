"""The scoring-throughput benchmark: every scorer timed on the same rows, ratios to IForest."""

from __future__ import annotations

import numpy as np
import pytest
from flowad_bench.throughput import format_throughput, run_throughput

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    X_test = np.vstack([rng.normal(size=(60, 4)), rng.normal(6.0, 1.0, size=(20, 4))])
    y_test = np.r_[np.zeros(60), np.ones(20)]
    archs = {"2 x (8,)": {"n_couplings": 2, "hidden": (8,)}, "2 x (4,)": {"n_couplings": 2, "hidden": (4,)}}
    return run_throughput(X, X[:500], X_test=X_test, y_test=y_test, architectures=archs, repeats=1, epochs=2, seed=0)


def test_every_scorer_is_timed_against_iforest(table):
    assert list(table.runtime) == ["PyTorch", "onnxruntime"] * 2 + ["scikit-learn"]
    assert (table.rows_per_s > 0).all() and np.isfinite(table.seconds).all()
    np.testing.assert_allclose(table.rows_per_s * table.seconds, 300)  # X[:500] has 300 rows
    assert table.loc[table.model == "PyOD IForest", "vs_iforest"].item() == pytest.approx(1.0)


def test_auc_is_measured_and_runtimes_agree(table):
    assert table.auc.between(0.0, 1.0).all()
    assert table.loc[table.model == "PyOD IForest", "auc"].item() > 0.9  # a shift of 6 sigma is easy
    for _, rows in table[table.model != "PyOD IForest"].groupby("model"):
        assert np.ptp(rows.auc) < 1e-9  # PyTorch and ONNX score alike


def test_without_labels_the_auc_is_missing_not_invented():
    X = np.random.default_rng(1).normal(size=(100, 3))
    t = run_throughput(X, X, architectures={"1 x (4,)": {"n_couplings": 1, "hidden": (4,)}}, repeats=1, epochs=1)
    assert t.auc.isna().all()


def test_report_lists_every_scorer(table):
    md = format_throughput(table, n_rows=300, n_features=4, command="flowad bench throughput")
    assert md.count("\n| ") == len(table) + 1  # header + one line per scorer
    assert "RobustRealNVP 2 x (4,) (onnxruntime)" in md and "| 1.0x |" in md
