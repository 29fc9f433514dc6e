"""The AdaFlow detector: multi-domain fit, forward-only adaptation, thresholds, translation, files."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

import flowad
from flowad import AdaFlow, InputError, NotFittedError, UnknownDomainError
from flowad.bijections.adabn import EPS_VAR
from flowad.detectors import BatchNormFlow
from flowad.detectors._domains import CALIBRATION_MAX_ROWS, MIN_ADAPT_SAMPLES, reservoir_merge
from tests.contracts.sklearn_checks import run_generic_checks

D = 4


def _domain(rng: np.random.Generator, n: int, shift: float, scale: float) -> np.ndarray:
    """Correlated 4-D normal data, moved and stretched per domain (the machine's 'room')."""
    base = rng.normal(size=(n, D)) @ np.array([[1.0, 0.6, 0, 0], [0, 1.0, 0.3, 0], [0, 0, 1.0, -0.5], [0, 0, 0, 1.0]])
    return base * scale + shift


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "a": _domain(rng, 150, 0.0, 1.0),
        "b": _domain(rng, 150, 4.0, 2.0),
        "c": _domain(rng, 120, -6.0, 0.5),  # new domain, never in fit
        "c_test": _domain(rng, 80, -6.0, 0.5),
    }


@pytest.fixture(scope="module")
def fitted(data: dict[str, np.ndarray]) -> AdaFlow:
    X = np.vstack([data["a"], data["b"]])
    return AdaFlow(epochs=3, batch_size=64, dtype="float64", device="cpu", random_state=0).fit(X, domains=["a"] * 150 + ["b"] * 150)


@pytest.fixture
def det(fitted: AdaFlow) -> AdaFlow:
    return copy.deepcopy(fitted)


def _adabn_inputs(det: AdaFlow, X: np.ndarray, domain: str) -> list[tuple[torch.nn.Module, torch.Tensor]]:
    seen: list[tuple[torch.nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.append((m, a[0].clone()))) for m in det._layers()]
    try:
        det.score_samples(X, domain=domain)
    finally:
        for h in hooks:
            h.remove()
    return seen


# -------------------------------------------------------------------------------- fit
def test_fit_sets_domains_thresholds_and_counts(det: AdaFlow) -> None:
    assert det.domains_ == ["a", "b"]
    assert det.domain_counts_ == {"a": 150, "b": 150}
    assert set(det.thresholds_) == {"a", "b"}
    assert det.decision_scores_.shape == (300,) and det.labels_.shape == (300,)
    # each training domain's threshold flags about `contamination` of its own rows
    for k, name in enumerate(["a", "b"]):
        rate = (det.decision_scores_[150 * k : 150 * (k + 1)] > det.thresholds_[name]).mean()
        assert abs(rate - det.contamination) <= 1 / 150


def test_after_fit_each_domains_statistics_are_exact_over_its_training_rows(det: AdaFlow, data: dict) -> None:
    for name in ("a", "b"):
        for layer, h in _adabn_inputs(det, data[name], name):
            mean, var = layer.statistics(det.domains_.index(name))
            torch.testing.assert_close(mean, h.mean(0), atol=1e-10, rtol=0)
            torch.testing.assert_close(var, h.var(0, unbiased=False), atol=1e-10, rtol=0)


def test_fit_accepts_integer_domain_labels_as_strings(data: dict) -> None:
    X = np.vstack([data["a"][:40], data["b"][:40]])
    det = AdaFlow(epochs=1, dtype="float64", device="cpu", random_state=0).fit(X, domains=np.repeat([3, 7], 40))
    assert det.domains_ == ["3", "7"]
    assert det.score_samples(X[:2], domain=7).shape == (2,)


