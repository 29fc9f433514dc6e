"""flowad.preprocessing: robust location/scale, the relative constant-column test, the fallback
scale of few-valued columns and the fit-time winsorizing."""

from __future__ import annotations

import numpy as np
import pytest

from flowad.preprocessing import CONSTANT_RTOL, MAD_TO_STD, TRAIN_CLIP, Standardization, standardize


@pytest.fixture
def normal() -> np.ndarray:
    return np.random.default_rng(0).normal(loc=[3.0, -2.0, 0.0], scale=[1.0, 5.0, 0.1], size=(200, 3))


def test_robust_is_median_and_scaled_mad(normal: np.ndarray) -> None:
    st = Standardization.fit(normal)
    assert st.method == "robust"
    med = np.median(normal, axis=0)
    np.testing.assert_array_equal(st.mean, med)
    np.testing.assert_allclose(st.scale, MAD_TO_STD * np.median(np.abs(normal - med), axis=0))
    # For normal data the robust scale estimates the standard deviation.
    np.testing.assert_allclose(st.scale, normal.std(axis=0), rtol=0.2)


@pytest.mark.parametrize("extreme", [1e6, 1e30, -1e300])
def test_a_few_extreme_rows_do_not_move_the_statistics(normal: np.ndarray, extreme: float) -> None:
    clean = Standardization.fit(normal)
    dirty = Standardization.fit(np.vstack([normal, np.full((3, 3), extreme)]))
    # 3 rows of 203 move the median and the MAD by at most a few order statistics.
    assert np.all(np.abs(dirty.mean - clean.mean) < 0.05 * clean.scale)
    np.testing.assert_allclose(dirty.scale, clean.scale, rtol=0.1)
    assert not dirty.constant.any()


def test_a_planted_30_percent_cluster_moves_the_statistics_less_than_one_scale() -> None:
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(140, 2)), rng.normal(50.0, 0.1, size=(60, 2))])
    st = Standardization.fit(X)
    assert np.all(np.abs(st.mean) < 1.0)  # the mean would be at 15
    assert np.all(st.scale < 3.0)  # the std would be about 23
    assert np.all(Standardization.fit(X, method="standard").scale > 20.0)


def test_the_constant_test_is_relative_to_the_magnitude() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 2))
    tiny = np.column_stack([1e-12 + 1e-13 * rng.normal(size=100), X[:, 1]])
    assert not Standardization.fit(tiny).constant.any()
    for method in ("robust", "standard"):
        st, small = Standardization.fit(X, method=method), Standardization.fit(X * 1e-30, method=method)
        assert not small.constant.any()
        np.testing.assert_allclose(small.transform(X * 1e-30), st.transform(X), rtol=1e-10, atol=1e-12)
    # Equal values up to rounding are constant whatever their magnitude.
    for value in (0.0, 0.1, 1e-30, 7e20):
        col = np.full((50, 1), value) * (1 + CONSTANT_RTOL / 10 * rng.uniform(-1, 1, size=(50, 1)))
        st = Standardization.fit(np.hstack([col, X[:50]]))
        assert st.constant.tolist() == [True, False, False]
        assert st.scale[0] == 1.0


def test_a_column_constant_except_a_few_rows_gets_a_finite_scale() -> None:
    X = np.zeros((203, 1))
    X[:3] = 1e6
    st = Standardization.fit(X)
    assert not st.constant[0]
    assert st.mean[0] == 0.0 and st.scale[0] == 1e6  # the typical step away from the mode
    Z = st.transform(X)
    assert np.isfinite(Z).all() and Z.max() == 1.0


@pytest.mark.parametrize("p", [0.05, 0.2])
def test_binary_columns_with_zero_iqr_keep_their_unit_step(p: float) -> None:
    rng = np.random.default_rng(3)
    b = (rng.uniform(size=400) < p).astype(float)
    col = np.column_stack([b, rng.normal(size=400)])
    st = Standardization.fit(col)
    assert st.scale[0] == 1.0 and st.mean[0] == 0.0
    assert set(np.unique(st.transform(col)[:, 0])) == {0.0, 1.0}


def test_a_few_valued_column_with_one_huge_value_keeps_its_spread() -> None:
    rng = np.random.default_rng(4)
    col = np.where(rng.uniform(size=500) < 0.8, 0.0, rng.normal(5.0, 1.0, size=500))
    col[0] = 1e30
    st = Standardization.fit(col[:, None])
    assert 3.0 < st.scale[0] < 7.0  # not 1e28, which would squash the other values to 0


def test_standard_method_is_mean_and_std(normal: np.ndarray) -> None:
    st = Standardization.fit(normal, method="standard")
    np.testing.assert_array_equal(st.mean, normal.mean(axis=0))
    np.testing.assert_array_equal(st.scale, normal.std(axis=0))
    (Z,) = standardize(normal)  # the benchmarks' PyOD baselines keep mean and std
    np.testing.assert_array_equal(Z, (normal - normal.mean(axis=0)) / normal.std(axis=0))
    Z_train, Z_test = standardize(normal, normal[:5], method="robust")
    np.testing.assert_array_equal(Z_test, Standardization.fit(normal).transform(normal[:5]))


def test_drop_constant_and_log_scale_sum() -> None:
    X = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 2.0], [2.0, 5.0, 4.0], [4.0, 5.0, 1.0]])
    st = Standardization.fit(X)
    assert st.constant.tolist() == [False, True, False]
    assert st.transform(X, drop_constant=True).shape == (4, 2)
    assert st.log_scale_sum == pytest.approx(np.log(st.scale[[0, 2]]).sum())


def test_clip_training_winsorizes_a_copy() -> None:
    Z = np.array([[0.5, -1e6], [1e30, 3.0]])
    out = Standardization.clip_training(Z)
    assert out.tolist() == [[0.5, -TRAIN_CLIP], [TRAIN_CLIP, 3.0]]
    assert Z[1, 0] == 1e30


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        Standardization.fit(np.ones((3, 2)), method="minmax")
