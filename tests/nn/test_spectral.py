"""k-Lipschitz spectral normalization of the coupling networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowad import RobustRealNVP
from flowad.nn import MLP, spectral_norms


@pytest.mark.parametrize("k", [0.5, 1.0, 2.0])
def test_every_layer_has_operator_norm_k_after_training(k: float) -> None:
    X = np.random.default_rng(0).normal(size=(300, 4)) @ np.array([[3, 1, 0, 0], [0, 1, 0, 0], [0, 0, 2, 1], [1, 0, 0, 1.0]])
    det = RobustRealNVP(lipschitz_k=k, n_couplings=2, hidden=(16, 16), epochs=10, batch_size=50, random_state=0).fit(X)
    norms = spectral_norms(det.flow_)
    assert len(norms) == 2 * 3  # 2 couplings x 3 linear layers
    # W_SN = W / (sigma_max(W) / k): every layer sits at k, up to the power-iteration error.
    assert max(norms) <= k * 1.01, norms
    assert min(norms) >= k * 0.95, norms


def test_power_iteration_vector_persists_and_converges() -> None:
    torch.manual_seed(0)
    mlp = MLP(6, 6, hidden=(32,), lipschitz_k=1.0)
    lin = mlp[0]
    u0 = lin.parametrizations.weight[0]._u.clone()
    mlp.train()
    for _ in range(30):
        mlp(torch.randn(8, 6))
    assert not torch.equal(u0, lin.parametrizations.weight[0]._u)  # updated in place by training passes
    assert spectral_norms(mlp)[0] == pytest.approx(1.0, rel=1e-3)


def test_without_bound_last_layer_starts_at_zero() -> None:
    mlp = MLP(3, 4, hidden=(8,), lipschitz_k=None)
    assert torch.count_nonzero(mlp[-1].weight) == 0 and torch.count_nonzero(mlp[-1].bias) == 0


def test_invalid_k_and_activation() -> None:
    with pytest.raises(ValueError, match="lipschitz_k must be > 0"):
        MLP(2, 2, lipschitz_k=0.0)
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(2, 2, activation="gelu2")


def test_fast_tanh_equals_tanh_with_and_without_autograd() -> None:
    from flowad.nn.mlp import Tanh

    x = torch.randn(500, 7, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(Tanh()(x), torch.tanh(x), atol=1e-15, rtol=0)
    xg = x.clone().requires_grad_(True)
    y = Tanh()(xg)
    y.sum().backward()
    torch.testing.assert_close(xg.grad, 1 - torch.tanh(x) ** 2)
    with torch.inference_mode():
        torch.testing.assert_close(Tanh()(x.float()), torch.tanh(x.float()), atol=1e-6, rtol=0)