def test_same_seed_same_scores_and_global_rng_untouched(data: dict) -> None:
    X = np.vstack([data["a"], data["b"]])
    doms = ["a"] * 150 + ["b"] * 150
    state = torch.random.get_rng_state()
    s1 = AdaFlow(epochs=2, device="cpu", random_state=5).fit(X, domains=doms).score_samples(X, domain="a")
    s2 = AdaFlow(epochs=2, device="cpu", random_state=5).fit(X, domains=doms).score_samples(X, domain="a")
    # the flow alone shows the seed (a mixture that chose w = 0 scores by the domain's Gaussian)
    flows = [AdaFlow(epochs=2, device="cpu", random_state=r, adapted_density="flow").fit(X, domains=doms) for r in (5, 6)]
    s3 = flows[1].score_samples(X, domain="a")
    assert not np.array_equal(flows[0].score_samples(X, domain="a"), s3)
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(s1, s2)
    assert not np.array_equal(s1, s3)
    assert s1.dtype == np.float64


def test_float32_works_end_to_end(data: dict) -> None:
    det = AdaFlow(epochs=1, device="cpu", random_state=0).fit(data["a"]).adapt(data["c"], domain="c")
    assert det.flow_.bijection[0].triangles.dtype == torch.float32
    assert np.isfinite(det.score_samples(data["c_test"], domain="c")).all()


# ------------------------------------------------------------------------------ adapt
def test_adapt_normalizes_every_adabn_input_of_the_new_domain(det: AdaFlow, data: dict) -> None:
    det.adapt(data["c"], domain="c")
    seen = _adabn_inputs(det, data["c"], "c")
    assert len(seen) == 2
    for layer, h in seen:
        mean, var = layer.statistics(det.domains_.index("c"))
        u = (h - mean) / torch.sqrt(var + EPS_VAR)
        torch.testing.assert_close(u.mean(0), torch.zeros(D, dtype=torch.float64), atol=1e-10, rtol=0)
        torch.testing.assert_close(u.var(0, unbiased=False), torch.ones(D, dtype=torch.float64), atol=1e-3, rtol=0)


def test_adapt_changes_only_the_new_domains_statistics_and_builds_no_graph(det: AdaFlow, data: dict) -> None:
    before = {k: v.clone() for k, v in det.flow_.state_dict().items()}
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(1)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        det.adapt(data["c"], domain="c")
    assert not saved, "adapt recorded tensors for backward: it built an autograd graph"
    after = det.flow_.state_dict()
    for name, value in before.items():
        if name.endswith(("running_mean", "running_var")):
            assert torch.equal(after[name][:2], value), f"{name}: a known domain's statistics changed"
            assert after[name].shape[0] == 3
        else:
            assert torch.equal(after[name], value), f"parameter {name} changed"
    assert all(p.grad is None for p in det.flow_.parameters())


def test_streaming_adaptation_equals_whole_batch_adaptation(det: AdaFlow, data: dict) -> None:
    other = copy.deepcopy(det)
    det.adapt(data["c"], domain="c")
    other.adapt(data["c"], domain="c", chunk_size=16)  # 120 rows > 16: streamed
    third = copy.deepcopy(det)
    third.adapt(lambda: iter(np.array_split(data["c"], 5)), domain="c")
    for a, b, c in zip(det._layers(), other._layers(), third._layers(), strict=True):
        for x, y, z in zip(a.statistics(2), b.statistics(2), c.statistics(2), strict=True):
            torch.testing.assert_close(y, x, atol=1e-6, rtol=0)
            torch.testing.assert_close(z, x, atol=1e-6, rtol=0)
    assert other.thresholds_["c"] == pytest.approx(det.thresholds_["c"], abs=1e-6)
    assert other.domain_counts_["c"] == third.domain_counts_["c"] == 120


