"""A flow defines a probability density: it integrates to one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowad.flows import build_realnvp


def _randomize(flow: torch.nn.Module, scale: float) -> None:
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))


def _integral_2d(flow: torch.nn.Module, half_width: float = 10.0, n: int = 801) -> float:
    g = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    with torch.no_grad():
        dens = flow.log_prob(pts).exp().reshape(n, n).numpy()
    return float(np.trapezoid(np.trapezoid(dens, g.numpy(), axis=1), g.numpy()))


@pytest.mark.parametrize("lipschitz_k", [None, 1.0])
def test_realnvp_density_integrates_to_one_2d(lipschitz_k: float | None) -> None:
    flow = build_realnvp(2, n_couplings=4, hidden=(16, 16), s_max=1.0, lipschitz_k=lipschitz_k).double().eval()
    _randomize(flow, 0.2)
    total = _integral_2d(flow)
    assert abs(total - 1.0) < 1e-2, total


def test_trained_detector_density_integrates_to_one() -> None:
    """The detector's score_samples includes the standardization log-det: a density in input units."""
    from flowad import RealNVP

    rng = np.random.default_rng(0)
    X = rng.normal([3.0, -2.0], [2.0, 0.5], size=(400, 2))
    det = RealNVP(n_couplings=2, hidden=(16,), s_max=1.0, epochs=20, dtype="float64", random_state=0).fit(X)
    gx = np.linspace(3.0 - 20, 3.0 + 20, 601)
    gy = np.linspace(-2.0 - 5, -2.0 + 5, 601)
    xx, yy = np.meshgrid(gx, gy, indexing="ij")
    dens = np.exp(det.score_samples(np.column_stack([xx.ravel(), yy.ravel()]))).reshape(xx.shape)
    total = np.trapezoid(np.trapezoid(dens, gy, axis=1), gx)
    assert abs(total - 1.0) < 1e-2, total


def test_sample_is_inverse_of_density_direction() -> None:
    flow = build_realnvp(3, n_couplings=3, hidden=(8,)).double().eval()
    _randomize(flow, 0.3)
    g = torch.Generator().manual_seed(1)
    x = flow.sample(5, generator=g)
    z, _ = flow(x)
    g2 = torch.Generator().manual_seed(1)
    torch.testing.assert_close(z, torch.randn(5, 3, generator=g2, dtype=torch.float64))
