"""Streaming moments, shrinkage covariances and the mixture's weight selection (flowad.flows.moments)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.covariance import OAS, LedoitWolf

from flowad.flows.moments import (
    DEFAULT_WEIGHT,
    MIN_SELECTION_ROWS,
    WEIGHT_GRID,
    CoMoments,
    Selection,
    ShrunkGaussian,
    fit_mixture,
    held_out_gaussian,
    ledoit_wolf,
    mixture_log_prob,
    oas,
)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_t(5, size=(203, 9)) @ rng.normal(size=(9, 9)) + 40.0  # offset: cancellation would show


@pytest.mark.parametrize("cuts", [[1], [3, 4, 100], [50, 51, 52, 202], list(range(1, 203))])
def test_streamed_moments_equal_batch_moments_whatever_the_chunking(rows: np.ndarray, cuts: list[int]) -> None:
    streamed = CoMoments.empty(9)
    for chunk in np.split(rows, cuts):
        streamed.update(chunk)
    batch = CoMoments.of(rows)
    assert streamed.count == batch.count == 203
    np.testing.assert_allclose(streamed.mean, batch.mean, rtol=1e-13)
    np.testing.assert_allclose(streamed.comoment, batch.comoment, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(streamed.s3, batch.s3, rtol=1e-9, atol=1e-7 * np.abs(batch.s3).max())
    np.testing.assert_allclose(streamed.s4, batch.s4, rtol=1e-10)


def test_merge_is_exact_and_symmetric(rows: np.ndarray) -> None:
    a, b = CoMoments.of(rows[:70]), CoMoments.of(rows[70:])
    ab, ba = a.merge(b), b.merge(a)
    for x, y in ((ab.comoment, ba.comoment), (ab.comoment, CoMoments.of(rows).comoment)):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-9)
    assert a.merge(CoMoments.empty(9)).count == 70 and CoMoments.empty(9).merge(b).count == 133
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(CoMoments.empty(3))


@pytest.mark.parametrize("n", [2, 5, 30, 203])
def test_ledoit_wolf_and_oas_equal_sklearns_on_the_same_rows(rows: np.ndarray, n: int) -> None:
    m = CoMoments.empty(9)
    for chunk in np.array_split(rows[:n], 2):
        m.update(chunk)
    cov, a = ledoit_wolf(m)
    lw = LedoitWolf().fit(rows[:n])
    np.testing.assert_allclose(a, lw.shrinkage_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov, lw.covariance_, rtol=1e-9, atol=1e-9)
    cov, a = oas(m.covariance, m.count)
    o = OAS().fit(rows[:n])
    np.testing.assert_allclose(a, o.shrinkage_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov, o.covariance_, rtol=1e-9, atol=1e-9)


def test_shrunk_gaussian_is_oas_on_the_rows_own_standardization(rows: np.ndarray) -> None:
    m = CoMoments.of(rows[:40])
    g = ShrunkGaussian.fit(m)
    s = rows[:40].std(axis=0)
    corr = OAS().fit(rows[:40] / s).covariance_
    ref = multivariate_normal(rows[:40].mean(axis=0), corr * np.outer(s, s)).logpdf(rows)
    np.testing.assert_allclose(g.log_prob(rows), ref, rtol=1e-10)
    # the explicit factor (for ONNX) gives the same density
    y = (rows - g.mean) @ g.factor.T
    np.testing.assert_allclose(g.const - 0.5 * (y**2).sum(axis=1), ref, rtol=1e-10)
    # held out by an exact downdate: the rest's correlations with every row's mean and scales
    rest = held_out_gaussian(CoMoments.of(rows), CoMoments.of(rows[:40]))
    mu, sd = rows.mean(axis=0), rows.std(axis=0)
    corr = OAS().fit(rows[40:] / rows[40:].std(axis=0)).covariance_
    ref = multivariate_normal(mu, corr * np.outer(sd, sd)).logpdf(rows)
    np.testing.assert_allclose(rest.log_prob(rows), ref, rtol=1e-9)


def test_mixture_log_prob_is_exact_at_the_ends() -> None:
    lf, lg = np.array([-3.0, -1e4]), np.array([-1e4, -2.0])
    np.testing.assert_array_equal(mixture_log_prob(lf, lg, 1.0), lf)
    np.testing.assert_array_equal(mixture_log_prob(lf, lg, 0.0), lg)
    np.testing.assert_allclose(mixture_log_prob(lf, lg, 0.25), [np.log(0.25) - 3.0, np.log(0.75) - 2.0])


@pytest.mark.parametrize("n", range(2, MIN_SELECTION_ROWS))
def test_fewer_than_ten_rows_keep_the_default_weight(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 4))
    # whatever the rows say (the flow far worse or far better), the weight stays 0.5
    for log_flow in (np.full(n, -1e3), np.full(n, 1e3)):
        state, out = fit_mixture(x, log_flow)
        assert state.weight == DEFAULT_WEIGHT and state.selection.count == 0 and np.isfinite(out).all()


def test_selection_is_deterministic_and_follows_clear_evidence() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5))
    good = multivariate_normal(np.zeros(5), np.eye(5)).logpdf(x)
    a, _ = fit_mixture(x, good - 30.0)  # the flow is much worse: all weight on the Gaussian
    b, _ = fit_mixture(x, good - 30.0)
    assert a.weight == b.weight == 0.0
    c, _ = fit_mixture(x, good + 30.0)  # the flow is much better: all weight on the flow
    assert c.weight == 1.0
    # ten rows with a weak preference: the one-standard-error rule keeps the weight near 0.5
    small, _ = fit_mixture(x[:10], good[:10] + rng.normal(0, 3, 10))
    assert abs(small.weight - DEFAULT_WEIGHT) <= 0.25


def test_selection_weights_come_from_the_grid_and_merge() -> None:
    rng = np.random.default_rng(2)
    lf, lg = rng.normal(size=50), rng.normal(size=50)
    one = Selection.empty().add(lf, lg)
    two = Selection.empty().add(lf[:20], lg[:20]).add(lf[20:], lg[20:])
    np.testing.assert_allclose(one.sums, two.sums, rtol=1e-12)
    assert one.weight() == two.weight() and one.weight() in WEIGHT_GRID


def test_partial_batches_merge_moments_exactly(rows: np.ndarray) -> None:
    lf = np.zeros(rows.shape[0])
    whole, _ = fit_mixture(rows, lf)
    state, _ = fit_mixture(rows[:30], lf[:30])
    for lo, hi in ((30, 31), (31, 120), (120, 203)):
        state, _ = fit_mixture(rows[lo:hi], lf[lo:hi], prior=state)
    np.testing.assert_allclose(state.moments.comoment, whole.moments.comoment, rtol=1e-10, atol=1e-9)
    assert state.moments.count == 203 and state.selection.count == 203  # 30 by 5 folds, 173 held out from the prior


def test_moments_of_huge_rows_do_not_warn() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        m = CoMoments.of(np.array([[1.26e77], [-1.32e77]]))
    assert m.count == 2 and np.isfinite(m.mean).all() and np.isfinite(m.comoment).all()


@pytest.mark.parametrize("rows", [
    np.full((12, 3), 1e-300) * np.arange(12)[:, None],   # every variance below the floor
    np.array([[1e-310, 0.0], [0.0, 1e-310], [1e-310, 1e-310], [0.0, 0.0]] * 3),  # denormals
])
def test_gaussian_of_degenerate_rows_is_finite(rows: np.ndarray) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        g = ShrunkGaussian.fit(CoMoments.of(rows))
    assert np.isfinite(g.chol).all() and np.isfinite(g.const)


def test_gaussian_of_overflowing_rows_does_not_raise_or_warn() -> None:
    """Second moments beyond float64: no LinAlgError and no warning; the log-density is not
    finite, which the detectors' score checks turn into NonFiniteError."""
    import warnings

    rows = np.array([[1e154, 1.0], [-1e154, 2.0], [3e153, 1.5]] * 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        g = ShrunkGaussian.fit(CoMoments.of(rows))
    assert np.isfinite(g.chol).all()


# ------------------------------------------------------------------ stationary frames
def _windows(n: int, frames: int, width: int, seed: int) -> np.ndarray:
    """``n`` rows, each ``frames`` consecutive frames (frame-major) of a stationary vector AR(1)
    process with correlated channels and a non-zero mean: a block-Toeplitz covariance."""
    mix = np.random.default_rng(100).normal(size=(width, width)) / np.sqrt(width)
    rng = np.random.default_rng(seed)
    rows = np.empty((n, frames * width))
    for i in range(n):
        x = rng.normal(size=width) / np.sqrt(1 - 0.8**2)  # the stationary start
        out = []
        for _ in range(frames):
            out.append(x @ mix + 3.0)
            x = 0.8 * x + rng.normal(size=width)
        rows[i] = np.concatenate(out)
    return rows


def _true_covariance(frames: int, width: int) -> np.ndarray:
    mix = np.random.default_rng(100).normal(size=(width, width)) / np.sqrt(width)
    base = mix.T @ mix / (1 - 0.8**2)
    return np.block([[0.8 ** abs(u - t) * base for u in range(frames)] for t in range(frames)])


def test_block_toeplitz_is_the_frobenius_projection() -> None:
    from flowad.flows.moments import block_toeplitz

    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 12))
    a = a + a.T
    t = block_toeplitz(a, 4)
    blocks = t.reshape(4, 3, 4, 3)
    for k in range(4):  # constant along every block diagonal, symmetric
        for i in range(4 - k):
            np.testing.assert_allclose(blocks[i, :, i + k, :], blocks[0, :, k, :])
    np.testing.assert_allclose(t, t.T)
    np.testing.assert_allclose(block_toeplitz(t, 4), t, atol=1e-12)  # idempotent
    b = block_toeplitz(rng.normal(size=(12, 12)) + rng.normal(size=(12, 12)).T, 4)  # any symmetric block-Toeplitz matrix
    assert abs(np.sum((a - t) * b)) < 1e-9  # the residual is orthogonal to the subspace