def test_adapt_moves_the_new_domains_scores_back_and_separates_anomalies(det: AdaFlow, data: dict) -> None:
    normal = data["c_test"]
    anomalies = normal + np.array([2.0, -2.0, 2.0, -2.0])  # 4 sigma of the domain's scale
    det.adapt(data["c"], domain="c")
    train_level = np.median(det.decision_scores_)
    adapted = np.median(det.decision_function(normal, domain="c"))
    unadapted = np.median(det.decision_function(normal, domain="a"))
    assert abs(adapted - train_level) < abs(unadapted - train_level)
    y = np.r_[np.zeros(len(normal)), np.ones(len(anomalies))]
    s = det.decision_function(np.vstack([normal, anomalies]), domain="c")
    assert roc_auc_score(y, s) > 0.9
    assert det.predict(normal, domain="c").mean() < 0.2


def test_threshold_is_the_false_alarm_quantile_of_the_adaptation_scores(det: AdaFlow, data: dict) -> None:
    det.adapt(data["c"], domain="c")
    scores = det.decision_function(data["c"], domain="c")
    assert det.thresholds_["c"] == pytest.approx(np.percentile(scores, 95.0), rel=1e-10)
    fixed = clone(det).set_params(threshold=3.5).fit(data["a"]).adapt(data["c"], domain="c")
    assert fixed.thresholds_ == {"default": 3.5, "c": 3.5}


def test_readapting_a_domain_replaces_it(det: AdaFlow, data: dict) -> None:
    det.adapt(data["c"][:60], domain="c")
    det.adapt(data["c"], domain="c")
    fresh = copy.deepcopy(det)
    fresh.remove_domain("c").adapt(data["c"], domain="c")
    np.testing.assert_allclose(det.score_samples(data["c_test"], domain="c"), fresh.score_samples(data["c_test"], domain="c"))


def test_partial_adapt_in_one_batch_equals_adapt_and_accumulates_counts(det: AdaFlow, data: dict) -> None:
    whole = copy.deepcopy(det).adapt(data["c"], domain="c")
    det.partial_adapt(data["c"], domain="c")
    np.testing.assert_allclose(det.score_samples(data["c_test"], domain="c"), whole.score_samples(data["c_test"], domain="c"))
    stream = copy.deepcopy(det).remove_domain("c")
    for chunk in np.array_split(data["c"], 4):
        stream.partial_adapt(chunk, domain="c")
    assert stream.domain_counts_["c"] == 120
    first = stream._layers()[0].statistics(2)  # the first layer's statistics are exact online
    torch.testing.assert_close(first[0], whole._layers()[0].statistics(2)[0], atol=1e-10, rtol=0)
    torch.testing.assert_close(first[1], whole._layers()[0].statistics(2)[1], atol=1e-10, rtol=0)
    gap = np.abs(stream.score_samples(data["c_test"], domain="c") - whole.score_samples(data["c_test"], domain="c"))
    assert np.median(gap) < 0.5


def test_remove_domain(det: AdaFlow, data: dict) -> None:
    det.adapt(data["c"], domain="c")
    before_b = det.score_samples(data["b"], domain="b")
    det.remove_domain("a")
    assert det.domains_ == ["b", "c"] and set(det.thresholds_) == {"b", "c"}
    assert all(layer.n_domains == 2 for layer in det._layers())
    np.testing.assert_array_equal(det.score_samples(data["b"], domain="b"), before_b)
    with pytest.raises(UnknownDomainError, match=r"Unknown domain 'a'; known domains: \['b', 'c'\]"):
        det.remove_domain("a")
    det.remove_domain("b")
    with pytest.raises(InputError, match="only domain"):
        det.remove_domain("c")


# ------------------------------------------------------------------------ translation
def test_translate_round_trip_and_target_statistics(det: AdaFlow, data: dict) -> None:
    det.adapt(data["c"], domain="c")
    x = data["c_test"]
    there = det.translate(x, source="c", target="a")
    back = det.translate(there, source="a", target="c")
    np.testing.assert_allclose(back, x, atol=1e-8)
    # rows of c moved to b look like b: their b-scores are typical of b's training rows
    moved = det.decision_function(det.translate(x, source="c", target="b"), domain="b")
    assert abs(np.median(moved) - np.median(det.decision_scores_[150:])) < 2.0


