"""Image bijections on tiny images: the contract checks that need real (C, H, W) shapes
(squeeze, factor-out, the multi-scale Glow stack) and the per-domain AdaBN statistics."""

from __future__ import annotations

import io

import pytest
import torch

from flowad.bijections.image import AdaptiveBatchNorm2d, InvertibleConv1x1, Squeeze
from flowad.exceptions import InverseUnavailableError
from flowad.flows.glow import adabn2d_layers, bits_per_dim, build_glow, update_image_statistics

SHAPES = [(3, 4, 4), (1, 4, 4)]


def _glow(shape: tuple[int, int, int], levels: int = 2, n_domains: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    flow = build_glow(shape, n_domains=n_domains, levels=levels, steps=2, hidden=4)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow


def _adapted(shape: tuple[int, int, int], dtype: torch.dtype) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    flow = _glow(shape).to(dtype).eval()
    d = shape[0] * shape[1] * shape[2]
    x = torch.randn(16, d, dtype=dtype, generator=torch.Generator().manual_seed(1))
    ctx = torch.arange(16) % 2
    update_image_statistics(flow.bijection, x[ctx == 0], 0)
    update_image_statistics(flow.bijection, 2 * x[ctx == 1] + 1, 1)
    return flow, x, ctx


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_glow_round_trip_shape_dtype(shape: tuple[int, int, int], dtype: torch.dtype) -> None:
    flow, x, ctx = _adapted(shape, dtype)
    with torch.no_grad():
        z, ld = flow.bijection(x, ctx)
        back, ld_inv = flow.bijection.inverse(z, ctx)
    assert z.shape == x.shape and z.dtype == dtype and ld.shape == (16,) and ld.dtype == dtype
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert (back - x).abs().max() < tol
    assert (ld + ld_inv).abs().max() < tol * 100


@pytest.mark.parametrize("shape", SHAPES)
def test_glow_logdet_matches_autograd(shape: tuple[int, int, int]) -> None:
    flow, x, ctx = _adapted(shape, torch.float64)
    _, ld = flow.bijection(x, ctx)
    for i in range(3):
        c = ctx[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, c=c: flow.bijection(v[None], c)[0][0], x[i])
        torch.testing.assert_close(ld[i], torch.linalg.slogdet(jac).logabsdet, atol=1e-8, rtol=1e-8)


def test_glow_state_dict_round_trip() -> None:
    flow, x, ctx = _adapted((3, 4, 4), torch.float64)
    buf = io.BytesIO()
    torch.save(flow.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(5)  # a different random 1x1-conv start: loading must overwrite it
    other = build_glow((3, 4, 4), n_domains=2, levels=2, steps=2, hidden=4).double().eval()
    other.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(other.log_prob(x, ctx), flow.log_prob(x, ctx), atol=0, rtol=0)


def test_every_parameter_gets_a_gradient() -> None:
    flow = _glow((3, 4, 4)).double().train()
    x = torch.randn(8, 48, dtype=torch.float64)
    (-flow.log_prob(x, torch.arange(8) % 2).mean()).backward()
    missing = [n for n, p in flow.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_squeeze_is_an_exact_permutation() -> None:
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    y, ld = Squeeze()(x)
    assert y.shape == (2, 12, 2, 3) and torch.equal(ld, torch.zeros(2))
    assert torch.equal(torch.sort(y.flatten()).values, x.flatten())
    assert torch.equal(Squeeze().inverse(y)[0], x)
    # each output pixel holds one 2x2 block of the input
    assert set(y[0, :, 0, 0].tolist()) == set(x[0, :, :2, :2].flatten().tolist())
    with pytest.raises(ValueError, match="even"):
        Squeeze()(torch.zeros(1, 1, 3, 4))


def test_build_glow_checks_sizes() -> None:
    with pytest.raises(ValueError, match="divisible by 2\\*\\*levels"):
        build_glow((3, 12, 12), levels=3)


def test_invconv_starts_as_a_rotation() -> None:
    torch.manual_seed(0)
    w = InvertibleConv1x1(5).weight().double()
    torch.testing.assert_close(w @ w.T, torch.eye(5, dtype=torch.float64), atol=1e-5, rtol=0)


def test_adabn2d_per_domain_statistics_are_channel_moments() -> None:
    torch.manual_seed(0)
    layer = AdaptiveBatchNorm2d(3, n_domains=2).double().eval()
    a = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    b = 3 * torch.randn(7, 3, 4, 4, dtype=torch.float64) - 2
    update_image_statistics(layer, a, 0)
    update_image_statistics(layer, b, 1)
    for k, imgs in ((0, a), (1, b)):
        mean, var = layer.statistics(k)
        torch.testing.assert_close(mean, imgs.mean(dim=(0, 2, 3)))
        torch.testing.assert_close(var, imgs.var(dim=(0, 2, 3), unbiased=False))
    # in eval mode every image is normalized with its own domain's statistics
    y, _ = layer(torch.cat([a, b]), torch.tensor([0] * 5 + [1] * 7))
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
    # train mode: per-domain batch statistics inside a mixed batch give the same result here
    layer.train()
    y_train, _ = layer(torch.cat([a, b]), torch.tensor([0] * 5 + [1] * 7))
    torch.testing.assert_close(y_train, y)
    with pytest.raises(InverseUnavailableError):
        layer.inverse(y_train, torch.tensor([0] * 5 + [1] * 7))


def test_partial_statistics_merge_like_all_at_once() -> None:
    layer = AdaptiveBatchNorm2d(2).double().eval()
    x = torch.randn(10, 2, 4, 4, dtype=torch.float64)
    update_image_statistics(layer, x[:4], 0)
    update_image_statistics(layer, x[4:], 0, prior_count=4)
    torch.testing.assert_close(layer.statistics(0)[0], x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(layer.statistics(0)[1], x.var(dim=(0, 2, 3), unbiased=False))


def test_statistics_differ_per_domain_in_every_layer() -> None:
    flow, _, _ = _adapted((3, 4, 4), torch.float64)
    layers = adabn2d_layers(flow)
    assert len(layers) == 4
    assert all(not torch.allclose(layer.statistics(0)[1], layer.statistics(1)[1]) for layer in layers)


def test_bits_per_dim_of_uniform_density_is_eight() -> None:
    # a density of 1 on [-1/2, 1/2)^D is uniform over the 256 levels: 8 bits per dimension
    assert float(bits_per_dim(torch.tensor(0.0), 12)) == pytest.approx(8.0)