@pytest.mark.parametrize("negatives", [0, 1, 3, 40])
def test_psd_clips_exactly_the_negative_eigenvalues(negatives: int) -> None:
    """Counted by inertia (LDL^T, with its 2 x 2 pivots) and removed with the partial or the full
    eigendecomposition: the nearest positive semi-definite matrix either way."""
    from flowad.flows.moments import _negative_count, _psd

    rng = np.random.default_rng(negatives)
    d = 60
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    w = rng.uniform(0.5, 3.0, size=d)
    w[:negatives] = -rng.uniform(0.1, 2.0, size=negatives)
    a = (q * w) @ q.T
    if negatives == 0:  # nothing to clip: the same matrix back
        assert _negative_count(a) == 0 and _psd(a) is a
        return
    a[0, 0] = a[1, 1] = 0.0  # zero pivots force 2 x 2 blocks in the factorization
    w_a = np.linalg.eigvalsh(a)
    assert _negative_count(a) == int(np.sum(w_a < 0))
    q_a = np.linalg.eigh(a)[1]
    expected = (q_a * np.maximum(w_a, 0.0)) @ q_a.T
    np.testing.assert_allclose(_psd(a), expected, atol=1e-5 * np.abs(w_a).max())
    assert np.linalg.eigvalsh(_psd(a)).min() > -1e-5 * np.abs(w_a).max()

