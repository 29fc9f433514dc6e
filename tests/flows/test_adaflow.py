"""AdaFlow builders and forward-only statistics (flowad.flows.adaflow)."""

from __future__ import annotations

import pytest
import torch

from flowad.bijections import AdaptiveBatchNorm, AffineCoupling, Inverse, LeakyReLU, LULinear
from flowad.bijections.adabn import EPS_VAR
from flowad.flows import build_adaflow, build_batchnorm_flow
from flowad.flows.adaflow import adabn_layers, adapt_statistics, flat_layers, update_statistics


def _flow(d: int = 4, **kw: object) -> torch.nn.Module:
    flow = build_adaflow(d, n_domains=2, **kw).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow.eval()


def test_default_architecture_is_the_published_one() -> None:
    kinds = [type(layer) for layer in flat_layers(build_adaflow(3).bijection)]
    assert kinds == [LULinear, AdaptiveBatchNorm, LeakyReLU, LULinear, AdaptiveBatchNorm]


def test_depth_and_couplings_are_configurable() -> None:
    layers = flat_layers(build_adaflow(3, n_layers=3, n_couplings=2).bijection)
    assert sum(isinstance(layer, LULinear) for layer in layers) == 3
    assert sum(isinstance(layer, AffineCoupling) for layer in layers) == 4
    assert isinstance(layers[-1], AdaptiveBatchNorm)
    assert all(layer.n_domains == 1 for layer in adabn_layers(build_batchnorm_flow(3).bijection))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_layers": 0}, "n_layers"), ({"n_couplings": -1}, "n_couplings"), ({"n_couplings": 1, "n_layers": 1}, "n_layers >= 2"), ({"alpha": 1.0}, "alpha")],
)
def test_builder_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_adaflow(3, **kwargs)


def test_update_statistics_normalizes_every_adabn_input_of_the_domain() -> None:
    flow = _flow(n_layers=3, n_couplings=1, hidden=(8,))
    x = torch.randn(200, 4, dtype=torch.float64) * 2.0 + 1.0
    update_statistics(flow.bijection, x, 1)
    seen: list[tuple[AdaptiveBatchNorm, torch.Tensor]] = []
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.append((m, a[0]))) for m in adabn_layers(flow.bijection)]
    flow.log_prob(x, torch.ones(200, dtype=torch.long))
    for h in hooks:
        h.remove()
    assert len(seen) == 3
    for layer, h in seen:
        mean, var = layer.statistics(1)
        u = (h - mean) / torch.sqrt(var + EPS_VAR)
        torch.testing.assert_close(u.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-10, rtol=0)
        torch.testing.assert_close(u.var(0, unbiased=False), torch.ones(4, dtype=torch.float64), atol=1e-3, rtol=0)


def test_streaming_equals_single_pass_and_leaves_other_domains_alone() -> None:
    a, b = _flow(), None
    b = build_adaflow(4, n_domains=2).double().eval()
    b.load_state_dict(a.state_dict())
    before = [layer.statistics(0)[0].clone() for layer in adabn_layers(a.bijection)]
    x = torch.randn(101, 4, dtype=torch.float64) * 3.0 - 2.0
    update_statistics(a.bijection, x, 1)
    calls = []

    def chunks():
        calls.append(1)
        return iter(torch.split(x, 17))

    assert adapt_statistics(b.bijection, chunks, 1) == 101
    assert len(calls) == 2, "one pass per AdaBN layer"
    for la, lb, m0 in zip(adabn_layers(a.bijection), adabn_layers(b.bijection), before, strict=True):
        torch.testing.assert_close(lb.statistics(1)[0], la.statistics(1)[0], atol=1e-10, rtol=0)
        torch.testing.assert_close(lb.statistics(1)[1], la.statistics(1)[1], atol=1e-10, rtol=0)
        assert torch.equal(la.statistics(0)[0], m0)


def test_streaming_refuses_a_source_that_changes_between_passes() -> None:
    flow = _flow()
    sizes = iter([10, 9])
    with pytest.raises(ValueError, match="same rows on every call"):
        adapt_statistics(flow.bijection, lambda: [torch.randn(next(sizes), 4, dtype=torch.float64)], 1)
    with pytest.raises(ValueError, match="no rows"):
        adapt_statistics(flow.bijection, lambda: [], 1)


def test_statistics_need_eval_mode_and_bare_adabn_layers() -> None:
    flow = _flow()
    with pytest.raises(RuntimeError, match="eval"):
        update_statistics(flow.train().bijection, torch.randn(5, 4, dtype=torch.float64), 0)
    wrapped = Inverse(AdaptiveBatchNorm(4)).eval()
    with pytest.raises(TypeError, match="wraps an AdaptiveBatchNorm"):
        update_statistics(wrapped, torch.randn(5, 4), 0)
