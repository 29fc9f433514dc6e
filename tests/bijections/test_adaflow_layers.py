"""Behaviour of the AdaFlow bijections beyond the shared contract (tests/contracts)."""

from __future__ import annotations

import io

import pytest
import torch

from flowad.bijections import AdaptiveBatchNorm, LeakyReLU, LULinear, RunningMoments
from flowad.bijections.adabn import EPS_VAR
from flowad.exceptions import InverseUnavailableError


# ------------------------------------------------------------------------------------ LU
def test_lu_starts_as_identity() -> None:
    lu = LULinear(5).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    y, ld = lu(x)
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(ld, torch.zeros(6, dtype=torch.float64))


def test_lu_logdet_equals_slogdet_of_weight() -> None:
    lu = LULinear(6).double()
    with torch.no_grad():
        for p in lu.parameters():
            p.add_(torch.randn_like(p))
    w = lu.weight()
    x = torch.randn(3, 6, dtype=torch.float64)
    y, ld = lu(x)
    torch.testing.assert_close(y, x @ w.T + lu.bias)
    torch.testing.assert_close(ld, torch.linalg.slogdet(w).logabsdet.expand(3))
    assert torch.linalg.det(w) > 0


def test_lu_diagonal_stays_positive_for_any_raw_value() -> None:
    lu = LULinear(3)
    with torch.no_grad():
        lu.diag_raw.fill_(-1e4)
    _, ld = lu(torch.randn(2, 3))
    assert torch.isfinite(ld).all()


@pytest.mark.parametrize("bad", [0, -2, 2.5, "3"])
def test_lu_rejects_bad_features(bad: object) -> None:
    with pytest.raises(ValueError, match="features must be an int >= 1"):
        LULinear(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- leaky ReLU
@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, True, "0.1"])
def test_leaky_relu_rejects_alpha_outside_open_unit_interval(alpha: object) -> None:
    with pytest.raises(ValueError, match=r"alpha must be a float in \(0, 1\)"):
        LeakyReLU(alpha)  # type: ignore[arg-type]


def test_leaky_relu_logdet_counts_negative_entries() -> None:
    x = torch.tensor([[1.0, -2.0, -3.0], [0.5, 0.5, 0.5]], dtype=torch.float64)
    y, ld = LeakyReLU(0.25)(x)
    torch.testing.assert_close(y, torch.tensor([[1.0, -0.5, -0.75], [0.5, 0.5, 0.5]], dtype=torch.float64))
    torch.testing.assert_close(ld, torch.tensor([2 * torch.log(torch.tensor(0.25)).item(), 0.0], dtype=torch.float64))


# -------------------------------------------------------------------------------- AdaBN
def _mixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    ctx = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 0, 2])
    x = torch.randn(10, 3, dtype=torch.float64) * (1.0 + ctx[:, None]) + 5.0 * ctx[:, None]
    return x, ctx


def test_adabn_train_mode_uses_each_domains_batch_statistics() -> None:
    bn = AdaptiveBatchNorm(3, n_domains=3).double().train()
    x, ctx = _mixed_batch()
    y, ld = bn(x, ctx)
    for k in range(3):
        xk = x[ctx == k]
        var = xk.var(0, unbiased=False)
        torch.testing.assert_close(y[ctx == k], (xk - xk.mean(0)) / torch.sqrt(var + EPS_VAR) * bn._scale() + bn.shift)
        torch.testing.assert_close(ld[ctx == k], (torch.log(bn._scale()) - 0.5 * torch.log(var + EPS_VAR)).sum().expand(len(xk)))
    assert torch.equal(bn.running_mean, torch.zeros(3, 3, dtype=torch.float64)), "forward must not change the stored statistics"


def test_adabn_train_mode_uses_stored_statistics_for_a_lone_sample() -> None:
    bn = AdaptiveBatchNorm(2, n_domains=2).double()
    bn.set_statistics(1, torch.tensor([1.0, 2.0]), torch.tensor([4.0, 9.0]))
    bn.train()
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 5.0]], dtype=torch.float64)
    y, _ = bn(x, torch.tensor([0, 0, 1]))
    expected = (x[2] - torch.tensor([1.0, 2.0])) / torch.sqrt(torch.tensor([4.0, 9.0]) + EPS_VAR) * bn._scale() + bn.shift
    torch.testing.assert_close(y[2], expected.double())


