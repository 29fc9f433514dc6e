"""The Gaussian core (robust whitening + identity-initialised couplings) and dequantization of
the RealNVP family: what the untrained flow is, what training sees, and what the density means."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from flowad import RealNVP, RobustRealNVP
from flowad.bijections import Whitening
from flowad.flows import build_realnvp
from flowad.preprocessing import robust_covariance


def test_an_identity_initialised_whitened_flow_is_the_gaussian_of_its_statistics() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    loc, cov = rng.normal(size=4), a @ a.T + 0.3 * np.eye(4)
    flow = build_realnvp(4, n_couplings=3, hidden=(8,), lipschitz_k=1.0, whiten=True, identity_init=True).double()
    flow.bijection.layers[0].set_statistics(loc, cov)
    x = rng.normal(size=(50, 4)) * 2
    with torch.no_grad():
        got = flow.log_prob(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, multivariate_normal(loc, cov).logpdf(x), rtol=1e-10, atol=1e-10)


def test_whitening_maps_onto_the_principal_axes_in_order_of_variance() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=(5, 5))
    loc, cov = rng.normal(size=5), a @ a.T + 0.2 * np.eye(5)
    layer = Whitening(5).double()
    layer.set_statistics(loc, cov)
    W = layer.weight.numpy()
    np.testing.assert_allclose(W @ cov @ W.T, np.eye(5), atol=1e-10)  # whitens
    evals, evecs = np.linalg.eigh(cov)
    # row i is the i-th principal axis (decreasing variance) over its standard deviation
    np.testing.assert_allclose(np.abs(W), np.abs(evecs[:, ::-1].T / np.sqrt(evals[::-1])[:, None]), atol=1e-10)
    assert np.all(W[np.arange(5), np.abs(W).argmax(axis=1)] > 0)  # signs fixed
    assert float(layer.log_abs_det) == pytest.approx(-0.5 * np.log(evals).sum(), abs=1e-12)


def test_whitening_does_not_depend_on_the_order_of_the_columns() -> None:
    rng = np.random.default_rng(6)
    a = rng.normal(size=(4, 4))
    cov, perm = a @ a.T + 0.2 * np.eye(4), np.array([2, 0, 3, 1])
    x = rng.normal(size=(10, 4))
    out = []
    for order in (np.arange(4), perm):
        layer = Whitening(4).double()
        layer.set_statistics(np.zeros(4), cov[np.ix_(order, order)])
        out.append(layer(torch.as_tensor(x[:, order]))[0].numpy())
    np.testing.assert_allclose(out[0], out[1], atol=1e-10)


def test_the_default_detector_does_not_depend_on_the_order_of_continuous_columns() -> None:
    """Standardization, robust statistics and principal axes are all equivariant to a column
    permutation, so the whitened rows the couplings train on are the same."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4))
    perm = np.array([3, 1, 0, 2])
    kw = {"n_couplings": 2, "hidden": (8,), "epochs": 3, "dtype": "float64", "random_state": 0}
    a = RobustRealNVP(**kw).fit(X).decision_function(X)
    b = RobustRealNVP(**kw).fit(X[:, perm]).decision_function(X[:, perm])
    np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-7)


def test_whitening_refuses_a_singular_covariance() -> None:
    with pytest.raises(ValueError, match="not positive definite"):
        Whitening(2).set_statistics(np.zeros(2), np.ones((2, 2)))


def test_the_fitted_whitening_ignores_the_trimmed_anomalies() -> None:
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(450, 3)), rng.normal(5.0, 0.1, size=(50, 3))])
    det = RobustRealNVP(contamination=0.15, epochs=1, whiten=True, identity_init=True, random_state=0).fit(X)
    layer = det.flow_.bijection.layers[0]
    assert isinstance(layer, Whitening)
    Z = (X - det.mean_) / det.scale_
    loc, cov = robust_covariance(np.clip(Z, -20, 20), 0.15)
    np.testing.assert_allclose(layer.loc.numpy(), loc, rtol=1e-5, atol=1e-6)
    # in standardized units the normal rows sit near the origin: the cluster did not pull the location
    assert np.abs(((0.0 - det.mean_) / det.scale_) - layer.loc.numpy()).max() < 0.25


