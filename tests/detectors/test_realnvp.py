"""The RealNVP family's estimator API: scikit-learn mechanics, PyOD score conventions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from flowad import NotFittedError, RealNVP, RobustRealNVP, TrimRealNVP
from flowad.exceptions import InputError
from flowad.preprocessing import Standardization
from flowad.training import loop
from tests.contracts.sklearn_checks import run_generic_checks

FAST = {"n_couplings": 2, "hidden": (16,), "epochs": 8, "batch_size": 64}
CLASSES = [RealNVP, TrimRealNVP, RobustRealNVP]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Correlated Gaussian normals with 5 % scattered anomalies; a clean test set with anomalies."""
    rng = np.random.default_rng(0)
    A = np.array([[1.0, 0.8, 0.0], [0.0, 0.6, 0.3], [0.0, 0.0, 0.4]])

    def sample(n_norm: int, n_anom: int) -> tuple[np.ndarray, np.ndarray]:
        Xn = rng.normal(size=(n_norm, 3)) @ A
        Xa = rng.uniform(-6, 6, size=(n_anom, 3))
        return np.vstack([Xn, Xa]), np.r_[np.zeros(n_norm), np.ones(n_anom)]

    X, y = sample(380, 20)
    X_test, y_test = sample(300, 30)
    return X, y, X_test, y_test


@pytest.mark.parametrize("cls", CLASSES)
def test_fit_returns_self_and_sets_fitted_attributes(cls: type, data: tuple) -> None:
    X, _, X_test, y_test = data
    det = cls(**FAST, random_state=0)
    assert det.fit(X) is det
    assert det.n_features_in_ == 3
    assert det.decision_scores_.shape == (400,) and det.labels_.shape == (400,)
    assert set(np.unique(det.labels_)) <= {0, 1}
    # threshold_ is the (1 - contamination) quantile of the training scores
    assert det.threshold_ == pytest.approx(np.percentile(det.decision_scores_, 90))
    assert det.labels_.mean() == pytest.approx(0.1, abs=0.01)
    assert len(det.history_) == FAST["epochs"]
    assert roc_auc_score(y_test, det.decision_function(X_test)) > 0.9  # seeded floor


def test_score_conventions(data: tuple) -> None:
    X, _, X_test, _ = data
    det = RobustRealNVP(**FAST, random_state=0).fit(X)
    log_density = det.score_samples(X_test)
    np.testing.assert_array_equal(det.decision_function(X_test), -log_density)
    np.testing.assert_array_equal(det.predict(X_test), (-log_density > det.threshold_).astype(int))
    assert log_density.dtype == np.float64 and log_density.shape == (330,)
    far = np.array([[0.0, 0.0, 0.0], [8.0, -8.0, 8.0]])
    s = det.decision_function(far)
    assert s[1] > s[0]  # far from the data = more anomalous


def test_variants_differ_only_in_defaults() -> None:
    assert RealNVP().trim_ratio == 0.0 and RealNVP().lipschitz_k is None
    assert TrimRealNVP().trim_ratio is None and TrimRealNVP().lipschitz_k is None
    assert RobustRealNVP().trim_ratio is None and RobustRealNVP().lipschitz_k == 1.0
    assert RobustRealNVP(contamination=0.07).trim_ratio_ == 0.07
    assert RobustRealNVP(contamination=0.07, trim_ratio=0.2).trim_ratio_ == 0.2
    assert set(RealNVP().get_params()) == set(RobustRealNVP().get_params())


def test_explicit_threshold(data: tuple) -> None:
    X = data[0]
    det = RealNVP(**FAST, threshold=5.0, random_state=0).fit(X)
    assert det.threshold_ == 5.0
    np.testing.assert_array_equal(det.labels_, (det.decision_scores_ > 5.0).astype(int))