# ----------------------------------------------------------------------------- files
def test_save_load_keeps_every_domain(det: AdaFlow, data: dict, tmp_path) -> None:
    det.adapt(data["c"], domain="c")
    det.partial_adapt(data["c_test"][:10], domain="c")
    path = tmp_path / "ada.flowad"
    det.save(path)
    back = flowad.load(path)
    assert isinstance(back, AdaFlow)
    assert back.domains_ == ["a", "b", "c"]
    assert back.thresholds_ == det.thresholds_ and back.domain_counts_ == det.domain_counts_
    np.testing.assert_array_equal(back.labels_, det.labels_)
    for name in back.domains_:
        np.testing.assert_array_equal(back.score_samples(data["c_test"], domain=name), det.score_samples(data["c_test"], domain=name))
    # continuing online adaptation after loading gives the same result as without saving
    back.partial_adapt(data["c_test"][10:], domain="c")
    det.partial_adapt(data["c_test"][10:], domain="c")
    assert back.thresholds_["c"] == det.thresholds_["c"]


# ---------------------------------------------------------------------------- errors
def test_unknown_domain_lists_the_known_ones(det: AdaFlow, data: dict) -> None:
    for call in (det.score_samples, det.decision_function, det.predict):
        with pytest.raises(UnknownDomainError, match=r"Unknown domain 'zz'; known domains: \['a', 'b'\]\. Call adapt"):
            call(data["a"], domain="zz")
    with pytest.raises(UnknownDomainError, match="known domains"):
        det.translate(data["a"], source="a", target="zz")
    with pytest.raises(KeyError):  # UnknownDomainError is a KeyError too
        det.score_samples(data["a"], domain="zz")
    with pytest.raises(InputError, match=r"domain is required: .* \['a', 'b'\]"):
        det.score_samples(data["a"])
    with pytest.raises(InputError, match="domain must be a str"):
        det.score_samples(data["a"], domain=1.5)


def test_too_few_adaptation_rows(det: AdaFlow, data: dict) -> None:
    with pytest.raises(InputError, match="needs at least 2 rows"):
        det.adapt(data["c"][:1], domain="c")
    assert det.domains_ == ["a", "b"], "a failed adapt must not leave the domain behind"
    assert all(layer.n_domains == 2 for layer in det._layers())
    with pytest.warns(UserWarning, match=f"only 10 row.*fewer than {MIN_ADAPT_SAMPLES}"):
        det.adapt(data["c"][:10], domain="c")
    with pytest.raises(InputError, match="needs at least 2 rows"):
        det.partial_adapt(data["c"][:1], domain="d")
    with pytest.raises(InputError, match="at least 2 rows"):
        AdaFlow(epochs=1).fit(data["a"][:3], domains=["x", "x", "y"])


def test_wrong_shapes_and_values(det: AdaFlow, data: dict) -> None:
    with pytest.raises(InputError, match="X has 3 features, but AdaFlow.* 4"):
        det.adapt(data["c"][:, :3], domain="c")
    with pytest.raises(InputError, match="2-D"):
        det.score_samples(data["c"][0], domain="a")
    bad = data["c"].copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        det.adapt(bad, domain="c")
    with pytest.raises(InputError, match="NaN"):  # a bad chunk in the second pass rolls back
        det.adapt(lambda: iter([data["c"], bad]), domain="c")
    assert det.domains_ == ["a", "b"]
    with pytest.raises(InputError, match="one label per row"):
        AdaFlow(epochs=1).fit(data["a"], domains=["a"] * 3)
    with pytest.raises(InputError, match="chunk_size must be"):
        det.adapt(data["c"], domain="c", chunk_size=1)