def test_stationary_covariance_uses_the_structure_the_rows_support() -> None:
    from flowad.flows.moments import stationary_covariance

    frames, width = 6, 4
    truth = _true_covariance(frames, width)
    ratios = []
    for seed in range(10):
        few = CoMoments.of(_windows(8, frames, width, seed=seed))
        mean, cov, gamma, delta = stationary_covariance(few.mean, few.comoment, few.count, frames)
        tied = np.tile(few.mean.reshape(frames, width).mean(axis=0), frames)  # the mean over frame positions
        np.testing.assert_allclose(mean, (1 - gamma) * few.mean + gamma * tied)
        eig = np.linalg.eigvalsh(cov)
        assert gamma > 0.5 and delta > 0.6 and eig.min() > -1e-6 * eig.max()  # PSD up to float32 clipping
        ratios.append(np.linalg.norm(cov - truth) / np.linalg.norm(few.covariance - truth))
    # from 8 rows the structure is closer to the truth than the rows' own covariance, every time
    assert max(ratios) < 1.0 and np.mean(ratios) < 0.9
    many = CoMoments.of(_windows(4000, frames, width, seed=2))
    _, cov_many, _, _ = stationary_covariance(many.mean, many.comoment, many.count, frames)
    assert np.linalg.norm(cov_many - truth) < 0.1 * np.linalg.norm(truth)
    # rows that are not stationary (the last frame twice as loud): many of them leave the structure
    loud = _windows(4000, frames, width, seed=2)
    loud[:, -width:] *= 2.0
    m = CoMoments.of(loud)
    mean_loud, cov_loud, gamma_loud, delta_loud = stationary_covariance(m.mean, m.comoment, m.count, frames)
    assert gamma_loud < 0.01 and delta_loud < 0.05
    np.testing.assert_allclose(mean_loud, m.mean, atol=0.02)
    assert np.linalg.norm(cov_loud - m.covariance) < 0.05 * np.linalg.norm(m.covariance)