def test_same_seed_same_model_different_seed_different(data: tuple) -> None:
    X, _, X_test, _ = data
    a = RobustRealNVP(**FAST, random_state=3).fit(X).decision_function(X_test)
    b = RobustRealNVP(**FAST, random_state=3).fit(X).decision_function(X_test)
    c = RobustRealNVP(**FAST, random_state=4).fit(X).decision_function(X_test)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_global_rng_state_untouched(data: tuple) -> None:
    X = data[0]
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    RobustRealNVP(**FAST, random_state=None).fit(X)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)


def test_clone_and_params_round_trip() -> None:
    det = RobustRealNVP(contamination=0.05, hidden=(32, 32), epochs=3, random_state=1)
    twin = clone(det)
    assert twin.get_params() == det.get_params() and twin is not det
    twin.set_params(lipschitz_k=0.5, epochs=7)
    assert twin.lipschitz_k == 0.5 and twin.epochs == 7 and det.lipschitz_k == 1.0
    assert "contamination=0.05" in repr(det)
    assert not [k for k in vars(RobustRealNVP()) if k.endswith("_")]  # __init__ stores params only


@pytest.mark.parametrize("kind", ["numpy", "pandas", "torch", "list"])
def test_accepts_numpy_pandas_torch_lists(kind: str, data: tuple) -> None:
    X = data[0][:120]
    conv = {
        "numpy": lambda a: a,
        "pandas": lambda a: pd.DataFrame(a, columns=["a", "b", "c"]),
        "torch": lambda a: torch.as_tensor(a, dtype=torch.float32),
        "list": lambda a: a.tolist(),
    }[kind]
    det = RealNVP(**FAST, random_state=0).fit(conv(X))
    ref = RealNVP(**FAST, random_state=0).fit(X)
    atol = 1e-4 if kind == "torch" else 0  # float32 round-trip of the input
    np.testing.assert_allclose(det.decision_function(conv(X)), ref.decision_function(X), atol=atol, rtol=atol)
    if kind == "pandas":
        assert list(det.feature_names_in_) == ["a", "b", "c"]


def test_dataframe_with_other_columns_is_refused(data: tuple) -> None:
    X = data[0][:100]
    det = RealNVP(**FAST, random_state=0).fit(pd.DataFrame(X, columns=["a", "b", "c"]))
    with pytest.raises(InputError, match=r"feature names \['c', 'b', 'a'\].*fitted with \['a', 'b', 'c'\]"):
        det.score_samples(pd.DataFrame(X, columns=["c", "b", "a"]))


def test_float64_option(data: tuple) -> None:
    X = data[0]
    det = RealNVP(**FAST, dtype="float64", random_state=0).fit(X)
    assert next(det.flow_.parameters()).dtype == torch.float64
    assert np.isfinite(det.score_samples(X)).all()


def test_fit_predict_and_not_fitted(data: tuple) -> None:
    X = data[0]
    det = RealNVP(**FAST, random_state=0)
    for method in (det.score_samples, det.decision_function, det.predict, det.save):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            method(X) if method is not det.save else method("unused.flowad")
    np.testing.assert_array_equal(det.fit_predict(X), det.labels_)


def test_constant_columns_are_dropped_with_a_warning(data: tuple) -> None:
    X = np.column_stack([data[0], np.full(400, 7.0)])
    with pytest.warns(UserWarning, match=r"column 3.*constant"):
        det = RealNVP(**FAST, random_state=0).fit(X)
    assert det.constant_features_.tolist() == [False, False, False, True]
    assert det.scale_[3] == 1.0 and det.flow_.features == 3
    st = Standardization.fit(X)  # the library's one rule for constant columns
    for ours, theirs in ((det.mean_, st.mean), (det.scale_, st.scale), (det.constant_features_, st.constant)):
        np.testing.assert_array_equal(ours, theirs)
    s = det.score_samples(X)
    assert np.isfinite(s).all()
    X2 = X.copy()
    X2[:, 3] = -100.0  # ignored by the model
    np.testing.assert_array_equal(det.score_samples(X2), s)


