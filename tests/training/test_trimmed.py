"""The trimmed loss of Robust RealNVP (Algorithm 1) and the training loop's guards."""

from __future__ import annotations

import math

import pytest
import torch

from flowad.exceptions import TrainingDivergedError
from flowad.flows import build_realnvp
from flowad.training import TrainConfig, fit_flow, trimmed_mean
from flowad.training.loop import n_kept


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