def test_shrunk_gaussian_with_frames_is_the_normal_density_it_describes() -> None:
    frames, width = 5, 3
    x = _windows(12, frames, width, seed=3)
    g = ShrunkGaussian.fit(CoMoments.of(x), frames=5)
    assert 0 < g.toeplitz_weight <= 1 and ShrunkGaussian.fit(CoMoments.of(x)).toeplitz_weight == 0.0
    cov = (g.chol @ g.chol.T) * np.outer(g.scale, g.scale)
    np.testing.assert_allclose(g.mean.reshape(frames, width), np.tile(g.mean[:width], (frames, 1)), rtol=1e-12)
    y = _windows(20, frames, width, seed=4)
    np.testing.assert_allclose(g.log_prob(y), multivariate_normal(g.mean, cov).logpdf(y), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="equal frames"):
        ShrunkGaussian.fit(CoMoments.of(x), frames=4)


def test_frames_in_their_own_units_equal_the_estimate_made_there() -> None:
    """With a per-feature map to the frames' units, the estimate is made there and mapped back."""
    from flowad.flows.moments import Frames, stationary_covariance

    x = _windows(15, 5, 3, seed=6)  # stationary in these units
    rng = np.random.default_rng(7)
    shift, scale = rng.normal(size=15), rng.uniform(0.5, 2.0, size=15)
    z = (x - shift) / scale  # standardized per feature: no longer stationary
    mz, cz = CoMoments.of(z), CoMoments.of(x)
    mean, cov, gamma, delta = stationary_covariance(mz.mean, mz.comoment, mz.count, Frames(5, shift, scale))
    mean_x, cov_x, gamma_x, delta_x = stationary_covariance(cz.mean, cz.comoment, cz.count, 5)
    assert (gamma, delta) == pytest.approx((gamma_x, delta_x))
    np.testing.assert_allclose(shift + scale * mean, mean_x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cov * np.outer(scale, scale), cov_x, rtol=1e-9, atol=1e-10)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_frames_survive_huge_rows_like_the_plain_gaussian() -> None:
    x = _windows(20, 4, 3, seed=8)
    for big in (1e100, 1e150):  # moments beyond float32 (and overflowing float64 at 1e150)
        x[0, 0] = big
        for frames in (1, 4):
            g = ShrunkGaussian.fit(CoMoments.of(x), frames=frames)
            assert np.isfinite(g.log_prob(x[1:])).all()