def test_all_constant_columns_is_an_error() -> None:
    with pytest.raises(InputError, match="All 2 features of X are constant"):
        RealNVP(**FAST).fit(np.ones((10, 2)))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"contamination": 0.7}, r"contamination must be a float in \(0, 0.5\], got 0.7"),
        ({"contamination": 0.0}, "contamination"),
        ({"trim_ratio": 0.6}, r"trim_ratio must be None or a float in \[0, 0.5\)"),
        ({"lipschitz_k": -1.0}, "lipschitz_k must be None or a float > 0"),
        ({"n_couplings": -1}, "n_couplings must be an int >= 0"),
        ({"hidden": ()}, "hidden must be a non-empty tuple"),
        ({"hidden": (16, 0)}, "hidden"),
        ({"activation": "sigmoid"}, "activation must be one of"),
        ({"epochs": 0}, "epochs must be an int >= 1"),
        ({"batch_size": 1}, "batch_size must be an int >= 2"),
        ({"lr": 0}, "lr must be a float > 0"),
        ({"weight_decay": -1e-3}, "weight_decay must be a float >= 0"),
        ({"grad_clip": 0.0}, "grad_clip must be None or a float > 0"),
        ({"s_max": 0.0}, "s_max must be a float > 0"),
        ({"dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
        ({"device": "tpu"}, "device must be"),
        ({"random_state": "seven"}, "random_state must be None, an int"),
        ({"threshold": float("nan")}, "threshold must be None or a finite float"),
        ({"noise_std": -0.1}, "noise_std must be a float >= 0"),
        ({"early_stopping": "yes"}, "early_stopping must be True or False"),
        ({"validation_fraction": 0.9}, r"validation_fraction must be a float in \(0, 0.5\]"),
        ({"n_iter_no_change": 0}, "n_iter_no_change must be an int >= 1"),
    ],
)
def test_bad_hyper_parameters_name_themselves(params: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        RobustRealNVP(**{**FAST, **params}).fit(np.random.default_rng(0).normal(size=(20, 2)))


def test_cuda_request_without_cuda_is_clear() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(InputError, match="CUDA is not available"):
        RealNVP(**FAST, device="cuda").fit(np.random.default_rng(0).normal(size=(20, 2)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(data: tuple) -> None:  # pragma: no cover - runs on GPU machines only
    X = data[0]
    cpu = RealNVP(**FAST, dtype="float64", device="cpu", random_state=0).fit(X)
    gpu = RealNVP(**FAST, dtype="float64", device="cuda", random_state=0).fit(X)
    np.testing.assert_allclose(gpu.decision_function(X), cpu.decision_function(X), rtol=1e-6)


def test_one_feature_data(data: tuple) -> None:
    X = data[0][:, :1]
    det = RobustRealNVP(**FAST, random_state=0).fit(X)
    s = det.decision_function(np.array([[0.0], [20.0]]))
    assert s[1] > s[0]


def test_extreme_values_give_a_clear_error_not_nan(data: tuple) -> None:
    det = RealNVP(**FAST, random_state=0).fit(data[0])
    with pytest.raises(FloatingPointError, match=r"1 row\(s\) \(first: \[1\]\).*float64"):
        det.score_samples(np.array([[0.0, 0.0, 0.0], [1e30, 1e30, 1e30]]))


def test_pickle_round_trip_for_joblib(data: tuple) -> None:
    import pickle

    X = data[0]
    det = RobustRealNVP(**FAST, random_state=0).fit(X)
    twin = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(twin.decision_function(X), det.decision_function(X))
    assert twin.threshold_ == det.threshold_
    unfitted = pickle.loads(pickle.dumps(RobustRealNVP(epochs=3)))
    assert unfitted.get_params() == RobustRealNVP(epochs=3).get_params()


def test_sklearn_generic_estimator_checks() -> None:
    """scikit-learn's generic checks that do not assume +-1 outlier labels."""

    est = RobustRealNVP(epochs=2, n_couplings=2, hidden=(8,), dtype="float64", random_state=0)
    run_generic_checks(est)


def test_early_stopping_restores_the_best_epoch(data: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fitted weights are those of the epoch with the lowest validation loss, not the last."""
    X = data[0]
    real = loop.validation_loss
    epochs: list[tuple[float, dict[str, torch.Tensor], torch.Tensor]] = []  # (loss, weights, rows) per epoch

    def spy(flow: torch.nn.Module, X_val: torch.Tensor, *args: object, **kwargs: object) -> float:
        value = real(flow, X_val, *args, **kwargs)
        epochs.append((value, {k: v.detach().clone() for k, v in flow.state_dict().items()}, X_val))
        return value

    monkeypatch.setattr(loop, "validation_loss", spy)
    det = RealNVP(**{**FAST, "epochs": 60}, lr=1e-2, early_stopping=True, n_iter_no_change=3, random_state=0).fit(X)
    losses = [loss for loss, _, _ in epochs]
    assert len(losses) == len(det.history_) < 60  # one validation per epoch; stopped early
    best = int(np.argmin(losses))
    assert best == len(losses) - 1 - 3  # the patience's 3 later epochs were all worse
    weights = det.flow_.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in epochs[best][1].items())  # the best epoch's weights ...
    assert not all(torch.equal(weights[k], v) for k, v in epochs[-1][1].items())  # ... not the last epoch's
    assert real(det.flow_, epochs[-1][2], 0.0) == min(losses)
    with pytest.raises(InputError, match="early_stopping needs at least 2"):
        RealNVP(**FAST, early_stopping=True).fit(X[:5])


def test_noise_changes_training_and_stays_reproducible(data: tuple) -> None:
    X, _, X_test, _ = data
    a = RealNVP(**FAST, noise_std=0.1, random_state=0).fit(X).decision_function(X_test)
    b = RealNVP(**FAST, noise_std=0.1, random_state=0).fit(X).decision_function(X_test)
    c = RealNVP(**FAST, random_state=0).fit(X).decision_function(X_test)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_unknown_keyword_names_the_class() -> None:
    with pytest.raises(TypeError, match=r"RobustRealNVP\(\) got unexpected keyword argument\(s\) \['hiden'\]"):
        RobustRealNVP(hiden=(3,))


def test_trim_scope_is_validated_saved_and_defaults_to_epoch_for_robust_realnvp_only(data: tuple, tmp_path) -> None:
    import flowad
    from flowad.io.model_file import read_model_file, write_model_file

    X, _, X_test, _ = data
    assert RobustRealNVP().trim_scope == "epoch"
    assert TrimRealNVP().trim_scope == RealNVP().trim_scope == "batch"  # the published trimming / none
    assert "trim_scope : {\"batch\", \"epoch\"}, default='epoch'" in RobustRealNVP.__doc__
    assert "trim_scope : {\"batch\", \"epoch\"}, default='batch'" in TrimRealNVP.__doc__
    with pytest.raises(InputError, match="trim_scope must be 'batch' or 'epoch', got 'global'"):
        RobustRealNVP(**FAST, trim_scope="global").fit(X)
    det = RobustRealNVP(**FAST, random_state=0).fit(X)
    assert det.history_ != RobustRealNVP(**FAST, trim_scope="batch", random_state=0).fit(X).history_  # 400 rows, batches of 64: the scopes differ
    det.save(tmp_path / "epoch.flowad")
    back = flowad.load(tmp_path / "epoch.flowad")
    assert back.trim_scope == "epoch"
    np.testing.assert_array_equal(back.decision_function(X_test), det.decision_function(X_test))
    # a file written before the option existed was trained per minibatch, and loads so
    tensors, manifest = read_model_file(tmp_path / "epoch.flowad")
    params = {k: v for k, v in manifest["params"].items() if k != "trim_scope"}
    write_model_file(tmp_path / "old.flowad", tensors, {**manifest, "params": params})
    assert flowad.load(tmp_path / "old.flowad").trim_scope == "batch"