@pytest.mark.parametrize(
    ("param", "value"),
    [("alpha", 1.0), ("n_layers", 0), ("n_couplings", -1), ("contamination", 0.7), ("dtype", "float16"), ("weight_decay", -1.0)],
)
def test_bad_params_are_named(param: str, value: object, data: dict) -> None:
    with pytest.raises(InputError, match=param):
        AdaFlow(**{param: value}).fit(data["a"])


def test_not_fitted_and_sklearn_conventions(data: dict) -> None:
    det = AdaFlow(alpha=0.2, n_couplings=1)
    assert clone(det).get_params() == det.get_params()
    assert "alpha=0.2" in repr(det)
    for call in (lambda: det.adapt(data["c"], domain="c"), lambda: det.score_samples(data["a"])):
        with pytest.raises(NotFittedError):
            call()
    fitted = AdaFlow(epochs=1, n_couplings=1, hidden=(8,), random_state=0, device="cpu").fit(data["a"])
    assert fitted.domains_ == ["default"]
    assert fitted.fit_predict(data["a"]).shape == (150,)


def test_reservoir_keeps_a_bounded_uniform_reproducible_sample() -> None:
    def run() -> np.ndarray:
        kept, seen = np.empty(0), 0
        for chunk in np.array_split(np.arange(5 * CALIBRATION_MAX_ROWS, dtype=float), 7):
            kept, seen = reservoir_merge(kept, seen, chunk), seen + chunk.size
        return kept

    kept = run()
    assert kept.size == CALIBRATION_MAX_ROWS
    assert np.unique(kept).size == kept.size
    assert abs(np.median(kept) / (5 * CALIBRATION_MAX_ROWS) - 0.5) < 0.01  # uniform over the whole stream
    assert np.mean(kept >= 4 * CALIBRATION_MAX_ROWS) == pytest.approx(0.2, abs=0.01)
    np.testing.assert_array_equal(run(), kept)


@pytest.mark.parametrize("cls", [AdaFlow, BatchNormFlow])
def test_sklearn_generic_estimator_checks(cls: type) -> None:
    """scikit-learn's generic checks that do not assume +-1 outlier labels (one domain)."""
    est = cls(epochs=2, dtype="float64", random_state=0, device="cpu")
    run_generic_checks(est)


