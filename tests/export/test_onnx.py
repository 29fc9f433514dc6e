"""ONNX export: onnxruntime scores equal PyTorch's, and adapting through the graphs equals adapt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowad import RealNVP, RobustRealNVP, TrimRealNVP
from flowad.datasets import load_example
from flowad.detectors._adaflow import AdaFlow
from flowad.exceptions import InputError, UnknownDomainError
from flowad.export import OnnxScorer, export_onnx

pytest.importorskip("onnxruntime")

SMALL = {"n_couplings": 2, "hidden": (16,), "epochs": 3}


@pytest.fixture(scope="module")
def thyroid() -> np.ndarray:
    return load_example("thyroid")[0][:1500]


@pytest.mark.parametrize("cls", [RealNVP, TrimRealNVP, RobustRealNVP])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_realnvp_family_parity_on_random_and_real_data(cls: type, dtype: str, thyroid: np.ndarray, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    det = cls(**SMALL, dtype=dtype, random_state=0).fit(thyroid)
    files = export_onnx(det, tmp_path / "m.onnx")
    assert set(files) == {"scoring", "metadata"}
    scorer = OnnxScorer(files["scoring"])
    random_rows = thyroid[rng.integers(0, len(thyroid), 200)] + rng.normal(0, 0.05, size=(200, thyroid.shape[1]))
    for X in (thyroid, random_rows):
        ref = det.decision_function(X)
        np.testing.assert_allclose(scorer.decision_function(X), ref, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(ref).max() / 1e3))
    assert scorer.meta["threshold"] == det.threshold_


def test_constant_columns_are_handled_inside_the_graph(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=(300, 2)), np.full(300, 4.0), rng.normal(size=300)])
    with pytest.warns(UserWarning, match="constant"):
        det = RealNVP(**SMALL, random_state=0).fit(X)
    scorer = OnnxScorer(export_onnx(det, tmp_path / "m.onnx")["scoring"])
    np.testing.assert_allclose(scorer.decision_function(X), det.decision_function(X), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def domains_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    A = np.array([[1.0, 0.5, 0.0, 0.2], [0.0, 1.0, 0.3, 0.0], [0.0, 0.0, 1.0, 0.4], [0.0, 0.0, 0.0, 1.0]])
    X = rng.normal(size=(600, 4)) @ A
    dom = np.repeat(["a", "b", "c"], 200)
    X[dom == "b"] = X[dom == "b"] * 2.0 + 3.0
    X[dom == "c"] = X[dom == "c"] * 0.5 - 1.0
    X_new = (rng.normal(size=(250, 4)) @ A) * 1.5 + 6.0
    return X, dom, X_new


@pytest.mark.parametrize(("n_couplings", "dtype"), [(0, "float32"), (1, "float32"), (1, "float64")])
def test_adaflow_parity_per_domain_and_adaptation_through_onnx(domains_data: tuple, n_couplings: int, dtype: str, tmp_path: Path) -> None:
    X, dom, X_new = domains_data
    det = AdaFlow(epochs=3, n_couplings=n_couplings, hidden=(16,), dtype=dtype, random_state=0).fit(X, domains=dom)
    files = export_onnx(det, tmp_path / "ada.onnx")
    assert set(files) == {"scoring", "statistics", "metadata"}
    scorer = OnnxScorer(files["scoring"])
    for name in ("a", "b", "c"):
        np.testing.assert_allclose(scorer.decision_function(X, name), det.decision_function(X, domain=name), rtol=1e-4, atol=1e-4)
    # a domain adapted in PyTorch and shipped through the sidecar: its mixture inputs give the same scores
    det.adapt(X_new, domain="site-7")
    export_onnx(det, tmp_path / "ada2.onnx")
    np.testing.assert_allclose(OnnxScorer(tmp_path / "ada2.onnx").decision_function(X_new, "site-7"),
                               det.decision_function(X_new, domain="site-7"), rtol=1e-4, atol=1e-4)
    # adapting on the device (statistics graph, then the mixture in numpy) == adapt in PyTorch
    scorer.adapt(X_new, "site-7")
    np.testing.assert_allclose(scorer.decision_function(X_new, "site-7"), det.decision_function(X_new, domain="site-7"),
                               rtol=1e-4, atol=1e-4)
    # flow_only=True == adapt in PyTorch of the flow alone
    flow_only = AdaFlow(epochs=3, n_couplings=n_couplings, hidden=(16,), dtype=dtype, random_state=0,
                        adapted_density="flow").fit(X, domains=dom)
    flow_only.adapt(X_new, domain="site-7")
    scorer.adapt(X_new, "site-7", flow_only=True)
    np.testing.assert_allclose(scorer.decision_function(X_new, "site-7"), flow_only.decision_function(X_new, domain="site-7"),
                               rtol=1e-4, atol=1e-4)
    assert json.loads(files["metadata"].read_text())["mixture"]["inputs"] == ["gauss_mean", "gauss_factor", "gauss_const", "mix_weight"]
    with pytest.raises(UnknownDomainError, match="Unknown domain 'nowhere'"):
        scorer.decision_function(X, "nowhere")
    # rows are scored in bounded chunks; chunking does not change a score
    whole = scorer.decision_function(X, "a")
    scorer.chunk_rows = 7
    np.testing.assert_allclose(scorer.decision_function(X, "a"), whole, rtol=1e-6)


def test_export_refuses_unfitted_and_missing_folder(tmp_path: Path) -> None:
    from flowad import NotFittedError

    with pytest.raises(NotFittedError):
        export_onnx(RealNVP(), tmp_path / "m.onnx")
    det = RealNVP(**SMALL, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 2)))
    with pytest.raises(InputError, match="does not exist"):
        export_onnx(det, tmp_path / "missing" / "m.onnx")


def _op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_coupling_stacks_are_lowered_to_dense_layers(thyroid: np.ndarray, dtype: str, tmp_path: Path) -> None:
    det = RobustRealNVP(n_couplings=4, hidden=(16, 16), epochs=3, dtype=dtype, random_state=0).fit(thyroid)
    path = export_onnx(det, tmp_path / "m.onnx")["scoring"]
    assert not _op_types(path) & {"Slice", "Concat", "Split"}  # no column moves left in the graph
    ref = det.decision_function(thyroid)
    np.testing.assert_allclose(OnnxScorer(path).decision_function(thyroid), ref, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(ref).max() / 1e3))


@pytest.mark.parametrize("hidden", [(16, 16), (64,)])
def test_gaussian_core_and_dequantization_export_with_the_same_scores(thyroid: np.ndarray, hidden: tuple, tmp_path: Path) -> None:
    """The whitening layer and the couplings' gates reach the graph (dense-lowered or not)."""
    X = np.c_[thyroid, np.round(thyroid[:, :1] * 10)]  # a few-valued column: dequantized in training
    det = RobustRealNVP(n_couplings=3, hidden=hidden, epochs=3, whiten=True, identity_init=True, dequantize=True, random_state=0).fit(X)
    assert det.dequantize_widths_[-1] > 0
    path = export_onnx(det, tmp_path / "m.onnx")["scoring"]
    ref = det.decision_function(X)
    np.testing.assert_allclose(OnnxScorer(path).decision_function(X), ref, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(ref).max() / 1e3))


