"""The study's protocol: splits, standardization (the library's rule), metrics, contamination resampling."""

from __future__ import annotations

import numpy as np
import pytest
from flowad_bench.odds import fit_and_score
from flowad_bench.protocol import (
    contamination_train_size,
    evaluate,
    resample_contamination,
    stratified_split,
    subsample_contamination,
)

from flowad.exceptions import InputError
from flowad.preprocessing import standardize


def test_split_is_stratified_60_40(rng: np.random.Generator) -> None:
    y = (rng.random(1000) < 0.07).astype(int)
    train, test = stratified_split(y, seed=3)
    assert abs(test.size - 400) <= 1
    # each class keeps its proportion in both parts, up to rounding
    for cls in (0, 1):
        n_cls = int((y == cls).sum())
        assert abs(int((y[test] == cls).sum()) - 0.4 * n_cls) <= 1
    assert abs(y[train].mean() - y.mean()) < 0.005


def test_split_has_no_test_rows_in_training(rng: np.random.Generator) -> None:
    y = (rng.random(300) < 0.2).astype(int)
    train, test = stratified_split(y, seed=0)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(300))


def test_seeds_reproduce_and_differ(rng: np.random.Generator) -> None:
    y = (rng.random(300) < 0.2).astype(int)
    a, b = stratified_split(y, seed=4), stratified_split(y, seed=4)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    c = stratified_split(y, seed=5)
    assert not np.array_equal(a[1], c[1])


def test_standardize_uses_training_statistics_only(rng: np.random.Generator) -> None:
    X_train = rng.normal(3.0, 2.0, size=(200, 4))
    X_test = rng.normal(50.0, 9.0, size=(50, 4))
    Z_train, Z_test = standardize(X_train, X_test)
    np.testing.assert_allclose(Z_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z_train.std(axis=0), 1.0, atol=1e-12)
    expected = (X_test - X_train.mean(axis=0)) / X_train.std(axis=0)
    np.testing.assert_allclose(Z_test, expected)
    # the test data has no influence on the transform of either part
    Z_train2, _ = standardize(X_train, X_test * 100.0)
    np.testing.assert_array_equal(Z_train, Z_train2)


def test_standardize_keeps_constant_columns_finite() -> None:
    X = np.column_stack([np.ones(10), np.arange(10.0)])
    (Z,) = standardize(X)
    assert np.isfinite(Z).all() and np.all(Z[:, 0] == 0.0)


def test_benchmark_standardizes_pyod_inputs_with_train_statistics(rng, fake_methods) -> None:  # noqa: ANN001
    from flowad_bench import methods as bench_methods

    from bench_tests import _fakes

    seen = {}

    class Spy(_fakes.FirstFeatureScorer):
        def fit(self, X, y=None):  # noqa: ANN001, ANN201
            seen["train"] = np.array(X)
            return self

        def decision_function(self, X):  # noqa: ANN001, ANN201
            seen["test"] = np.array(X)
            return np.asarray(X)[:, 0]

    _fakes.Spy = Spy
    try:
        m = bench_methods.METHODS["Random"]
        bench_methods.METHODS["Random"] = type(m)("Random", "test", "bench_tests._fakes", "Spy", True, m.kwargs)
        X_train, X_test = rng.normal(5.0, 3.0, (80, 2)), rng.normal(5.0, 3.0, (20, 2))
        y_test = np.r_[np.zeros(15), np.ones(5)]
        fit_and_score("Random", 0, X_train, X_test, y_test)
    finally:
        del _fakes.Spy
    np.testing.assert_allclose(seen["train"].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(seen["test"], (X_test - X_train.mean(0)) / X_train.std(0))


def test_random_scorer_auc_is_half_and_perfect_is_one(rng: np.random.Generator) -> None:
    y = (rng.random(20000) < 0.3).astype(int)
    auc, ap = evaluate(y, rng.random(y.size))
    assert abs(auc - 0.5) < 0.02
    assert abs(ap - y.mean()) < 0.02
    auc, ap = evaluate(y, y + 0.1 * rng.random(y.size))
    assert auc == 1.0 and ap == 1.0


def test_evaluate_rejects_nan_scores_and_one_class() -> None:
    with pytest.raises(InputError, match="NaN"):
        evaluate(np.array([0, 1]), np.array([0.0, np.nan]))
    with pytest.raises(InputError, match="single class"):
        evaluate(np.array([0, 0]), np.array([0.0, 1.0]))


@pytest.mark.parametrize("c", [0.1, 0.25, 0.4])
def test_resample_contamination_hits_target_from_training_rows_only(rng, c) -> None:  # noqa: ANN001
    y = (rng.random(500) < 0.08).astype(int)
    train, test = stratified_split(y, seed=1)
    idx = resample_contamination(y, train, c, seed=2)
    assert np.isin(idx, train).all()
    assert not np.isin(idx, test).any()
    n_normal = int((y[train] == 0).sum())
    assert int((y[idx] == 0).sum()) == n_normal
    assert abs(y[idx].mean() - c) < 0.01
    assert np.array_equal(idx, resample_contamination(y, train, c, seed=2))


def test_subsample_contamination_is_fair_distinct_nested_and_seeded(rng) -> None:  # noqa: ANN001
    y = (rng.random(2000) < 0.2).astype(int)
    train, test = stratified_split(y, seed=1)
    n = contamination_train_size(y, train, 0.1, 0.4)
    n_anom, n_norm = int(y[train].sum()), int((y[train] == 0).sum())
    assert n == min(int(n_anom / 0.4), int(n_norm / 0.9))
    sets = {c: subsample_contamination(y, train, c, seed=3, low=0.1, high=0.4) for c in (0.1, 0.2, 0.3, 0.4)}
    for c, idx in sets.items():
        assert idx.size == n and np.unique(idx).size == n  # one size, no repeated row
        assert np.isin(idx, train).all() and not np.isin(idx, test).any()
        assert int(y[idx].sum()) == round(c * n)
    anomalies = [set(idx[y[idx] == 1]) for idx in sets.values()]
    normals = [set(idx[y[idx] == 0]) for idx in sets.values()]
    assert all(a <= b for a, b in zip(anomalies[:-1], anomalies[1:], strict=True))
    assert all(a >= b for a, b in zip(normals[:-1], normals[1:], strict=True))
    assert np.array_equal(sets[0.2], subsample_contamination(y, train, 0.2, seed=3, low=0.1, high=0.4))
    assert not np.array_equal(sets[0.2], subsample_contamination(y, train, 0.2, seed=4, low=0.1, high=0.4))


def test_subsample_contamination_refuses_too_few_anomalies_and_bad_levels(rng) -> None:  # noqa: ANN001
    y = (np.arange(300) % 20 == 0).astype(int)  # 5 % anomalies: 9 in the training split
    train, _ = stratified_split(y, seed=0)
    with pytest.raises(InputError, match="too few anomalies"):
        subsample_contamination(y, train, 0.1, seed=0, low=0.1, high=0.4)
    with pytest.raises(InputError, match="low <= contamination <= high"):
        subsample_contamination(y, train, 0.5, seed=0, low=0.1, high=0.4)
