"""The study autoencoder of the benchmark package: seeded, scikit-learn style, errors a user can act on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flowad_bench.baselines import AutoEncoderBaseline
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