@pytest.mark.parametrize("whiten", [True, False])
def test_a_flow_without_couplings_exports_with_the_same_scores(thyroid: np.ndarray, whiten: bool, tmp_path: Path) -> None:
    """``n_couplings=0``: the robust Gaussian alone (or the standard normal) is a graph too."""
    det = RobustRealNVP(n_couplings=0, whiten=whiten, random_state=0).fit(thyroid)
    path = export_onnx(det, tmp_path / "m.onnx")["scoring"]
    ref = det.decision_function(thyroid)
    np.testing.assert_allclose(OnnxScorer(path).decision_function(thyroid), ref, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(ref).max() / 1e3))


def test_a_column_varying_below_float32_precision_is_left_out_and_export_agrees(tmp_path: Path) -> None:
    """A spread below float32's smallest normal number (onnxruntime flushes such subnormals to
    zero) carries nothing a float32 model can use: it is left out, with a warning, so PyTorch and
    the ONNX graph score alike (a fuzz finding: 1.5 % apart before)."""
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(size=200), rng.choice([0.0, -1.4e-45], size=200)])
    with pytest.warns(UserWarning, match=r"column 1.*vary by less than float32 can represent"):
        det = RobustRealNVP(n_couplings=1, hidden=(4,), epochs=2, random_state=0).fit(X)
    assert det.constant_features_.tolist() == [False, True]
    path = export_onnx(det, tmp_path / "m.onnx")["scoring"]
    np.testing.assert_allclose(OnnxScorer(path).decision_function(X), det.decision_function(X), rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="constant in the training data \\(at float32 precision\\)"), pytest.warns(UserWarning):
        RobustRealNVP(n_couplings=1, epochs=1).fit(X[:, 1:])
    X64 = np.column_stack([X[:, 0], np.where(X[:, 1] < 0, -1e-300, 0.0)])  # float64 holds this spread
    det64 = RobustRealNVP(n_couplings=1, hidden=(4,), epochs=1, dtype="float64", random_state=0).fit(X64)
    assert not det64.constant_features_.any()


