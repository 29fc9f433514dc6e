"""The study autoencoder of the benchmark package: seeded, scikit-learn style, errors a user can act on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flowad_bench.baselines import AutoEncoderBaseline, TrimmedGaussian
from sklearn.base import clone

from flowad.exceptions import InputError, NotFittedError

SMALL = {"hidden": (16, 4), "epochs": 30, "batch_size": 64}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal rows on a 2-D subspace of 6 features (with a scale per column); outliers off it."""
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 6))
    scale = np.array([1.0, 10.0, 0.1, 3.0, 1.0, 50.0])
    train = (rng.normal(size=(400, 2)) @ basis + 0.05 * rng.normal(size=(400, 6))) * scale
    normal = (rng.normal(size=(50, 2)) @ basis + 0.05 * rng.normal(size=(50, 6))) * scale
    outliers = (rng.normal(size=(10, 2)) @ basis + 3.0 * rng.normal(size=(10, 6))) * scale
    return train, normal, outliers


def test_same_seed_same_scores_other_seed_other_scores(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    train, normal, _ = data
    a = AutoEncoderBaseline(**SMALL, random_state=3).fit(train).decision_function(normal)
    b = AutoEncoderBaseline(**SMALL, random_state=3).fit(train).decision_function(normal)
    c = AutoEncoderBaseline(**SMALL, random_state=4).fit(train).decision_function(normal)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_global_random_generators_are_left_alone(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    train, _, _ = data
    torch.manual_seed(7)
    np.random.seed(7)
    AutoEncoderBaseline(**SMALL, random_state=0).fit(train)
    after = torch.rand(2), np.random.rand(2)
    torch.manual_seed(7)
    np.random.seed(7)
    np.testing.assert_array_equal(after[0].numpy(), torch.rand(2).numpy())
    np.testing.assert_array_equal(after[1], np.random.rand(2))


def test_scores_are_finite_errors_and_higher_for_planted_outliers(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    train, normal, outliers = data
    ae = AutoEncoderBaseline(**SMALL, random_state=0).fit(train, domains=np.repeat(["a", "b"], 200))
    s_normal, s_out = ae.decision_function(normal), ae.decision_function(outliers, domain="a")
    assert s_normal.dtype == np.float64 and np.isfinite(s_normal).all() and (s_normal >= 0).all()
    assert s_out.min() > np.median(s_normal) and s_out.mean() > 5 * s_normal.mean()
    np.testing.assert_array_equal(ae.score_samples(normal), -s_normal)
    assert len(ae.history_) == SMALL["epochs"] and ae.history_[-1] < ae.history_[0]
    assert 0.0 < ae.predict(train).mean() <= 0.1  # contamination 0.05 sets the threshold on the training scores
    assert ae.predict(outliers).sum() >= 8


def test_decision_function_is_the_mean_squared_error_on_standardized_features(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    train, normal, _ = data
    ae = AutoEncoderBaseline(**SMALL, random_state=0).fit(train)
    z = torch.as_tensor((normal - train.mean(axis=0)) / train.std(axis=0), dtype=torch.float32)
    with torch.no_grad():
        expected = (ae.net_.net(z) - z).square().mean(dim=1).double().numpy()
    np.testing.assert_allclose(ae.decision_function(normal), expected, rtol=1e-6)
    widths = [m.out_features for m in ae.net_.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [16, 4, 16, 6]


def test_scikit_learn_conventions(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    train, normal, _ = data
    ae = AutoEncoderBaseline(**SMALL, random_state=1)
    twin = clone(ae)
    assert twin.get_params() == ae.get_params() and AutoEncoderBaseline().get_params()["hidden"] == (128, 64)
    np.testing.assert_array_equal(ae.fit(train).decision_function(normal), twin.fit(train).decision_function(normal))


def test_errors_a_user_can_act_on(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    train, normal, _ = data
    with pytest.raises(NotFittedError, match="fit"):
        AutoEncoderBaseline().decision_function(normal)
    with pytest.raises(InputError, match="hidden"):
        AutoEncoderBaseline(hidden=()).fit(train)
    with pytest.raises(InputError, match="one label per row"):
        AutoEncoderBaseline(**SMALL).fit(train, domains=["a"] * 3)
    with pytest.raises(InputError, match="constant"):
        AutoEncoderBaseline(**SMALL).fit(np.ones((20, 3)))
    ae = AutoEncoderBaseline(**SMALL, random_state=0).fit(train)
    with pytest.raises(InputError, match="6 features"):
        ae.decision_function(normal[:, :4])
    with pytest.warns(UserWarning, match="constant"):
        X = train.copy()
        X[:, 2] = 1.0
        one_less = AutoEncoderBaseline(**SMALL, random_state=0).fit(X)
    assert np.isfinite(one_less.decision_function(normal)).all()


# --- TrimmedGaussian: RobustRealNVP's Gaussian core without the flow ---------------------------


def test_trimmed_gaussian_scores_are_squared_mahalanobis_distances_of_its_fit() -> None:
    from scipy.spatial.distance import mahalanobis

    from flowad.preprocessing import Standardization, robust_covariance

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 3)) * np.array([1.0, 20.0, 0.5]) + 7.0
    X = np.c_[X, np.full(300, 4.0)]  # a constant column is left out
    g = TrimmedGaussian(trim_ratio=0.2).fit(X)
    Z = Standardization.fit(X, method="robust").transform(X, drop_constant=True)
    loc, cov = robust_covariance(Z, 0.2)
    np.testing.assert_allclose(g.location_, loc)
    np.testing.assert_allclose(g.covariance_, cov)
    inv = np.linalg.inv(cov)
    expected = [mahalanobis(z, loc, inv) ** 2 for z in Z[:20]]
    np.testing.assert_allclose(g.decision_function(X[:20]), expected, rtol=1e-9)
    assert g.threshold_ == pytest.approx(np.percentile(g.decision_scores_, 90.0))
    np.testing.assert_array_equal(g.predict(X), (g.decision_scores_ > g.threshold_).astype(int))


def test_trimmed_gaussian_is_not_pulled_by_a_planted_cluster_it_trims() -> None:
    rng = np.random.default_rng(2)
    normal = rng.normal(size=(420, 3))
    cluster = rng.normal(6.0, 0.05, size=(60, 3))  # 12.5 % of the training rows
    X = np.vstack([normal, cluster])
    trimmed = TrimmedGaussian(trim_ratio=0.2).fit(X)
    plain = TrimmedGaussian(trim_ratio=0.0).fit(X)
    assert trimmed.decision_function(cluster).min() > trimmed.decision_function(normal).max()
    assert plain.decision_function(cluster).min() < trimmed.decision_function(cluster).min() / 5


def test_trimmed_gaussian_runs_in_the_benchmark_and_refuses_what_it_cannot_use() -> None:
    from flowad_bench.odds import fit_and_score

    rng = np.random.default_rng(3)
    X_train = rng.normal(size=(40, 60))  # fewer rows than columns: shrinkage keeps it positive definite
    X_test = np.vstack([rng.normal(size=(30, 60)), rng.normal(size=(10, 60)) * 3.0])
    row = fit_and_score("TrimmedGaussian", 0, X_train, X_test, np.r_[np.zeros(30), np.ones(10)])
    assert row["auc"] > 0.9
    assert TrimmedGaussian(contamination=0.3).fit(X_train).trim_ratio_ == 0.3  # None: the contamination
    assert TrimmedGaussian(contamination=0.3, trim_ratio=0.0).fit(X_train).trim_ratio_ == 0.0
    with pytest.raises(InputError, match=r"trim_ratio must be None or a float in \[0, 0.5\)"):
        TrimmedGaussian(trim_ratio=0.5).fit(X_train)
    with pytest.raises(InputError, match="constant"):
        TrimmedGaussian().fit(np.ones((10, 2)))
    with pytest.raises(NotFittedError):
        TrimmedGaussian().decision_function(X_train)
    with pytest.raises(InputError, match="NaN|finite"):
        TrimmedGaussian().fit(np.where(rng.random((40, 3)) < 0.05, np.nan, 1.0) + rng.normal(size=(40, 3)))
    assert clone(TrimmedGaussian(trim_ratio=0.3)).get_params()["trim_ratio"] == 0.3
