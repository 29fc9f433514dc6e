"""AdaFlow's ``stationary_frames``: each domain's Gaussian uses the stationarity of stacked frames;
parameter checks, streaming, model files, ONNX device adaptation and the sound pipeline."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

import flowad
from flowad.detectors._adaflow import AdaFlow
from flowad.exceptions import InputError
from flowad.flows.moments import CoMoments, ShrunkGaussian

FRAMES, WIDTH = 4, 3
pytestmark = pytest.mark.filterwarnings("ignore:Domain 'c' has only")  # few adaptation rows on purpose


def _windows(rng: np.random.Generator, n: int, level: float, loud: float = 1.0) -> np.ndarray:
    """``n`` rows of FRAMES consecutive frames (frame-major) of a stationary AR(1) signal."""
    x = rng.normal(size=(n, WIDTH)) / np.sqrt(1 - 0.6**2)
    out = []
    for _ in range(FRAMES):
        out.append(level + loud * x @ np.array([[1.0, 0.4, 0.0], [0.0, 1.0, 0.5], [0.3, 0.0, 1.0]]))
        x = 0.6 * x + rng.normal(size=(n, WIDTH))
    return np.hstack(out)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a": _windows(rng, 150, 0.0), "b": _windows(rng, 150, 2.0, 1.5),
            "c": _windows(rng, 12, -3.0, 0.7), "c_test": _windows(rng, 40, -3.0, 0.7)}


@pytest.fixture(scope="module")
def fitted(data: dict[str, np.ndarray]) -> AdaFlow:
    X = np.vstack([data["a"], data["b"]])
    return AdaFlow(epochs=2, batch_size=64, dtype="float64", device="cpu", random_state=0,
                   stationary_frames=FRAMES).fit(X, domains=["a"] * 150 + ["b"] * 150)


def test_an_adapted_domain_gets_the_stationary_gaussian_of_its_rows(fitted: AdaFlow, data: dict) -> None:
    det = copy.deepcopy(fitted)
    det.adapt(data["c"], domain="c")
    assert det.mixture_weights_["c"] == 0.0  # 12 rows, the default rule: the domain's own Gaussian
    Z = det._standardize(data["c"]).double().numpy()
    layout = det._frame_layout  # the frames are stationary in the input's units, not in standardized ones
    assert layout.count == FRAMES
    np.testing.assert_allclose(layout.shift + layout.scale * Z, data["c"], rtol=1e-10, atol=1e-10)
    expected = ShrunkGaussian.fit(CoMoments.of(Z), frames=layout)
    got = det._mix[det._index("c")].gaussian
    assert got.toeplitz_weight == expected.toeplitz_weight > 0
    in_units = (layout.shift + layout.scale * got.mean).reshape(FRAMES, WIDTH)
    np.testing.assert_allclose(in_units, np.tile(in_units[0], (FRAMES, 1)), rtol=0.05, atol=0.05)  # nearly one mean per frame feature
    np.testing.assert_allclose(got.mean, expected.mean)
    np.testing.assert_allclose(got.chol, expected.chol)
    scores = det.decision_function(data["c_test"], domain="c")
    np.testing.assert_allclose(scores, -(expected.log_prob(det._standardize(data["c_test"]).double().numpy()) + det._score_offset))
    # the same rows without the structure give another Gaussian
    plain = copy.deepcopy(fitted).set_params(stationary_frames=1)
    plain.adapt(data["c"], domain="c")
    assert plain._mix[plain._index("c")].gaussian.toeplitz_weight == 0.0
    assert not np.allclose(plain.decision_function(data["c_test"], domain="c"), scores)


def test_streamed_and_in_memory_adaptation_agree(fitted: AdaFlow, data: dict) -> None:
    a, b = copy.deepcopy(fitted), copy.deepcopy(fitted)
    rows = np.vstack([data["c"], data["c_test"]])
    a.adapt(rows, domain="c")
    b.adapt(rows, domain="c", chunk_size=7)
    np.testing.assert_allclose(b.decision_function(data["a"], domain="c"), a.decision_function(data["a"], domain="c"), rtol=1e-9)


def test_model_files_keep_the_frames(fitted: AdaFlow, data: dict, tmp_path: Path) -> None:
    det = copy.deepcopy(fitted)
    det.adapt(data["c"], domain="c")
    det.save(tmp_path / "m.flowad")
    back = flowad.load(tmp_path / "m.flowad")
    assert back.stationary_frames == FRAMES
    np.testing.assert_array_equal(back.decision_function(data["c_test"], domain="c"), det.decision_function(data["c_test"], domain="c"))


def test_bad_frame_settings_are_refused_in_words(data: dict) -> None:
    X = np.vstack([data["a"], data["b"]])
    domains = ["a"] * 150 + ["b"] * 150
    with pytest.raises(InputError, match="stationary_frames must be an int >= 1"):
        AdaFlow(epochs=1, stationary_frames=0).fit(X, domains=domains)
    with pytest.raises(InputError, match="needs gaussian_space='input'"):
        AdaFlow(epochs=1, stationary_frames=FRAMES, gaussian_space="latent").fit(X, domains=domains)
    with pytest.raises(InputError, match="12 features, not a multiple of 5"):
        AdaFlow(epochs=1, stationary_frames=5).fit(X, domains=domains)
    stuck = X.copy()
    stuck[:, 0] = 1.0  # constant at the first frame position only
    with pytest.raises(InputError, match=r"frame features \[0\] are constant .* at some frame positions"):
        AdaFlow(epochs=1, stationary_frames=FRAMES).fit(stuck, domains=domains)
    every = X.copy()
    every[:, [0, WIDTH, 2 * WIDTH, 3 * WIDTH]] = 1.0  # constant at every position: the frames stay whole
    det = AdaFlow(epochs=1, random_state=0, stationary_frames=FRAMES).fit(every, domains=domains)
    det.adapt(every[:20], domain="c")
    assert np.isfinite(det.decision_function(every[:5], domain="c")).all()


def test_device_adaptation_fits_the_stationary_gaussian_as_pytorch(fitted: AdaFlow, data: dict, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from flowad.export import OnnxScorer, export_onnx

    det = AdaFlow(epochs=2, batch_size=64, random_state=0, stationary_frames=FRAMES).fit(
        np.vstack([data["a"], data["b"]]), domains=["a"] * 150 + ["b"] * 150)
    files = export_onnx(det, tmp_path / "m.onnx")
    assert json.loads(Path(files["metadata"]).read_text())["mixture"]["stationary_frames"] == FRAMES
    scorer = OnnxScorer(files["scoring"])
    det.adapt(data["c"], domain="c")
    scorer.adapt(data["c"], "c")
    np.testing.assert_allclose(scorer.decision_function(data["c_test"], "c"), det.decision_function(data["c_test"], domain="c"), rtol=1e-4, atol=1e-4)


def test_the_sound_pipeline_sets_the_frames_of_its_context_window() -> None:
    from flowad.features.audio import AudioFeatureConfig
    from flowad.pipelines.sound import SoundDetector

    assert SoundDetector().detector.stationary_frames == 11
    assert SoundDetector(config=AudioFeatureConfig(context=2)).detector.stationary_frames == 5
    assert SoundDetector(AdaFlow()).detector.stationary_frames == 1  # a detector given keeps its own
    with pytest.raises(InputError, match="stacks 11 frames per row"):
        SoundDetector(AdaFlow(stationary_frames=5))


def test_frames_set_after_fit_are_checked_when_used(fitted: AdaFlow, data: dict) -> None:
    det = copy.deepcopy(fitted).set_params(stationary_frames=5)
    with pytest.raises(InputError, match="not a multiple of 5"):
        det.adapt(data["c"], domain="c")
    assert "c" not in det.domains_  # nothing half-adapted is kept
    det = copy.deepcopy(fitted).set_params(gaussian_space="latent")
    with pytest.raises(InputError, match="needs gaussian_space='input'"):
        det.adapt(data["c"], domain="c")
