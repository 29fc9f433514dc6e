"""ImageAdaFlow on tiny synthetic 8x8 domains: per-domain bits/dim, translation, persistence, errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from flowad.detectors import load
from flowad.detectors._image import ImageAdaFlow
from flowad.exceptions import InputError, UnknownDomainError
from tests.images._data import SMALL, domain_images


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return {
        "warm": domain_images("warm", 40, 0), "cool": domain_images("cool", 40, 1),
        "warm_test": domain_images("warm", 20, 2), "cool_test": domain_images("cool", 20, 3),
    }


@pytest.fixture(scope="module")
def det(data: dict[str, np.ndarray]) -> ImageAdaFlow:
    X = np.concatenate([data["warm"], data["cool"]])
    return ImageAdaFlow(**SMALL, random_state=0).fit(X, domains=["warm"] * 40 + ["cool"] * 40)


def test_fit_attributes(det: ImageAdaFlow) -> None:
    assert det.domains_ == ["cool", "warm"] and det.image_shape_ == (3, 8, 8) and det.n_features_in_ == 192
    assert len(det.history_) == 3 and np.isfinite(det.history_).all()
    assert det.domain_counts_ == {"cool": 40, "warm": 40}


def test_own_domain_statistics_give_lower_bits_per_dim(det: ImageAdaFlow, data: dict[str, np.ndarray]) -> None:
    for own, other in (("warm", "cool"), ("cool", "warm")):
        held = data[f"{own}_test"]
        assert det.bits_per_dim(held, own).mean() < det.bits_per_dim(held, other).mean()
    noise = np.random.default_rng(9).integers(0, 256, (10, 3, 8, 8))
    assert det.bits_per_dim(noise, "warm").min() > det.bits_per_dim(data["warm_test"], "warm").max()


def test_bits_per_dim_is_nll_in_bits(det: ImageAdaFlow, data: dict[str, np.ndarray]) -> None:
    x = data["warm_test"]
    np.testing.assert_allclose(det.bits_per_dim(x, "warm"), det.decision_function(x, "warm") / (192 * np.log(2)))


def test_translation_moves_colours_and_round_trips(det: ImageAdaFlow, data: dict[str, np.ndarray]) -> None:
    x = data["warm_test"]
    moved = det.translate(x, source="warm", target="cool")
    assert moved.shape == x.shape and moved.dtype == np.float64
    # channel means move toward the target domain's
    target_mean = data["cool"].mean(axis=(0, 2, 3))
    assert np.abs(moved.mean(axis=(0, 2, 3)) - target_mean).sum() < np.abs(x.mean(axis=(0, 2, 3)) - target_mean).sum() / 2
    back = det.translate(moved, source="cool", target="warm")
    assert np.abs(back - x).max() / 255.0 <= 1e-4
    np.testing.assert_allclose(det.translate(x, source="warm", target="warm"), x, atol=0.05)


def test_same_seed_same_model(data: dict[str, np.ndarray]) -> None:
    X = np.concatenate([data["warm"][:20], data["cool"][:20]])
    d = ["warm"] * 20 + ["cool"] * 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a = ImageAdaFlow(**{**SMALL, "epochs": 1}, random_state=3).fit(X, domains=d)
        b = ImageAdaFlow(**{**SMALL, "epochs": 1}, random_state=3).fit(X, domains=d)
    np.testing.assert_array_equal(a.score_samples(X[:5], "warm"), b.score_samples(X[:5], "warm"))


def test_save_load_identical_scores(det: ImageAdaFlow, data: dict[str, np.ndarray], tmp_path: Path) -> None:
    path = tmp_path / "img.flowad"
    det.save(path)
    other = load(path)
    assert isinstance(other, ImageAdaFlow) and other.image_shape_ == (3, 8, 8) and other.domains_ == det.domains_
    for d in det.domains_:
        np.testing.assert_array_equal(other.score_samples(data["warm_test"], d), det.score_samples(data["warm_test"], d))
    np.testing.assert_array_equal(
        other.translate(data["warm_test"], source="warm", target="cool"),
        det.translate(data["warm_test"], source="warm", target="cool"),
    )
    assert other.thresholds_ == det.thresholds_ and other.get_params() == det.get_params()


def test_adapt_new_domain_by_forward_passes(det: ImageAdaFlow, data: dict[str, np.ndarray], tmp_path: Path) -> None:
    path = tmp_path / "m.flowad"
    det.save(path)
    m = load(path)
    weights = {k: v.clone() for k, v in m.flow_.named_parameters()}
    inverted = 255 - data["warm"]
    m.adapt(inverted, domain="inverted")
    assert m.domains_ == ["cool", "warm", "inverted"]
    assert all((weights[k] == v).all() for k, v in m.flow_.named_parameters())
    held = 255 - data["warm_test"]
    assert m.bits_per_dim(held, "inverted").mean() < m.bits_per_dim(held, "warm").mean()
    m.remove_domain("inverted")
    np.testing.assert_array_equal(m.score_samples(data["warm_test"], "warm"), det.score_samples(data["warm_test"], "warm"))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((4, 192)), "shape \\(N, C, H, W\\)"),
        (np.zeros((4, 3, 8, 8)) + 300, "\\[0, 255\\]"),
        (np.full((4, 3, 8, 8), np.nan), "NaN"),
        (np.zeros((4, 3, 16, 16)), "fitted on \\(3, 8, 8\\)"),
        (np.zeros((4, 1, 8, 8)), "fitted on"),
    ],
)
def test_bad_images_are_refused(det: ImageAdaFlow, bad: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        det.score_samples(bad, "warm")


def test_fit_errors() -> None:
    with pytest.raises(InputError, match="divisible by 2\\*\\*levels"):
        ImageAdaFlow(levels=3).fit(np.zeros((4, 3, 12, 12)), domains=["a", "a", "b", "b"])
    with pytest.raises(InputError, match="levels must be an int >= 1"):
        ImageAdaFlow(levels=0).fit(np.zeros((4, 3, 8, 8)))


def test_unknown_domain(det: ImageAdaFlow, data: dict[str, np.ndarray]) -> None:
    with pytest.raises(UnknownDomainError, match="known domains"):
        det.translate(data["warm_test"], source="warm", target="sepia")


def test_translations_far_outside_the_pixel_range_are_reported(det: ImageAdaFlow, data: dict[str, np.ndarray], tmp_path: Path) -> None:
    from flowad.flows.glow import adabn2d_layers

    path = tmp_path / "m.flowad"
    det.save(path)
    m = load(path)
    first = adabn2d_layers(m.flow_)[0]
    first.set_statistics(0, first.statistics(0)[0], first.statistics(0)[1] * 1e8)  # "cool" spread enormously
    with pytest.warns(UserWarning, match="far outside \\[0, 255\\]"):
        m.translate(data["warm_test"], source="warm", target="cool")
