"""AdaFlow's comparison flow: the pooled batch-norm flow and its fine-tuned variant."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import flowad
from flowad import InputError
from flowad.bijections import AdaptiveBatchNorm
from flowad.detectors import BatchNormFlow


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"a": rng.normal(0, 1, (120, 3)), "b": rng.normal(3, 2, (120, 3)), "c": rng.normal(-5, 0.5, (60, 3))}


def _fit(cls: type, data: dict, **kw: object) -> flowad.AdaFlow | BatchNormFlow:
    X = np.vstack([data["a"], data["b"]])
    return cls(epochs=2, batch_size=64, dtype="float64", device="cpu", random_state=0, **kw).fit(X, domains=["a"] * 120 + ["b"] * 120)


def test_pooled_flow_has_one_set_of_statistics_and_adapt_leaves_the_model_alone(data: dict) -> None:
    det = _fit(BatchNormFlow, data)
    layers = [m for m in det.flow_.modules() if isinstance(m, AdaptiveBatchNorm)]
    assert len(layers) == 2 and all(layer.n_domains == 1 for layer in layers)
    np.testing.assert_array_equal(det.score_samples(data["c"], domain="a"), det.score_samples(data["c"], domain="b"))
    before = {k: v.clone() for k, v in det.flow_.state_dict().items()}
    det.adapt(data["c"], domain="c")
    assert all(torch.equal(v, det.flow_.state_dict()[k]) for k, v in before.items())
    np.testing.assert_array_equal(det.score_samples(data["c"], domain="c"), det.score_samples(data["c"], domain="a"))
    scores = det.decision_function(data["c"], domain="c")
    assert det.thresholds_["c"] == pytest.approx(np.percentile(scores, 95.0))


def test_finetuning_trains_a_copy_per_domain(data: dict, tmp_path) -> None:
    det = _fit(BatchNormFlow, data, finetune_epochs=3, finetune_batch_size=16, finetune_lr=1e-3)
    pooled = {k: v.clone() for k, v in det.flow_.state_dict().items()}
    before = det.decision_function(data["c"], domain="a")
    det.adapt(data["c"], domain="c")
    assert all(torch.equal(v, det.flow_.state_dict()[k]) for k, v in pooled.items()), "the pooled flow must not change"
    tuned = det.domain_models_[det.domains_.index("c")]
    assert any(not torch.equal(v, tuned.state_dict()[k]) for k, v in pooled.items() if "running" not in k)
    after = det.decision_function(data["c"], domain="c")
    assert np.median(after) < np.median(before)
    path = tmp_path / "ft.flowad"
    det.save(path)
    back = flowad.load(path)
    np.testing.assert_array_equal(back.decision_function(data["c"], domain="c"), after)
    with pytest.raises(InputError, match="in memory"):
        det.adapt(lambda: iter([data["c"]]), domain="d")
    assert "d" not in det.domains_


@pytest.mark.parametrize("cls", [BatchNormFlow, flowad.AdaFlow])
def test_pickle_round_trip_keeps_domains(cls: type, data: dict) -> None:
    det = _fit(cls, data).adapt(data["c"], domain="c")
    back = pickle.loads(pickle.dumps(det))
    assert back.domains_ == det.domains_
    np.testing.assert_array_equal(back.decision_function(data["c"], domain="c"), det.decision_function(data["c"], domain="c"))


@pytest.mark.parametrize(("param", "value"), [("finetune_epochs", -1), ("finetune_lr", 0.0), ("finetune_batch_size", 1)])
def test_finetune_params_are_checked(param: str, value: object, data: dict) -> None:
    with pytest.raises(InputError, match=param):
        BatchNormFlow(**{param: value}).fit(data["a"])