# ----------------------------------------------------------------------------- the mixture
def test_every_domain_gets_a_mixture_weight_and_the_pure_flow_option_is_the_flow(det: AdaFlow, data: dict) -> None:
    from flowad.flows.moments import WEIGHT_GRID

    det.adapt(data["c"], domain="c")
    weights = det.mixture_weights_
    assert list(weights) == ["a", "b", "c"] and all(w in WEIGHT_GRID for w in weights.values())
    X = np.vstack([data["a"], data["b"]])
    flow = AdaFlow(epochs=3, batch_size=64, dtype="float64", device="cpu", random_state=0, adapted_density="flow")
    flow.fit(X, domains=["a"] * 150 + ["b"] * 150).adapt(data["c"], domain="c")
    assert flow.mixture_weights_ == {"a": None, "b": None, "c": None}
    # the same flow is trained either way; "flow" scores are the flow's log-density, as before the mixture
    for p, q in zip(det.flow_.state_dict().values(), flow.flow_.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    for name in ("a", "b", "c"):
        k = flow.domains_.index(name)
        with torch.no_grad():
            Z = flow._standardize(data["c_test"])
            ref = flow.flow_.log_prob(Z, torch.full((Z.shape[0],), k)).double().numpy() + flow._score_offset
        np.testing.assert_array_equal(flow.score_samples(data["c_test"], domain=name), ref)
    # the mixture scores differ from the flow's where w < 1
    assert not np.allclose(det.score_samples(data["c_test"], domain="c"), flow.score_samples(data["c_test"], domain="c"))


@pytest.mark.parametrize("n", [2, 3, 5, 9, 10])
def test_adapting_on_a_handful_of_rows_is_deterministic_and_keeps_w_at_one_half_below_ten(det: AdaFlow, data: dict, n: int) -> None:
    with pytest.warns(UserWarning, match="only"):
        det.adapt(data["c"][:n], domain="tiny")
    first = det.mixture_weights_["tiny"]
    with pytest.warns(UserWarning, match="only"):
        det.adapt(data["c"][:n], domain="tiny")
    assert det.mixture_weights_["tiny"] == first
    if n < 10:
        assert first == 0.5
    assert np.isfinite(det.decision_function(data["c_test"], domain="tiny")).all()


def test_streamed_mixture_equals_in_memory(det: AdaFlow, data: dict) -> None:
    other = copy.deepcopy(det)
    det.adapt(data["c"], domain="c")
    other.adapt(lambda: iter(np.array_split(data["c"], 7)), domain="c")
    assert other.mixture_weights_["c"] == det.mixture_weights_["c"]
    np.testing.assert_allclose(other._mix[2].moments.comoment, det._mix[2].moments.comoment, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(other.decision_function(data["c_test"], domain="c"), det.decision_function(data["c_test"], domain="c"), rtol=1e-6)


def test_failed_adaptation_restores_the_mixture(det: AdaFlow, data: dict) -> None:
    det.adapt(data["c"], domain="c")
    before = det.decision_function(data["c_test"], domain="c")

    def broken():
        yield data["c"][:50]
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        det.adapt(broken, domain="c")
    np.testing.assert_array_equal(det.decision_function(data["c_test"], domain="c"), before)


def test_model_files_keep_the_mixture_and_old_files_score_by_the_flow(det: AdaFlow, data: dict, tmp_path) -> None:
    from flowad.io.model_file import read_model_file, write_model_file

    det.adapt(data["c"], domain="c")
    det.save(tmp_path / "m.flowad")
    back = flowad.load(tmp_path / "m.flowad")
    assert back.mixture_weights_ == det.mixture_weights_
    np.testing.assert_array_equal(back.decision_function(data["c_test"], domain="c"), det.decision_function(data["c_test"], domain="c"))
    # a file written before the mixture (no mixture tensors, no format field) loads and scores by the flow
    tensors, manifest = read_model_file(tmp_path / "m.flowad")
    old = {k: v for k, v in tensors.items() if not k.startswith("domains.mixture.")}
    write_model_file(tmp_path / "old.flowad", old, {k: v for k, v in manifest.items() if k != "mixture_format"})
    legacy = flowad.load(tmp_path / "old.flowad")
    assert legacy.mixture_weights_ == {"a": None, "b": None, "c": None}
    k = legacy.domains_.index("c")
    with torch.no_grad():
        Z = legacy._standardize(data["c_test"])
        ref = legacy.flow_.log_prob(Z, torch.full((Z.shape[0],), k)).double().numpy() + legacy._score_offset
    np.testing.assert_allclose(legacy.score_samples(data["c_test"], domain="c"), ref, rtol=1e-12)
    # a file from a newer format is refused with its version
    write_model_file(tmp_path / "new.flowad", tensors, {**manifest, "mixture_format": 7})
    with pytest.raises(flowad.ModelFileError, match="format 7"):
        flowad.load(tmp_path / "new.flowad")


def test_adapt_rows_whose_statistics_overflow_are_refused_and_leave_the_model_unchanged() -> None:
    from flowad.exceptions import NonFiniteError

    X = np.random.default_rng(0).normal(size=(60, 2))
    det = AdaFlow(n_couplings=1, hidden=(4,), epochs=1, random_state=0).fit(X)
    before = det.decision_function(X[:5], domain=det.domains_[0])
    with pytest.raises(NonFiniteError, match="not finite inside the flow"):
        det.adapt(X * 1e20, domain="big")
    assert "big" not in det.domains_
    np.testing.assert_array_equal(det.decision_function(X[:5], domain=det.domains_[0]), before)