def test_wide_networks_keep_the_sliced_layers(tmp_path: Path) -> None:
    from flowad.export import onnx as export_module

    X = np.random.default_rng(2).normal(size=(400, 10))
    det = RealNVP(n_couplings=2, hidden=(8, export_module.MAX_LOWERED_WIDTH + 1), epochs=2, random_state=0).fit(X)
    path = export_onnx(det, tmp_path / "m.onnx")["scoring"]
    assert "Slice" in _op_types(path)
    np.testing.assert_allclose(OnnxScorer(path).decision_function(X), det.decision_function(X), rtol=1e-4, atol=1e-4)


def test_lowering_folds_any_permutation_into_the_weights() -> None:
    import torch

    from flowad.bijections import AffineCoupling, Compose, Permutation
    from flowad.export.onnx import _lowered
    from flowad.flows.flow import standard_normal_log_prob

    torch.manual_seed(0)
    d = 5
    layers = []
    for split in (2, 3, 1):
        coupling = AffineCoupling(d, split=split, hidden=(8, 8), activation="tanh", lipschitz_k=1.0).eval()
        with torch.no_grad():
            for p in coupling.parameters():
                p.add_(0.3 * torch.randn_like(p))
        layers += [coupling, Permutation(torch.randperm(d))]
    stack = Compose(layers).eval()
    x = torch.randn(64, d, dtype=torch.float32)
    with torch.no_grad():
        z, ld = stack(x)
        h, ld_low = x, torch.zeros(64)
        for module in _lowered(layers, d):
            h, step = module(h)
            ld_low = ld_low + step
    torch.testing.assert_close(ld_low, ld, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(standard_normal_log_prob(h), standard_normal_log_prob(z), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.sort(h, dim=1).values, torch.sort(z, dim=1).values, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batchnorm_flow_shares_its_statistics_across_domains(domains_data: tuple, dtype: str, tmp_path: Path) -> None:
    from flowad.detectors import BatchNormFlow

    X, dom, X_new = domains_data
    det = BatchNormFlow(epochs=2, n_couplings=1, hidden=(8,), dtype=dtype, random_state=0).fit(X, domains=dom)
    scorer = OnnxScorer(export_onnx(det, tmp_path / "bn.onnx")["scoring"])
    det.adapt(X_new, domain="new")  # BatchNormFlow's adapt keeps the pooled statistics
    scorer.adapt(X_new, "new")
    for name in ("a", "c", "new"):
        np.testing.assert_allclose(scorer.decision_function(X_new, name), det.decision_function(X_new, domain=name), rtol=1e-4, atol=1e-4)


def test_fine_tuned_domains_are_refused_by_export(domains_data: tuple, tmp_path: Path) -> None:
    from flowad.detectors import BatchNormFlow

    X, dom, X_new = domains_data
    det = BatchNormFlow(epochs=1, finetune_epochs=1, n_couplings=0, hidden=(8,), random_state=0).fit(X, domains=dom)
    det.adapt(X_new, domain="new")
    with pytest.raises(InputError, match="fine-tuned"):
        export_onnx(det, tmp_path / "bn.onnx")