@pytest.mark.parametrize("whiten_trim_ratio", [None, 0.0, 0.3])
def test_the_whitening_covariance_uses_its_own_trim_when_given(whiten_trim_ratio: float | None) -> None:
    """``whiten_trim_ratio`` sets the whitening's trim alone (None: the detector's); the loss
    keeps trimming ``trim_ratio``."""
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(270, 3)), rng.normal(4.0, 0.1, size=(30, 3))])
    det = RobustRealNVP(contamination=0.1, epochs=1, whiten_trim_ratio=whiten_trim_ratio, random_state=0).fit(X)
    layer = det.flow_.bijection.layers[0]
    Z = (X - det.mean_) / det.scale_
    loc, cov = robust_covariance(Z, 0.1 if whiten_trim_ratio is None else whiten_trim_ratio)
    assert np.all(det.dequantize_widths_ == 0)  # continuous columns: no noise variance added
    reference = Whitening(3).double()
    reference.set_statistics(loc, cov)
    np.testing.assert_allclose(layer.loc.numpy(), loc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.weight.numpy(), reference.weight.numpy(), rtol=1e-4, atol=1e-5)
    assert det.trim_ratio_ == 0.1
    if whiten_trim_ratio == 0.0:  # all rows: the cluster pulls the location towards itself
        assert layer.loc.numpy().mean() > robust_covariance(Z, 0.1)[0].mean() + 0.2


@pytest.mark.parametrize("bad", [-0.1, 0.5, float("nan"), "0.1"])
def test_an_unusable_whitening_trim_is_refused(bad: object) -> None:
    from flowad import InputError

    with pytest.raises(InputError, match=r"whiten_trim_ratio must be None or a float in \[0, 0.5\)"):
        RobustRealNVP(whiten_trim_ratio=bad, epochs=1).fit(np.random.default_rng(0).normal(size=(50, 2)))


def test_with_no_couplings_the_detector_is_its_robust_gaussian(tmp_path) -> None:
    """``n_couplings=0``: the score is the log-density of the trimmed Gaussian of the
    standardized training rows (in the original units), nothing is trained, a planted 30 %
    cluster stays outside the fit, and the model file gives the same scores."""
    rng = np.random.default_rng(11)
    X = np.vstack([rng.normal(size=(210, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 2.0]]), rng.normal(4.0, 0.1, size=(90, 3))])
    det = RobustRealNVP(n_couplings=0, contamination=0.3, random_state=0).fit(X)
    assert sum(p.numel() for p in det.flow_.parameters()) == 0
    Z = (X - det.mean_) / det.scale_
    loc, cov = robust_covariance(np.clip(Z, -det.train_clip_, det.train_clip_), 0.3)
    want = multivariate_normal(loc, cov).logpdf(Z) - np.log(det.scale_).sum()
    np.testing.assert_allclose(det.score_samples(X), want, rtol=1e-5, atol=1e-4)
    nll = -multivariate_normal(loc, cov).logpdf(Z)
    assert det.history_ == pytest.approx([np.sort(nll)[: 300 - 90].mean()], rel=1e-5)  # the trimmed NLL
    assert det.decision_function(X[210:]).min() > np.quantile(det.decision_function(X[:210]), 0.99)  # the cluster is outside
    # the training settings play no part
    other = RobustRealNVP(n_couplings=0, contamination=0.3, epochs=1, lr=1.0, batch_size=7, random_state=5).fit(X)
    np.testing.assert_array_equal(other.score_samples(X), det.score_samples(X))
    det.save(tmp_path / "g.flowad")
    np.testing.assert_array_equal(RobustRealNVP.load(tmp_path / "g.flowad").score_samples(X), det.score_samples(X))


@pytest.mark.parametrize("n_couplings", [0, 1])
def test_rows_that_determine_no_covariance_are_refused_in_words(n_couplings: int) -> None:
    from flowad import InputError

    X = np.repeat([[0.0, 1.0], [1.0, 3.0]], 30, axis=0) * 1e6 - 1e12  # two points, far from 0
    small = {"n_couplings": n_couplings, "epochs": 1, "hidden": (4,), "random_state": 0}
    for rows, params in ((X[[0, -1]], {}), (X, {"whiten_trim_ratio": 0.0, "dequantize": False})):
        with pytest.raises(InputError, match="do not determine a covariance.*whiten=False"):
            RobustRealNVP(**small, **params).fit(rows)
    # trimming (unequal counts on the two points: a positive shrinkage), or no whitening, gives a model
    for rows, params in ((X, {}), (X[[0, -1]], {"whiten": False})):
        det = RobustRealNVP(**small, **params).fit(rows)
        assert np.isfinite(det.decision_function(X)).all()


