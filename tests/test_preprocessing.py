"""flowad.preprocessing: robust location/scale, the relative constant-column test, the fallback
scale of few-valued columns and the fit-time winsorizing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from flowad.preprocessing import CONSTANT_RTOL, INLIER_BOUND, MAD_TO_STD, TRAIN_CLIP, Standardization, standardize


@pytest.fixture
def normal() -> np.ndarray:
    return np.random.default_rng(0).normal(loc=[3.0, -2.0, 0.0], scale=[1.0, 5.0, 0.1], size=(200, 3))


def test_without_far_rows_robust_is_exactly_mean_and_std(normal: np.ndarray) -> None:
    st = Standardization.fit(normal)
    assert st.method == "robust"
    np.testing.assert_array_equal(st.mean, normal.mean(axis=0))
    np.testing.assert_array_equal(st.scale, normal.std(axis=0))


def test_rows_beyond_the_inlier_bound_are_left_out(normal: np.ndarray) -> None:
    X = normal.copy()
    X[0, 0] = 3.0 + 1000.0  # far beyond 20 MAD units: left out
    X[1, 0] = 3.0 - 10.0  # within: kept
    st = Standardization.fit(X)
    keep = np.arange(len(X)) != 0
    assert st.mean[0] == pytest.approx(X[keep, 0].mean(), rel=1e-12)
    assert st.scale[0] == pytest.approx(X[keep, 0].std(), rel=1e-12)
    np.testing.assert_array_equal(st.scale[1:], X[:, 1:].std(axis=0))
    pilot = MAD_TO_STD * np.median(np.abs(X[:, 0] - np.median(X[:, 0])))
    assert 10.0 < INLIER_BOUND * pilot < 1000.0


@pytest.mark.parametrize("extreme", [1e6, 1e30, -1e300])
def test_a_few_extreme_rows_do_not_move_the_statistics(normal: np.ndarray, extreme: float) -> None:
    clean = Standardization.fit(normal)
    dirty = Standardization.fit(np.vstack([normal, np.full((3, 3), extreme)]))
    # The 3 rows lie beyond the inlier bound: the statistics are the clean rows' exactly.
    np.testing.assert_allclose(dirty.mean, clean.mean, rtol=1e-12)
    np.testing.assert_allclose(dirty.scale, clean.scale, rtol=1e-12)
    assert not dirty.constant.any()


def test_a_planted_30_percent_cluster_is_ignored() -> None:
    rng = np.random.default_rng(1)
    clean = rng.normal(size=(140, 2))
    X = np.vstack([clean, rng.normal(50.0, 0.1, size=(60, 2))])
    st = Standardization.fit(X)
    # The median and MAD pilot (50 % breakdown) puts the cluster beyond the inlier bound.
    np.testing.assert_allclose(st.mean, clean.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(st.scale, clean.std(axis=0), rtol=1e-12)
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
    # The MAD is 0: the pilot scale is the median step away from the mode (1e6), so every row
    # is an inlier, and the column gets its mean and std.
    assert st.mean[0] == pytest.approx(X.mean(), rel=1e-12) and st.scale[0] == pytest.approx(X.std(), rel=1e-12)
    Z = st.transform(X)
    assert np.isfinite(Z).all() and np.abs(Z).max() < 10


@pytest.mark.parametrize("p", [0.05, 0.2])
def test_binary_columns_with_zero_iqr_keep_their_unit_step(p: float) -> None:
    rng = np.random.default_rng(3)
    b = (rng.uniform(size=400) < p).astype(float)
    col = np.column_stack([b, rng.normal(size=400)])
    st = Standardization.fit(col)
    # MAD 0, pilot scale 1 (the unit step): no row is left out, mean and std as usual.
    assert st.mean[0] == pytest.approx(b.mean(), rel=1e-12) and st.scale[0] == pytest.approx(b.std(), rel=1e-12)


def test_a_few_valued_column_with_one_huge_value_keeps_its_spread() -> None:
    rng = np.random.default_rng(4)
    col = np.where(rng.uniform(size=500) < 0.8, 0.0, rng.normal(5.0, 1.0, size=500))
    col[0] = 1e30
    st = Standardization.fit(col[:, None])
    # The 1e30 row is left out (not a std of 4e28, which would squash the other values to 0).
    assert st.scale[0] == pytest.approx(col[1:].std())


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


def test_values_beyond_float64_become_inf_without_a_warning() -> None:
    # The fuzzer's case: half the rows near 0 (a tiny robust scale), one row at 1e78.
    X = np.array([[-2.27e-268], [1.54e16], [-2.7e-293], [3.97e16], [0.0], [-2.27e-268],
                  [-2.79e16], [1.09e78], [-2.27e-268], [-2.27e-268]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st = Standardization.fit(X)
        Z = st.transform(X)
    assert np.isinf(Z).any() and np.isfinite(Standardization.clip_training(Z)).all()


def test_a_detector_fits_the_fuzzer_case() -> None:
    from flowad import RealNVP

    X = np.array([[-2.27e-268], [1.54e16], [-2.7e-293], [3.97e16], [0.0], [-2.27e-268],
                  [-2.79e16], [1.09e78], [-2.27e-268], [-2.27e-268]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det = RealNVP(n_couplings=1, hidden=(4,), epochs=1, dtype="float64", device="cpu", random_state=0).fit(X)
    assert np.isfinite(det.decision_scores_).all()


# ------------------------------------------------------------ robust covariance, dequantization
def test_robust_covariance_ignores_a_planted_30_percent_cluster() -> None:
    from flowad.preprocessing import robust_covariance

    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, 0.0], [0.0, 0.0, 0.5]])
    normal = rng.multivariate_normal(np.zeros(3), cov, size=700)
    X = np.vstack([normal, rng.normal(6.0, 0.1, size=(300, 3))])
    loc, est = robust_covariance(X, trim_ratio=0.35)
    assert np.abs(loc).max() < 0.15
    # the trimmed covariance shrinks the normal rows' spread a little but keeps its shape
    corr = est[0, 1] / np.sqrt(est[0, 0] * est[1, 1])
    assert abs(corr - 0.6) < 0.1 and 0.6 < est[0, 0] < 1.1
    plain_loc, _ = robust_covariance(X, trim_ratio=0.0)  # no trimming: the cluster pulls the mean
    assert plain_loc.min() > 1.5


def test_robust_covariance_is_positive_definite_with_more_columns_than_rows() -> None:
    from flowad.preprocessing import robust_covariance

    X = np.random.default_rng(1).normal(size=(40, 120))
    _, est = robust_covariance(X, trim_ratio=0.1)
    assert est.shape == (120, 120) and np.allclose(est, est.T)
    assert np.linalg.eigvalsh(est).min() > 0


def test_robust_covariance_refuses_rows_that_determine_no_covariance() -> None:
    """Two rows, or as many rows on each of two points: Ledoit–Wolf's shrinkage is 0 and the
    covariance stays singular; that is said in words, not left to a LinAlgError or an infinite
    score. Unequal counts on the two points (what trimming leaves) get a positive shrinkage."""
    from flowad.exceptions import InputError
    from flowad.preprocessing import robust_covariance

    two_points = np.repeat([[0.0, 1.0, 2.0], [1.0, 3.0, 2.5]], 20, axis=0)
    for Z, trim in ((two_points[[0, -1]], 0.0), (two_points[[0, -1]], 0.4), (two_points, 0.0)):
        with pytest.raises(InputError, match="do not determine a covariance.*too few distinct values"):
            robust_covariance(Z, trim)
    _, cov = robust_covariance(two_points, 0.2)
    assert np.linalg.eigvalsh(cov).min() > 1e-6


def test_robust_covariance_without_trimming_is_ledoit_wolf() -> None:
    from sklearn.covariance import LedoitWolf

    from flowad.preprocessing import robust_covariance

    X = np.random.default_rng(2).normal(size=(300, 4))
    loc, est = robust_covariance(X, trim_ratio=0.0)
    ref = LedoitWolf().fit(X)
    np.testing.assert_allclose(loc, ref.location_)
    np.testing.assert_allclose(est, ref.covariance_)


def test_dequantization_widths_find_the_lattice_columns() -> None:
    from flowad.preprocessing import dequantization_widths

    rng = np.random.default_rng(3)
    n = 400
    X = np.c_[
        rng.normal(size=n),  # continuous: 0
        rng.integers(0, 2, n) * 0.5,  # binary on {0, 0.5}: 0.5
        rng.integers(0, 10, n) * 3.0,  # counts with step 3: 3
        np.r_[np.arange(n // 2 + 5), np.zeros(n - n // 2 - 5)],  # more distinct values than half the rows: 0
    ]
    np.testing.assert_allclose(dequantization_widths(X), [0.0, 0.5, 3.0, 0.0])


def test_training_bounds_leave_heavy_tails_alone_and_bring_back_gross_values() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    sparse = np.where(rng.random(n) < 0.9, 0.0, rng.lognormal(0.0, 1.5, n))  # ReLU-like: mostly zeros, heavy tail
    gaussian = rng.normal(size=n)
    gross = rng.normal(size=n)
    gross[:10] = 1e30  # 0.5 % of the rows astronomically far out
    X = np.c_[sparse, gaussian, gross]
    st = Standardization.fit(X)
    Z = st.transform(X)
    bounds = Standardization.training_bounds(Z)
    assert bounds[1] == TRAIN_CLIP  # a Gaussian column keeps the plain bound
    assert np.abs(Z[:, 0]).max() > TRAIN_CLIP and np.abs(Z[:, 0]).max() <= bounds[0]  # the whole sparse tail kept
    assert bounds[2] == TRAIN_CLIP and np.abs(Standardization.clip_training(Z, bounds)[:, 2]).max() == TRAIN_CLIP


def test_training_bounds_never_exceed_the_float32_safe_limit() -> None:
    from flowad.preprocessing import MAX_TRAIN_CLIP

    Z = np.r_[np.zeros(50), np.full(50, 1e300)][:, None]
    assert Standardization.training_bounds(Z)[0] == MAX_TRAIN_CLIP
