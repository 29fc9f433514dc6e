"""AdaFlow's flow-weight rule (``mixture_selection``): the default "target" rule, the "likelihood"
option, model files of both formats and the ONNX device adaptation under each rule."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import flowad
from flowad.detectors._adaflow import AdaFlow
from flowad.exceptions import InputError
from flowad.flows.moments import DEFAULT_WEIGHT, MIN_SELECTION_ROWS, Selection, select_weight


def _domain(rng: np.random.Generator, n: int, shift: float, scale: float) -> np.ndarray:
    z = rng.standard_t(4, size=(n, 4))
    return shift + scale * (z @ np.array([[1, 0.5, 0, 0], [0, 1, 0.3, 0], [0, 0, 1, 0.8], [0.2, 0, 0, 1]]))


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"a": _domain(rng, 150, 0.0, 1.0), "b": _domain(rng, 150, 3.0, 2.0),
            "c": _domain(rng, 200, -5.0, 0.5), "c_test": _domain(rng, 60, -5.0, 0.5)}


@pytest.fixture(scope="module")
def fitted(data: dict[str, np.ndarray]) -> AdaFlow:
    X = np.vstack([data["a"], data["b"]])
    return AdaFlow(epochs=3, batch_size=64, dtype="float64", device="cpu", random_state=0).fit(X, domains=["a"] * 150 + ["b"] * 150)


def _gaussian_log_density(det: AdaFlow, X: np.ndarray, name: str) -> np.ndarray:
    """The domain's own Gaussian, in the model's score units."""
    state = det._mix[det._index(name)]
    Z = det._standardize(X).double().numpy()
    return state.gaussian.log_prob(Z) + det._score_offset


def test_the_rules_on_the_held_out_sums() -> None:
    rng = np.random.default_rng(0)
    for n in (0, 1, 5, MIN_SELECTION_ROWS - 1):
        sel = Selection.empty().add(rng.normal(size=n) + 50.0, rng.normal(size=n)) if n else Selection.empty()
        assert select_weight(sel, "target") == DEFAULT_WEIGHT == select_weight(sel, "likelihood")
    # the flow far better in held-out likelihood (as on the sound frames): "likelihood" takes it, "target" does not
    sel = Selection.empty().add(rng.normal(size=200) + 300.0, rng.normal(size=200))
    assert select_weight(sel, "likelihood") == 1.0 == sel.weight()
    assert select_weight(sel, "target") == 0.0
    with pytest.raises(ValueError, match="unknown selection rule 'best'"):
        select_weight(sel, "best")


def test_default_scores_a_domain_of_ten_rows_or_more_by_its_own_gaussian(fitted: AdaFlow, data: dict) -> None:
    det = copy.deepcopy(fitted)
    assert det.mixture_selection == "target"
    det.adapt(data["c"], domain="c")
    assert det.mixture_weights_ == {"a": 0.0, "b": 0.0, "c": 0.0}
    np.testing.assert_allclose(det.score_samples(data["c_test"], domain="c"), _gaussian_log_density(det, data["c_test"], "c"), rtol=1e-10)
    # the same held-out sums under the likelihood rule: the weight the earlier default chose
    lik = copy.deepcopy(det).set_params(mixture_selection="likelihood")
    mix = det._mix[det._index("c")]
    assert lik.mixture_weights_["c"] == mix.selection.weight()
    assert np.isfinite(lik.score_samples(data["c_test"], domain="c")).all()


@pytest.mark.parametrize("n", [2, 3, 5, 9, 10, 11])
def test_a_handful_of_rows_keeps_one_half_below_ten_then_the_gaussian(fitted: AdaFlow, data: dict, n: int) -> None:
    det = copy.deepcopy(fitted)
    with pytest.warns(UserWarning, match="only"):
        det.adapt(data["c"][:n], domain="tiny")
    assert det.mixture_weights_["tiny"] == (0.5 if n < 10 else 0.0)
    assert np.isfinite(det.decision_function(data["c_test"], domain="tiny")).all()


def test_partial_and_streamed_adaptation_follow_the_rule(fitted: AdaFlow, data: dict) -> None:
    det = copy.deepcopy(fitted)
    with pytest.warns(UserWarning, match="only"):
        det.partial_adapt(data["c"][:8], domain="p")
    assert det.mixture_weights_["p"] == 0.5  # nothing held out yet
    with pytest.warns(UserWarning, match="only"):
        det.partial_adapt(data["c"][8:20], domain="p")
    assert det.mixture_weights_["p"] == 0.5  # a batch is held out only from a Gaussian of >= 10 rows
    det.partial_adapt(data["c"][20:40], domain="p")
    assert det.mixture_weights_["p"] == 0.0  # 20 rows held out from the first 20 rows' Gaussian
    streamed = copy.deepcopy(fitted)
    streamed.adapt(lambda: iter(np.array_split(data["c"], 5)), domain="s")
    det.adapt(data["c"], domain="s")
    assert streamed.mixture_weights_["s"] == det.mixture_weights_["s"] == 0.0
    np.testing.assert_allclose(streamed.decision_function(data["c_test"], domain="s"), det.decision_function(data["c_test"], domain="s"), rtol=1e-6)


def test_invalid_rule_is_refused_at_fit_and_after_set_params(fitted: AdaFlow, data: dict) -> None:
    with pytest.raises(InputError, match="mixture_selection"):
        AdaFlow(epochs=1, mixture_selection="auto").fit(data["a"])
    det = copy.deepcopy(fitted).set_params(mixture_selection="auto")
    with pytest.raises(InputError, match="mixture_selection must be 'target' or 'likelihood', got 'auto'"):
        det.decision_function(data["c_test"], domain="a")


def test_model_files_keep_the_rule_and_format_one_files_score_as_saved(fitted: AdaFlow, data: dict, tmp_path: Path) -> None:
    from flowad.io.model_file import read_model_file, write_model_file

    det = copy.deepcopy(fitted).set_params(mixture_selection="likelihood")
    det.adapt(data["c"], domain="c")
    det.save(tmp_path / "lik.flowad")
    back = flowad.load(tmp_path / "lik.flowad")
    assert back.mixture_selection == "likelihood" and back.mixture_weights_ == det.mixture_weights_
    np.testing.assert_array_equal(back.decision_function(data["c_test"], domain="c"), det.decision_function(data["c_test"], domain="c"))
    tensors, manifest = read_model_file(tmp_path / "lik.flowad")
    assert manifest["mixture_format"] == 2
    # a format-1 file (before the option: no mixture_selection parameter) chose its weights by
    # likelihood; it loads with that rule and scores exactly as when it was saved
    params = {k: v for k, v in manifest["params"].items() if k != "mixture_selection"}
    write_model_file(tmp_path / "v1.flowad", tensors, {**manifest, "params": params, "mixture_format": 1})
    old = flowad.load(tmp_path / "v1.flowad")
    assert old.mixture_selection == "likelihood" and old.mixture_weights_ == det.mixture_weights_
    np.testing.assert_array_equal(old.decision_function(data["c_test"], domain="c"), det.decision_function(data["c_test"], domain="c"))
    # the default rule round-trips too
    tgt = copy.deepcopy(fitted)
    tgt.adapt(data["c"], domain="c")
    tgt.save(tmp_path / "tgt.flowad")
    again = flowad.load(tmp_path / "tgt.flowad")
    assert again.mixture_selection == "target" and again.mixture_weights_["c"] == 0.0
    np.testing.assert_array_equal(again.decision_function(data["c_test"], domain="c"), tgt.decision_function(data["c_test"], domain="c"))
    # a newer format is refused, naming it
    write_model_file(tmp_path / "v9.flowad", tensors, {**manifest, "mixture_format": 9})
    with pytest.raises(flowad.ModelFileError, match="format 9"):
        flowad.load(tmp_path / "v9.flowad")


@pytest.mark.parametrize("rule", ["target", "likelihood"])
def test_device_adaptation_picks_pytorchs_weight_under_each_rule(rule: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from flowad.export import OnnxScorer, export_onnx

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    det = AdaFlow(n_couplings=1, hidden=(8,), epochs=2, random_state=0, mixture_selection=rule).fit(X, domains=np.repeat(["a", "b"], 60))
    files = export_onnx(det, tmp_path / "m.onnx")
    assert json.loads(Path(files["metadata"]).read_text())["mixture"]["selection"] == rule
    scorer = OnnxScorer(files["scoring"])
    site = rng.standard_t(3, size=(100, 3))
    det.adapt(site, domain="site")
    scorer.adapt(site, "site")
    expected = det._mix[det._index("site")].selection.weight() if rule == "likelihood" else 0.0
    assert det.mixture_weights_["site"] == expected
    assert float(scorer.domains["site"]["mix_weight"][0]) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    test = rng.normal(size=(30, 3))
    np.testing.assert_allclose(scorer.decision_function(test, "site"), det.decision_function(test, domain="site"), rtol=1e-4, atol=1e-4)
    # exported domains carry the weight under the model's rule
    with torch.no_grad():
        files = export_onnx(det, tmp_path / "m2.onnx")
    meta = json.loads(Path(files["metadata"]).read_text())
    assert meta["mixture"]["selection"] == rule
    # a sidecar whose rule this flowad does not know is refused with a clear message
    meta["mixture"]["selection"] = "future"
    Path(files["metadata"]).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="mixture.selection is 'future'"):
        OnnxScorer(files["scoring"]).adapt(site, "new")