def test_adabn_eval_score_does_not_depend_on_the_batch() -> None:
    bn = AdaptiveBatchNorm(3, n_domains=3).double()
    x, ctx = _mixed_batch()
    for k in range(3):
        bn.set_statistics(k, x[ctx == k].mean(0), x[ctx == k].var(0))
    bn.eval()
    y_all, ld_all = bn(x, ctx)
    for i in range(len(x)):
        y_i, ld_i = bn(x[i : i + 1], ctx[i : i + 1])
        torch.testing.assert_close(y_i[0], y_all[i], atol=0, rtol=0)
        torch.testing.assert_close(ld_i[0], ld_all[i], atol=0, rtol=0)


def test_adabn_inverse_is_unavailable_in_train_mode() -> None:
    bn = AdaptiveBatchNorm(2).train()
    with pytest.raises(InverseUnavailableError, match=r"train mode.*\.eval\(\)"):
        bn.inverse(torch.randn(4, 2))


@pytest.mark.parametrize(
    ("ctx", "match"),
    [
        (None, "holds 2 domains: pass context"),
        (torch.tensor([0, 1, 2]), r"indices in \[0, 2\].*2 domain"),
        (torch.tensor([0.0, 1.0, 0.0]), "LongTensor of shape"),
        (torch.tensor([0, 1]), r"shape \(3,\)"),
    ],
)
def test_adabn_rejects_bad_context(ctx: torch.Tensor | None, match: str) -> None:
    bn = AdaptiveBatchNorm(2, n_domains=2).eval()
    with pytest.raises(ValueError, match=match):
        bn(torch.randn(3, 2), ctx)


def test_adabn_add_and_remove_domains_keep_other_rows() -> None:
    bn = AdaptiveBatchNorm(2)
    bn.set_statistics(0, torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0]))
    assert bn.add_domain(torch.tensor([3.0, 3.0]), torch.tensor([4.0, 4.0])) == 1
    assert bn.add_domain() == 2
    bn.remove_domain(1)
    assert bn.n_domains == 2
    torch.testing.assert_close(bn.running_mean, torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    torch.testing.assert_close(bn.running_var, torch.tensor([[2.0, 2.0], [1.0, 1.0]]))
    bn.remove_domain(1)
    with pytest.raises(ValueError, match="only domain"):
        bn.remove_domain(0)
    with pytest.raises(IndexError, match=r"in \[0, 1\)"):
        bn.statistics(3)
    with pytest.raises(ValueError, match="var finite and >= 0"):
        bn.set_statistics(0, torch.zeros(2), -torch.ones(2))


def test_adabn_state_dict_with_more_domains_loads_into_a_fresh_layer() -> None:
    bn = AdaptiveBatchNorm(3)
    bn.add_domain(torch.ones(3), 2 * torch.ones(3))
    buf = io.BytesIO()
    torch.save(bn.state_dict(), buf)
    buf.seek(0)
    fresh = AdaptiveBatchNorm(3)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert fresh.n_domains == 2
    torch.testing.assert_close(fresh.running_var, bn.running_var)


# ---------------------------------------------------------------------- running moments
@pytest.mark.parametrize("splits", [[100], [1, 99], [7, 13, 30, 50], [50, 0, 50]])
def test_running_moments_match_whole_batch_whatever_the_chunking(splits: list[int]) -> None:
    x = torch.randn(100, 4, dtype=torch.float64) * 3.0 + 1e3  # large offset: catastrophic for naive sums
    m = RunningMoments()
    for chunk in torch.split(x, splits):
        m.update(chunk)
    assert m.count == 100
    torch.testing.assert_close(m.mean, x.mean(0), atol=1e-10, rtol=1e-12)
    torch.testing.assert_close(m.var, x.var(0, unbiased=False), atol=1e-10, rtol=1e-10)


def test_running_moments_continue_from_stored_statistics() -> None:
    x = torch.randn(40, 2, dtype=torch.float64)
    m = RunningMoments(30, x[:30].mean(0), x[:30].var(0, unbiased=False))
    m.update(x[30:])
    torch.testing.assert_close(m.var, x.var(0, unbiased=False))
    with pytest.raises(ValueError, match="mean and var are required"):
        RunningMoments(3)


def test_lu_forward_is_the_same_for_small_and_large_batches() -> None:
    lu = LULinear(3).double()
    with torch.no_grad():
        for p in lu.parameters():
            p.add_(torch.randn_like(p))
    x = torch.randn(10, 3, dtype=torch.float64)  # 10 > D: W is formed
    y_big, _ = lu(x)
    y_small = torch.cat([lu(x[i : i + 2])[0] for i in range(0, 10, 2)])  # 2 <= D: two products
    torch.testing.assert_close(y_big, y_small, atol=1e-12, rtol=1e-12)