def test_with_no_couplings_and_no_whitening_the_flow_is_the_standard_normal() -> None:
    X = np.random.default_rng(12).normal(size=(100, 2)) * [1.0, 5.0]
    det = RobustRealNVP(n_couplings=0, whiten=False, dequantize=False).fit(X)
    Z = (X - det.mean_) / det.scale_
    want = multivariate_normal(np.zeros(2), np.eye(2)).logpdf(Z) - np.log(det.scale_).sum()
    np.testing.assert_allclose(det.score_samples(X), want, rtol=1e-5, atol=1e-4)


def test_without_the_options_the_flow_has_no_whitening_and_no_gate() -> None:
    det = RobustRealNVP(epochs=1, whiten=False, identity_init=False, dequantize=False, random_state=0).fit(
        np.random.default_rng(2).normal(size=(100, 3))
    )
    assert not any(isinstance(m, Whitening) for m in det.flow_.modules())
    assert not any(name.endswith("gate") for name, _ in det.flow_.named_parameters())
    assert np.all(det.dequantize_widths_ == 0)


def test_training_minibatches_are_dequantized_within_their_cells() -> None:
    from flowad.training import fit_flow
    from flowad.training.config import TrainConfig

    seen: list[torch.Tensor] = []
    flow = build_realnvp(2, n_couplings=1, hidden=(4,))
    log_prob = flow.log_prob

    def spy(x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        seen.append(x.detach().clone())
        return log_prob(x, context)

    flow.log_prob = spy  # type: ignore[method-assign]
    rng = np.random.default_rng(4)
    X = torch.as_tensor(np.c_[rng.integers(0, 3, 200) * 2.0, rng.normal(size=200)], dtype=torch.float32)
    widths = torch.tensor([2.0, 0.0])
    fit_flow(flow, X, TrainConfig(epochs=2, batch_size=50), generator=torch.Generator().manual_seed(0), dequantize=widths)
    batch = torch.cat(seen)
    offset = batch[:, 0] - torch.round(batch[:, 0] / 2.0) * 2.0
    assert offset.abs().max() <= 1.0 and offset.std() > 0.5  # spread over the whole cell [-1, 1]
    assert set(np.round(np.sort(batch[:, 1].numpy()), 5)) <= set(np.round(X[:, 1].numpy(), 5))  # continuous: untouched


def test_a_dequantized_density_integrates_to_one_and_lives_on_the_cells() -> None:
    """Column 0 takes the values 0..3 (a lattice), column 1 is continuous. The dequantized model is
    a density in raw units: it integrates to 1 over the plane, nearly all of it over the cells
    ``[v - 1/2, v + 1/2]`` of the lattice."""
    rng = np.random.default_rng(3)
    n = 1500
    X = np.c_[rng.integers(0, 4, n).astype(float), rng.normal(size=n)]
    det = RealNVP(n_couplings=4, hidden=(32, 32), epochs=40, dequantize=True, random_state=0).fit(X)
    assert det.dequantize_widths_[0] == pytest.approx(1.0) and det.dequantize_widths_[1] == 0.0
    g0, g1 = np.linspace(-2.5, 5.5, 321), np.linspace(-6.0, 6.0, 241)
    xx, yy = np.meshgrid(g0, g1, indexing="ij")
    dens = np.exp(det.score_samples(np.c_[xx.ravel(), yy.ravel()])).reshape(xx.shape)
    cell = (g0[1] - g0[0]) * (g1[1] - g1[0])
    assert dens.sum() * cell == pytest.approx(1.0, abs=0.03)
    on_cells = (g0 >= -0.5) & (g0 <= 3.5)
    assert dens[on_cells].sum() * cell > 0.9


def test_robust_realnvp_defaults_to_the_gaussian_core_and_dequantization() -> None:
    params = RobustRealNVP().get_params()
    assert params["whiten"] and params["identity_init"] and params["dequantize"]
    assert not any(RealNVP().get_params()[k] for k in ("whiten", "identity_init", "dequantize"))  # the study's baseline


def test_old_model_files_load_with_the_new_options_off() -> None:
    """A model file written before these options existed has none of them in its params."""
    from pathlib import Path

    from flowad import load

    with pytest.warns(UserWarning, match="format 1"):
        det = load(Path(__file__).parents[1] / "io" / "data" / "robust-realnvp-0.1.0.flowad")
    params = det.get_params()
    assert params["whiten"] is False and params["dequantize"] is False and params["identity_init"] is False
    assert not any(isinstance(m, Whitening) for m in det.flow_.modules())
