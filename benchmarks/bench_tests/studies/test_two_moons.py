"""The two-moons generator and a quick end-to-end run of the study."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from flowad_bench.studies.two_moons import (
    MODELS,
    SETTINGS,
    TwoMoonsConfig,
    make_split,
    run_two_moons,
    summarize,
    to_markdown,
)

from flowad.datasets.synthetic import CLUSTER_CENTER, CLUSTER_STD, MOONS_NOISE, moons_box, n_anomalies, two_moons


def _distance_to_moons(X: np.ndarray, n: int = 4000) -> np.ndarray:
    """Distance of each row to the noiseless moon curves of sklearn's make_moons."""
    t = np.linspace(0.0, np.pi, n)
    curve = np.vstack([np.column_stack([np.cos(t), np.sin(t)]), np.column_stack([1 - np.cos(t), 0.5 - np.sin(t)])])
    return np.sqrt(((X[:, None, :] - curve[None, :, :]) ** 2).sum(-1)).min(axis=1)


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
@pytest.mark.parametrize(("n", "eps"), [(1000, 0.05), (333, 0.05), (200, 0.1)])
def test_shapes_and_exact_contamination(kind: str, n: int, eps: float) -> None:
    X, y = two_moons(n, contamination=eps, anomalies=kind, random_state=3)
    assert X.shape == (n, 2) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}
    assert int(y.sum()) == n_anomalies(n, eps) == round(eps * n)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = two_moons(300, anomalies="clustered", random_state=7)
    b = two_moons(300, anomalies="clustered", random_state=7)
    c = two_moons(300, anomalies="clustered", random_state=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_does_not_touch_global_rng() -> None:
    state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state().clone()
    two_moons(100, random_state=0)
    np.testing.assert_array_equal(state, np.random.get_state()[1])
    assert torch.equal(torch_state, torch.random.get_rng_state())


def test_normal_rows_lie_on_the_moons() -> None:
    X, y = two_moons(1000, contamination=0.05, anomalies="clustered", random_state=0)
    d = _distance_to_moons(X[y == 0])
    assert np.median(d) < 2 * MOONS_NOISE and d.max() < 6 * MOONS_NOISE


def test_clustered_anomalies_are_tight_and_off_the_moons() -> None:
    X, y = two_moons(2000, contamination=0.05, anomalies="clustered", random_state=0)
    A = X[y == 1]
    assert np.allclose(A.mean(axis=0), CLUSTER_CENTER, atol=3 * CLUSTER_STD / np.sqrt(len(A)) + 1e-3)
    assert A.std(axis=0).max() < 1.5 * CLUSTER_STD  # tight
    assert _distance_to_moons(A).min() > 5 * MOONS_NOISE  # off the manifold, beyond the moons' noise


def test_uniform_anomalies_fill_the_box() -> None:
    X, y = two_moons(4000, contamination=0.25, anomalies="uniform", random_state=0)
    A = X[y == 1]
    (x0, x1), (y0, y1) = moons_box()
    assert (A[:, 0] >= x0).all() and (A[:, 0] <= x1).all() and (A[:, 1] >= y0).all() and (A[:, 1] <= y1).all()
    assert A[:, 0].min() < x0 + 0.1 and A[:, 0].max() > x1 - 0.1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="anomalies must be one of"):
        two_moons(100, anomalies="ring")
    with pytest.raises(ValueError, match="contamination must be in"):
        two_moons(100, contamination=1.2)
    with pytest.raises(ValueError, match="random_state"):
        two_moons(100, random_state=None)  # type: ignore[arg-type]


def test_test_split_is_clean_and_held_out() -> None:
    cfg = TwoMoonsConfig.quick()
    X_tr, y_tr, X_te, y_te = make_split("clustered", 0, cfg)
    assert int(y_tr.sum()) == round(cfg.contamination * cfg.n_train)
    assert int((y_te == 0).sum()) == cfg.n_test_normal and int(y_te.sum()) == cfg.n_test_anomalies
    # fresh draws: no test row repeats a training row
    assert not (np.abs(X_te[:, None, :] - X_tr[None, :, :]).sum(-1) == 0).any()


@pytest.fixture
def one_thread():
    """Tiny networks: one torch thread is faster, and immune to a busy machine's other load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_quick_study_end_to_end(tmp_path, one_thread) -> None:
    cfg = TwoMoonsConfig.quick(n_train=200, grid=30)
    results = run_two_moons(tmp_path, cfg)
    for kind in SETTINGS:
        png = tmp_path / f"two_moons_{kind}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(results, pd.DataFrame)
    assert len(results) == len(SETTINGS) * len(MODELS) * cfg.seeds
    assert results["auc"].between(0.0, 1.0).all() and np.isfinite(results["auc"]).all()
    summary = summarize(results)
    assert list(summary.index) == list(MODELS)
    md = to_markdown(summary)
    assert md.count("\n") == 2 + len(MODELS) and "±" in md


def test_a_variant_is_its_model_with_the_overrides_and_gets_its_own_row(one_thread) -> None:
    from flowad_bench.methods import parse_variant
    from sklearn.metrics import roc_auc_score

    from flowad import RobustRealNVP

    cfg = TwoMoonsConfig.quick(n_train=200, grid=30)
    variant = parse_variant("RobustRealNVP:lipschitz_k=2.0")
    results = run_two_moons(None, cfg, settings=("uniform",), models=("RobustRealNVP",), variants=[variant])
    assert list(results["model"]) == ["RobustRealNVP", "RobustRealNVP[lipschitz_k=2.0]"]
    X_train, _, X_test, y_test = make_split("uniform", 0, cfg)
    direct = RobustRealNVP(contamination=cfg.contamination, epochs=cfg.epochs, device="cpu", random_state=0, lipschitz_k=2.0)
    expected = roc_auc_score(y_test, direct.fit(X_train).decision_function(X_test))
    assert results["auc"].iloc[1] == pytest.approx(expected, abs=1e-12)
    assert list(summarize(results).index) == ["RobustRealNVP", "RobustRealNVP[lipschitz_k=2.0]"]
    with pytest.raises(ValueError, match="its own label"):
        run_two_moons(None, cfg, settings=("uniform",), models=("RobustRealNVP",), variants=[variant, variant])
