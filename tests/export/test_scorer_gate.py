"""OnnxScorer refuses what the PyTorch detectors refuse, with the same exception types."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from flowad import RealNVP
from flowad.detectors._adaflow import AdaFlow
from flowad.exceptions import InputError, NonFiniteError, UnknownDomainError
from flowad.export import OnnxScorer, export_onnx

pytest.importorskip("onnxruntime")

TINY = {"n_couplings": 1, "hidden": (8,), "epochs": 2, "random_state": 0}


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(120, 3))


@pytest.fixture(scope="module")
def realnvp(data: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> tuple[RealNVP, OnnxScorer]:
    det = RealNVP(**TINY, dtype="float32").fit(data)
    return det, OnnxScorer(export_onnx(det, tmp_path_factory.mktemp("r") / "m.onnx")["scoring"])


@pytest.fixture
def adaflow(data: np.ndarray, tmp_path: Path) -> tuple[AdaFlow, OnnxScorer]:
    det = AdaFlow(**TINY).fit(data, domains=np.repeat(["a", "b"], 60))
    return det, OnnxScorer(export_onnx(det, tmp_path / "ada.onnx")["scoring"])


def _same_refusal(torch_call, onnx_call, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match) as ref:
        torch_call()
    with pytest.raises(exc, match=match) as got:
        onnx_call()
    assert type(got.value) is type(ref.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_are_refused_naming_the_row(realnvp: tuple, data: np.ndarray, bad: float) -> None:
    det, scorer = realnvp
    X = data[:10].copy()
    X[4, 1] = bad
    _same_refusal(lambda: det.decision_function(X), lambda: scorer.decision_function(X), InputError, "first at row 4, column 1")


def test_wrong_feature_count_is_an_input_error_like_pytorch(realnvp: tuple, data: np.ndarray) -> None:
    det, scorer = realnvp
    _same_refusal(lambda: det.decision_function(data[:, :2]), lambda: scorer.decision_function(data[:, :2]), InputError, "has 2 features.*expecting 3")
    _same_refusal(lambda: det.decision_function(data[0]), lambda: scorer.decision_function(data[0]), InputError, "must be 2-D")


def test_a_row_at_1e30_raises_non_finite_error_instead_of_returning_inf(realnvp: tuple, data: np.ndarray) -> None:
    det, scorer = realnvp
    X = data[:5].copy()
    X[2, 0] = 1e30
    _same_refusal(lambda: det.decision_function(X), lambda: scorer.decision_function(X), NonFiniteError, r"first: \[2\]")
    X[2, 0] = 1e300  # beyond float32: the cast gives inf inside the graph
    with pytest.raises(NonFiniteError):
        scorer.decision_function(X)


def test_dataframe_columns_are_checked_against_the_exported_names(data: np.ndarray, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(data, columns=["a", "b", "c"])
    det = RealNVP(**TINY).fit(df)
    scorer = OnnxScorer(export_onnx(det, tmp_path / "m.onnx")["scoring"])
    np.testing.assert_allclose(scorer.decision_function(df), det.decision_function(df), rtol=1e-6)
    swapped = df[["b", "a", "c"]]
    _same_refusal(lambda: det.decision_function(swapped), lambda: scorer.decision_function(swapped), InputError, "same columns in the same order")
    text = df.assign(c=["x"] * len(df))
    _same_refusal(lambda: det.decision_function(text), lambda: scorer.decision_function(text), InputError, "non-numeric")


def test_adapt_needs_two_finite_rows_and_never_stores_bad_statistics(adaflow: tuple, data: np.ndarray) -> None:
    det, scorer = adaflow
    _same_refusal(lambda: det.adapt(data[:1], domain="new"), lambda: scorer.adapt(data[:1], "new"), InputError, "at least 2 rows")
    X = data[:40].copy()
    X[7, 2] = np.nan
    _same_refusal(lambda: det.adapt(X, domain="a"), lambda: scorer.adapt(X, "a"), InputError, "first at row 7")
    assert "new" not in scorer.domains
    before = {k: v.copy() for k, v in scorer.domains["a"].items()}
    X[7, 2] = 1e300  # finite, but its variance overflows: refused, domain 'a' untouched
    with pytest.raises(NonFiniteError):
        scorer.adapt(X, "a")
    for k, v in scorer.domains["a"].items():
        np.testing.assert_array_equal(v, before[k])
    np.testing.assert_allclose(scorer.decision_function(data, "a"), det.decision_function(data, domain="a"), rtol=1e-4, atol=1e-4)


def test_adapt_warns_below_the_minimum_like_pytorch_and_then_agrees(adaflow: tuple, data: np.ndarray) -> None:
    det, scorer = adaflow
    with pytest.warns(UserWarning, match="only 5 row"):
        det.adapt(data[:5] + 1.0, domain="few")
    with pytest.warns(UserWarning, match="only 5 row"):
        scorer.adapt(data[:5] + 1.0, "few")
    np.testing.assert_allclose(scorer.decision_function(data, "few"), det.decision_function(data, domain="few"), rtol=1e-4, atol=1e-4)


def test_domains_are_named_like_pytorch(adaflow: tuple, data: np.ndarray) -> None:
    det, scorer = adaflow
    _same_refusal(lambda: det.decision_function(data, domain="z"), lambda: scorer.decision_function(data, "z"), UnknownDomainError, "Unknown domain 'z'")
    _same_refusal(lambda: det.decision_function(data), lambda: scorer.decision_function(data), InputError, "domain is required")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scorer.predict(data, "a").tolist() == det.predict(data, domain="a").tolist()


def test_the_sidecar_documents_the_checks(realnvp: tuple, tmp_path: Path) -> None:
    det, _ = realnvp
    files = export_onnx(det, tmp_path / "m.onnx")
    checks = json.loads(Path(files["metadata"]).read_text())["input_checks"]
    assert set(checks) == {"x", "adapt", "anomaly_score", "domain"}
    assert "at least 2 rows" in checks["adapt"] and "finite" in checks["x"]


def test_device_adaptation_fits_the_same_mixture_as_pytorch(data: np.ndarray, tmp_path: Path) -> None:
    """From 10 rows on the likelihood rule selects the weight by cross-validation: the device picks PyTorch's."""
    det = AdaFlow(**TINY, mixture_selection="likelihood").fit(data, domains=np.repeat(["a", "b"], 60))
    scorer = OnnxScorer(export_onnx(det, tmp_path / "ada.onnx")["scoring"])
    X = np.random.default_rng(3).standard_t(3, size=(100, 3))  # heavy tails: a weight strictly inside (0, 0.5)
    det.adapt(X, domain="site")
    scorer.adapt(X, "site")
    assert 0.0 < det.mixture_weights_["site"] < 0.5
    assert float(scorer.domains["site"]["mix_weight"][0]) == pytest.approx(det.mixture_weights_["site"], rel=1e-6)
    np.testing.assert_allclose(scorer.decision_function(data, "site"), det.decision_function(data, domain="site"), rtol=1e-4, atol=1e-4)
    scorer.adapt(X, "alone", flow_only=True)  # the flow alone: weight 1
    assert float(scorer.domains["alone"]["mix_weight"][0]) == 1.0


