"""The trimmed loss of Robust RealNVP (Algorithm 1) and the training loop's guards."""

from __future__ import annotations

import math

import pytest
import torch

from flowad.exceptions import TrainingDivergedError
from flowad.flows import build_realnvp
from flowad.training import TrainConfig, fit_flow, trimmed_mean
from flowad.training.loop import kept_rows, n_kept


@pytest.mark.parametrize(("batch", "ratio", "kept"), [(10, 0.0, 10), (10, 0.2, 8), (10, 0.25, 8), (256, 0.1, 231), (3, 0.5, 2), (1, 0.3, 1)])
def test_n_kept_is_batch_minus_floor(batch: int, ratio: float, kept: int) -> None:
    assert n_kept(batch, ratio) == kept == max(1, batch - math.floor(ratio * batch))


def test_trimming_drops_exactly_the_largest_nll() -> None:
    nll = torch.tensor([0.5, 9.0, 1.0, 7.0, 2.0, 3.0, 8.0, 4.0, 5.0, 6.0], requires_grad=True)
    loss = trimmed_mean(nll, 0.3)  # drops floor(3) largest: 9, 8, 7
    assert loss.item() == pytest.approx((0.5 + 1 + 2 + 3 + 4 + 5 + 6) / 7)
    loss.backward()
    dropped = torch.tensor([False, True, False, True, False, False, True, False, False, False])
    assert torch.all(nll.grad[dropped] == 0)
    assert torch.allclose(nll.grad[~dropped], torch.full((7,), 1 / 7))


def test_no_trimming_is_the_plain_mean() -> None:
    nll = torch.randn(17)
    assert trimmed_mean(nll, 0.0) == nll.mean()


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="trim_ratio"):
        TrainConfig(trim_ratio=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=1)


def test_divergence_is_reported_with_epoch_and_cause() -> None:
    flow = build_realnvp(2, n_couplings=2, hidden=(8,))
    X = torch.randn(64, 2)
    X[5, 0] = float("nan")  # the detectors reject NaN input; the loop must still never train on it silently
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, step \d+ \(lr=0.001\).*Likely causes"):
        fit_flow(flow, X, TrainConfig(epochs=2, batch_size=16), generator=torch.Generator().manual_seed(0))
    assert not flow.training  # left in eval mode even on failure


def test_training_lowers_the_loss_and_is_deterministic() -> None:
    X = torch.randn(256, 3) * torch.tensor([1.0, 0.2, 3.0]) + 1.0
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        flow = build_realnvp(3, n_couplings=2, hidden=(16,))
        hist = fit_flow(flow, X, TrainConfig(epochs=15, batch_size=64, lr=3e-3), generator=torch.Generator().manual_seed(0))
        runs.append((hist, flow.log_prob(X).detach()))
    assert runs[0][0][-1] < runs[0][0][0]
    assert runs[0][0] == runs[1][0]
    torch.testing.assert_close(runs[0][1], runs[1][1], atol=0, rtol=0)


def test_observe_epochs_sees_every_epoch_and_is_scoped() -> None:
    from flowad.training import observe_epochs

    seen: list[tuple[int, int, float]] = []
    flow = build_realnvp(2, n_couplings=1, hidden=(4,))
    X = torch.randn(32, 2)
    with observe_epochs(lambda e, n, loss: seen.append((e, n, loss))):
        hist = fit_flow(flow, X, TrainConfig(epochs=3, batch_size=16), generator=torch.Generator().manual_seed(0))
    assert [(e, n) for e, n, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert [loss for *_, loss in seen] == hist
    fit_flow(flow, X, TrainConfig(epochs=2, batch_size=16), generator=torch.Generator().manual_seed(0))
    assert len(seen) == 3  # observer gone after the block


# ---------------------------------------------------------------- trimming once per epoch


def _state(flow: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in flow.state_dict().values()]


def test_config_rejects_an_unknown_trim_scope() -> None:
    with pytest.raises(ValueError, match=r"trim_scope must be one of \('batch', 'epoch'\), got 'global'"):
        TrainConfig(trim_scope="global")


def test_kept_rows_are_the_likeliest_rows_in_row_order_and_non_finite_ones_go_first() -> None:
    torch.manual_seed(0)
    flow = build_realnvp(3, n_couplings=2, hidden=(8,)).double()
    X = torch.randn(40, 3, dtype=torch.float64)
    nll = -flow.log_prob(X).detach()
    kept = kept_rows(flow, X, 0.25)
    assert kept.tolist() == sorted(torch.argsort(nll)[: n_kept(40, 0.25)].tolist())
    X[[3, 17], 0] = float("nan")  # rows whose density cannot be computed are left out before any other
    X[25, 1] = float("inf")
    kept = kept_rows(flow, X, 0.1)  # drops 4 rows: the three non-finite ones and the least likely other
    assert kept.numel() == 36 and not set(kept.tolist()) & {3, 17, 25}


def test_epoch_and_batch_scopes_coincide_when_the_set_is_one_minibatch() -> None:
    X = torch.cat([torch.randn(90, 2, dtype=torch.float64), 6.0 + torch.randn(10, 2, dtype=torch.float64)])
    states = []
    for scope in ("batch", "epoch"):
        torch.manual_seed(0)
        flow = build_realnvp(2, n_couplings=2, hidden=(8,)).double()  # no spectral norm: eval mode = train mode
        fit_flow(flow, X, TrainConfig(epochs=5, batch_size=128, trim_ratio=0.1, trim_scope=scope), generator=torch.Generator().manual_seed(0))
        states.append(_state(flow))
    for a, b in zip(*states, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scope", ["batch", "epoch"])
def test_epoch_scope_keeps_a_far_row_out_of_every_minibatch(scope: str) -> None:
    """With 100 rows, trim 0.01 and minibatches of 20, the per-minibatch loss trims floor(0.2) = 0
    rows and trains on the far row; trimming the whole set once per epoch leaves exactly that
    row out, so where it lies cannot change the trained weights."""
    states = []
    for far in (10.0, 30.0):
        X = torch.randn(100, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        X[7] = far
        torch.manual_seed(0)
        flow = build_realnvp(2, n_couplings=2, hidden=(8,)).double()
        fit_flow(flow, X, TrainConfig(epochs=3, batch_size=20, trim_ratio=0.01, trim_scope=scope), generator=torch.Generator().manual_seed(0))
        states.append(_state(flow))
    same = all(torch.equal(a, b) for a, b in zip(*states, strict=True))
    assert same == (scope == "epoch")
