"""The bijection contract: every registered layer is checked for the same properties."""

from __future__ import annotations

import io

import pytest
import torch

from tests.contracts.registry import CASES, Case

DIMS = [2, 5]
BATCH = 7


def _setup(case: Case, d: int, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor | None]:
    bij = case.factory(d).to(dtype)
    x = torch.randn(BATCH, d, dtype=dtype)
    ctx = case.context(BATCH)
    case.prepare(bij, x, ctx)
    bij.eval()
    return bij, x, ctx


def _tol(dtype: torch.dtype) -> dict[str, float]:
    return {"atol": 1e-10, "rtol": 1e-9} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-4}


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.mark.parametrize("d", DIMS)
def test_shape_dtype_preserved(case: Case, d: int, dtype: torch.dtype) -> None:
    bij, x, ctx = _setup(case, d, dtype)
    y, ld = bij(x, ctx)
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert ld.shape == (BATCH,) and ld.dtype == dtype
    assert torch.isfinite(y).all() and torch.isfinite(ld).all()


@pytest.mark.parametrize("d", DIMS)
def test_inverse_round_trip(case: Case, d: int, dtype: torch.dtype) -> None:
    bij, x, ctx = _setup(case, d, dtype)
    with torch.no_grad():
        y, ld = bij(x, ctx)
        x_back, ld_inv = bij.inverse(y, ctx)
    torch.testing.assert_close(x_back, x, **_tol(dtype))
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), **_tol(dtype))


@pytest.mark.parametrize("d", DIMS)
def test_logdet_matches_autograd_jacobian(case: Case, d: int) -> None:
    bij, x, ctx = _setup(case, d, torch.float64)
    _, ld = bij(x, ctx)
    for i in range(BATCH):
        c = None if ctx is None else ctx[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, c=c: bij(v[None], c)[0][0], x[i])
        torch.testing.assert_close(ld[i], torch.linalg.slogdet(jac).logabsdet, atol=1e-8, rtol=1e-8)
        if case.structure == "diagonal":
            assert torch.count_nonzero(jac - torch.diag(torch.diagonal(jac))) == 0


@pytest.mark.parametrize("d", DIMS)
def test_every_parameter_gets_a_gradient(case: Case, d: int) -> None:
    if not case.all_params_get_grad:
        pytest.skip("layer has no trainable parameters")
    bij, x, ctx = _setup(case, d, torch.float64)
    bij.train()
    y, ld = bij(x, ctx)
    (y.square().sum() - ld.sum()).backward()
    params = [(n, p) for n, p in bij.named_parameters() if p.requires_grad]
    assert params, "case promises parameters but has none"
    missing = [n for n, p in params if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing}"


def test_train_equals_eval_where_promised(case: Case) -> None:
    if not case.train_equals_eval:
        pytest.skip("layer differs between train and eval by design")
    bij, x, ctx = _setup(case, 4, torch.float64)
    y_eval, ld_eval = bij(x, ctx)
    bij.train()
    y_train, ld_train = bij(x, ctx)
    torch.testing.assert_close(y_train, y_eval)
    torch.testing.assert_close(ld_train, ld_eval)


def test_state_dict_round_trip(case: Case) -> None:
    bij, x, ctx = _setup(case, 4, torch.float64)
    buf = io.BytesIO()
    torch.save(bij.state_dict(), buf)
    buf.seek(0)
    other = case.factory(4).to(torch.float64)
    case.prepare(other, x, ctx)
    other.load_state_dict(torch.load(buf, weights_only=True))
    other.eval()
    torch.testing.assert_close(other(x, ctx)[0], bij(x, ctx)[0], atol=0, rtol=0)
    assert repr(bij)