def test_adapt_refuses_a_stuck_feature_like_pytorch(adaflow: tuple, data: np.ndarray) -> None:
    det, scorer = adaflow
    X = data[:40].copy()
    X[:, 1] = 2.5
    _same_refusal(lambda: det.adapt(X, domain="stuck"), lambda: scorer.adapt(X, "stuck"), InputError, "never change")
    assert "stuck" not in scorer.domains


def test_a_latent_space_mixture_or_an_old_sidecar_adapts_by_the_flow_only_on_request(data: np.ndarray, tmp_path: Path) -> None:
    det = AdaFlow(**TINY, gaussian_space="latent").fit(data, domains=np.repeat(["a", "b"], 60))
    files = export_onnx(det, tmp_path / "lat.onnx")
    scorer = OnnxScorer(files["scoring"])
    with pytest.raises(InputError, match="latent space.*flow_only=True"):
        scorer.adapt(data[:40], "new")
    assert "new" not in scorer.domains
    scorer.adapt(data[:40], "new", flow_only=True)
    assert float(scorer.domains["new"]["mix_weight"][0]) == 1.0
    assert "flow only" in json.loads(Path(files["metadata"]).read_text())["mixture"]["device_adapt"]
    # an export whose sidecar predates adapt_rows: the mixture cannot be computed, and says so
    det = AdaFlow(**TINY).fit(data, domains=np.repeat(["a", "b"], 60))
    files = export_onnx(det, tmp_path / "old.onnx")
    meta = json.loads(Path(files["metadata"]).read_text())
    assert "fit_mixture" in meta["mixture"]["device_adapt"]
    del meta["adapt_rows"]
    Path(files["metadata"]).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="Re-export.*flow_only=True"):
        OnnxScorer(files["scoring"]).adapt(data[:40], "new")
