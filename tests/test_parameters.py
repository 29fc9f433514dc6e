"""Hyper-parameters that cannot work are refused by validation, and a run that explodes is
stopped with a message naming the epoch and the likely cause (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from flowad import AdaFlow, InputError, NonFiniteError, RealNVP, RobustRealNVP, TrainingDivergedError

FAST = {"n_couplings": 1, "hidden": (8,), "epochs": 2}
X = np.random.default_rng(0).normal(size=(120, 3))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lipschitz_k": float("inf")}, r"lipschitz_k must be None or a float > 0 and finite, got inf"),
        ({"lipschitz_k": float("nan")}, r"lipschitz_k must be None or a float > 0 and finite, got nan"),
        ({"lr": float("inf")}, r"lr must be a float > 0 and finite"),
        ({"weight_decay": float("inf")}, r"weight_decay must be a float >= 0 and finite"),
        ({"grad_clip": float("inf")}, r"grad_clip must be None or a float > 0 and finite"),
        ({"s_max": float("inf")}, r"s_max must be a float > 0 and finite"),
        ({"noise_std": float("nan")}, r"noise_std must be a float >= 0 and finite"),
        ({"epochs": True}, r"epochs must be an int >= 1"),
        ({"random_state": 2**70}, r"random_state must be an int in \[0, 2\*\*63 - 2\], got 1180591620717411303424"),
        ({"random_state": -1}, r"random_state must be an int in \[0, 2\*\*63 - 2\]"),
    ],
)
def test_unusable_parameters_are_refused(params: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        RealNVP(**{**FAST, **params}).fit(X)


def test_the_largest_seed_works() -> None:
    det = RealNVP(**FAST, random_state=2**63 - 2).fit(X)
    assert np.isfinite(det.score_samples(X)).all()


def test_adaflow_alpha_must_be_finite() -> None:
    with pytest.raises(InputError, match="alpha must be a float in"):
        AdaFlow(epochs=1, alpha=float("nan")).fit(X)


@pytest.mark.parametrize("cls", [RobustRealNVP, AdaFlow])
def test_a_loss_that_explodes_stops_training_naming_epoch_and_cause(cls: type) -> None:
    params = {"epochs": 20, "lr": 1e6, "random_state": 0}
    if cls is RobustRealNVP:
        params.update(n_couplings=2, hidden=(16,))
    with pytest.raises(TrainingDivergedError, match=r"Training diverged: the mean loss of epoch \d+ is .*lr=1000000.0.*learning rate too high"):
        cls(**params).fit(X)


def test_healthy_training_is_not_flagged() -> None:
    for lr in (1e-3, 1e-2):
        det = RobustRealNVP(n_couplings=2, hidden=(16,), epochs=20, lr=lr, random_state=0).fit(X)
        assert max(det.history_) < 10 * abs(det.history_[0]) + 10


def test_values_too_large_for_float64_do_not_suggest_float64() -> None:
    det = RobustRealNVP(**FAST, random_state=0).fit(X)
    with pytest.raises(NonFiniteError, match="overflow float32; refit with dtype='float64'"):
        det.decision_function(X[:2] * 1e100)  # float64 scores these rows
    with pytest.raises(NonFiniteError, match=r"too large to model in float32 or float64, and rescaling") as err:
        det.decision_function(X[:2] * 1e200)
    assert "dtype='float64'" not in str(err.value)
    assert np.isfinite(RobustRealNVP(**FAST, random_state=0, dtype="float64").fit(X).decision_function(X[:2] * 1e100)).all()
    assert np.isfinite(RobustRealNVP(**FAST, random_state=0).fit(X * 1e200).decision_function(X[:3] * 1e200)).all()
