"""ONNX export of fitted flow detectors, and a small onnxruntime scorer.

Two graphs are written:

``<name>.onnx`` — the **scoring graph**. Input ``x`` of shape ``(n, n_features_in_)`` (raw
features, float64 whatever the model's dtype); outputs ``anomaly_score`` (negative
log-likelihood) and ``log_density``, each of shape ``(n,)``, float64. Standardization is
inside the graph, in float64 (as in PyTorch: a float32 model's features are standardized
before they are rounded to float32, so tiny, huge and offset columns keep their precision);
the flow runs in the model's dtype and the standardization's log-det is added in float64. For AdaFlow the graph takes the domain statistics as inputs as well: ``mean_j`` and
``var_j`` (each of shape ``(D,)``) for every AdaBN layer ``j`` — a device selects a domain by
feeding that domain's statistics, and adapts to a new domain by feeding new ones.

AdaFlow's per-domain mixture (``adapted_density="mixture"``) is four more graph inputs after
the AdaBN statistics: ``gauss_mean`` ``(D,)``, ``gauss_factor`` ``(D, D)``, ``gauss_const``
``(1,)`` and ``mix_weight`` ``(1,)``; the graph adds, in float64,
``log(w p_flow + (1 - w) p_gauss)`` with ``log p_gauss = gauss_const - |gauss_factor (u -
gauss_mean)|^2 / 2`` (``u`` the standardized input, or the latent plus the flow's log-det
for ``gaussian_space="latent"``). A domain without a Gaussian is fed ``mix_weight = 1``.

``<name>.stats.onnx`` (AdaFlow only) — the **statistics graph**: input ``x`` (the new
domain's normal rows, raw features, float64) and outputs ``mean_j``, ``var_j`` of every AdaBN layer,
layer ``j`` computed on inputs already normalized with the new statistics of layers ``< j``.
This equals :meth:`flowad.detectors.AdaFlow.adapt` on the same rows (one whole batch) for the
flow's statistics. The mixture's Gaussian needs a Cholesky factorization and its weight a
cross-validation, which ONNX operators do not offer: the statistics graph returns the
flow-only inputs (``mix_weight = 1``), and :meth:`OnnxScorer.adapt
<flowad.export.scorer.OnnxScorer.adapt>` completes them in numpy, as PyTorch does (the
scoring graph with ``mix_weight = 1`` gives each row's flow log-density, the sidecar's
``adapt_rows`` the standardization of the Gaussian's rows; ``mixture.device_adapt`` spells
out the recipe for other devices). A latent-space Gaussian (``gaussian_space="latent"``)
needs the flow's latent, which no graph outputs: adapt such a model in Python and ship the
domain's inputs from the sidecar, or adapt it on the device by the flow alone.

A JSON sidecar ``<name>.json`` holds what a device needs besides the graphs: feature names,
domains with their statistics and thresholds (or the single threshold), and ``input_checks``:
the checks the PyTorch detectors make and a device must make around the graphs (finite rows
of the right width, at least 2 finite rows to adapt, no NaN/inf score).
:class:`~flowad.export.scorer.OnnxScorer` makes them.

**Lowering of coupling stacks.** A stack of affine couplings and permutations (the RealNVP
family) is written without any slicing, concatenation or permutation node: each coupling
becomes a dense network on all ``D`` features whose first layer has zero columns for the
transformed half and whose ``s``/``t`` outputs are zero for the pass-through half (so those
features pass with scale ``exp(0) = 1`` and shift 0), and every permutation is folded into
the weights of the couplings after it (the base density's ``-|z|^2 / 2`` does not depend on
the order of ``z``). Same function; onnxruntime then spends its time in matrix products
instead of moving columns around. The padding costs extra multiply-adds, which pay only
where the conditioner networks are narrow (timed on one CPU thread while this was written:
faster for 16- and 32-wide networks on 6 to 32 features, slower for 64-wide ones on 20 and
more features), so it is used when no hidden layer is wider than :data:`MAX_LOWERED_WIDTH`;
other stacks are written as they are.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from flowad._validation import check_is_fitted
from flowad.bijections.adabn import EPS_VAR, AdaptiveBatchNorm
from flowad.bijections.base import Bijection, Compose
from flowad.bijections.coupling import AffineCoupling
from flowad.bijections.lu import LULinear
from flowad.bijections.permutation import Permutation
from flowad.bijections.whitening import Whitening
from flowad.exceptions import InputError
from flowad.export.scorer import INPUT_CHECKS, OnnxScorer
from flowad.flows.flow import standard_normal_log_prob

__all__ = ["export_onnx", "OnnxScorer"]

OPSET = 17
#: Coupling stacks whose conditioner networks are at most this wide are lowered to dense layers.
MAX_LOWERED_WIDTH = 32


def _flat(bijection: Bijection) -> list[Bijection]:
    if isinstance(bijection, Compose):
        return [leaf for layer in bijection.layers for leaf in _flat(layer)]
    return [bijection]


class _DenseCoupling(nn.Module):
    """An :class:`AffineCoupling` on all ``D`` features of a layout-permuted input (export only).

    The input holds the coupling's true input ``h`` in the order ``layout``: column ``i`` is
    ``h[:, layout[i]]``; the output keeps that order. See the module docstring.
    """

    def __init__(self, coupling: AffineCoupling, layout: Tensor) -> None:
        super().__init__()
        d, n = coupling.split, coupling.features - coupling.split
        linears = [m for m in coupling.net if isinstance(m, nn.Linear)]
        self.activations = nn.ModuleList(m for m in coupling.net if not isinstance(m, nn.Linear))
        with torch.no_grad():
            weights = [lin.weight.detach().clone() for lin in linears]  # spectral norm applied
            biases = [lin.bias.detach().clone() for lin in linears]
        first = weights[0].new_zeros(weights[0].shape[0], d + n)
        first[:, :d] = weights[0]
        weights[0] = first[:, layout]
        last_w, last_b = weights.pop(), biases.pop()
        if coupling.gate is not None:  # identity-initialised coupling: fold its gate into the last layer
            gate = torch.tanh(coupling.gate.detach()).to(last_w.dtype)
            last_w, last_b = last_w * gate, last_b * gate

        def padded(rows: slice) -> tuple[Tensor, Tensor]:
            w = last_w.new_zeros(d + n, last_w.shape[1])
            b = last_b.new_zeros(d + n)
            w[d:], b[d:] = last_w[rows], last_b[rows]
            return w[layout], b[layout]

        self.hidden = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in weights)
        self.hidden_bias = nn.ParameterList(nn.Parameter(b, requires_grad=False) for b in biases)
        w_s, b_s = padded(slice(0, n))
        w_t, b_t = padded(slice(n, 2 * n))
        self.register_buffer("w_s", w_s)
        self.register_buffer("b_s", b_s)
        self.register_buffer("w_t", w_t)
        self.register_buffer("b_t", b_t)
        self.s_max = coupling.s_max

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a = x
        for w, b, act in zip(self.hidden, self.hidden_bias, self.activations, strict=True):
            a = act(nn.functional.linear(a, w, b))
        raw_s = nn.functional.linear(a, self.w_s, self.b_s)
        t = nn.functional.linear(a, self.w_t, self.b_t)
        s = torch.tanh(raw_s * (1.0 / self.s_max)) * self.s_max
        return x * torch.exp(s) + t, s.sum(dim=1)


class _FrozenAdaBN(nn.Module):
    """An :class:`AdaptiveBatchNorm` with its scale ``softplus(r) + eps`` computed at export
    (export only): same map as ``forward_with_statistics``, and no Softplus node, which
    onnxruntime's CPU provider has for float32 only."""

    def __init__(self, layer: AdaptiveBatchNorm) -> None:
        super().__init__()
        with torch.no_grad():
            scale = layer._scale().detach().clone()
        self.register_buffer("scale", scale)
        self.register_buffer("log_scale_sum", torch.log(scale).sum())
        self.register_buffer("shift", layer.shift.detach().clone())

    def forward_with_statistics(self, x: Tensor, mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
        log_std = 0.5 * torch.log(var + EPS_VAR)
        y = (x - mean) * (self.scale * torch.exp(-log_std)) + self.shift
        return y, (self.log_scale_sum - log_std.sum(dim=-1)).expand(x.shape[0])


class _FrozenLU(nn.Module):
    """A :class:`LULinear` with ``W = L diag(d) U`` and its log-det computed at export (export
    only): no Softplus node (see :class:`_FrozenAdaBN`) and no products of the factors per call."""

    def __init__(self, layer: LULinear) -> None:
        super().__init__()
        with torch.no_grad():
            _, diag, _ = layer._factors()
            self.register_buffer("weight", layer.weight().detach().clone())
            self.register_buffer("bias", layer.bias.detach().clone())
            self.register_buffer("logdet", torch.log(diag).sum().detach().clone())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return nn.functional.linear(x, self.weight, self.bias), self.logdet.expand(x.shape[0])


class _FrozenWhitening(nn.Module):
    """A :class:`Whitening` with its log-det computed at export (export only): one MatMul, and
    no reduction over the weight's diagonal in the graph."""

    def __init__(self, layer: Whitening) -> None:
        super().__init__()
        with torch.no_grad():
            self.register_buffer("weight", layer.weight.detach().clone())
            self.register_buffer("loc", layer.loc.detach().clone())
            self.register_buffer("logdet", layer._logdet().detach().clone())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # the log-det as a 0-d tensor: it broadcasts onto the rows' sums (no Shape/Concat/Expand nodes)
        return nn.functional.linear(x - self.loc, self.weight), self.logdet


def _frozen(layer: Bijection) -> nn.Module:
    """The export form of a layer whose parameters pass through Softplus or whose log-det is a
    constant."""
    if isinstance(layer, AdaptiveBatchNorm):
        return _FrozenAdaBN(layer)
    if isinstance(layer, LULinear):
        return _FrozenLU(layer)
    if isinstance(layer, Whitening):
        return _FrozenWhitening(layer)
    return layer


def _lowered(layers: list[Bijection], features: int) -> list[nn.Module] | None:
    """The dense form of a coupling/permutation stack (after a leading whitening layer, kept as it
    is), or None where it does not apply or pay."""
    head: list[nn.Module] = []
    if layers and isinstance(layers[0], Whitening):
        head, layers = [_FrozenWhitening(layers[0])], layers[1:]
    couplings = [layer for layer in layers if isinstance(layer, AffineCoupling)]
    if not couplings or not all(isinstance(layer, AffineCoupling | Permutation) for layer in layers):
        return None
    hidden = [[m.out_features for m in c.net if isinstance(m, nn.Linear)][:-1] for c in couplings]
    if not all(hidden) or max(max(h) for h in hidden) > MAX_LOWERED_WIDTH:
        return None  # no hidden layer (nothing to gain), or wide ones (the padding costs more than it saves)
    layout = torch.arange(features)
    out: list[nn.Module] = list(head)
    for layer in layers:
        if isinstance(layer, Permutation):
            layout = layer.inv_perm.cpu()[layout]  # y = x[:, perm]: fold into the layout, no node
        else:
            out.append(_DenseCoupling(layer, layout))
    return out


class _Graph(nn.Module):
    """Standardization + the flow's layers, with AdaBN statistics supplied from outside."""

    def __init__(self, det: Any) -> None:
        super().__init__()
        keep = ~np.asarray(det.constant_features_)
        dtype = det.torch_dtype_
        self.select = not keep.all()  # no gather in the graph when every feature is used
        self.register_buffer("keep", torch.as_tensor(np.flatnonzero(keep), dtype=torch.long))
        # standardized in float64 from float64 rows, then cast to the model's dtype: as PyTorch does
        self.register_buffer("mean", torch.as_tensor(det.mean_[keep], dtype=torch.float64))
        self.register_buffer("scale", torch.as_tensor(det.scale_[keep], dtype=torch.float64))
        self.dtype = dtype
        self.offset = float(-np.log(det.scale_[keep]).sum())
        layers = _flat(det.flow_.bijection)
        lowered = _lowered(layers, int(keep.sum()))
        if lowered is None:
            lowered = [_frozen(layer) for layer in layers]
        self.layers = nn.ModuleList(lowered)
        self.n_adabn = sum(isinstance(layer, _FrozenAdaBN) for layer in self.layers)
        self.mixture = _has_mixture(det)
        self.latent = self.mixture and det.gaussian_space == "latent"
        self.features = int(keep.sum())

    def standardize(self, x: Tensor) -> Tensor:
        return self.standardize64(x).to(self.dtype)

    def standardize64(self, x: Tensor) -> Tensor:
        if self.select:
            x = x.index_select(1, self.keep)
        return (x - self.mean) / self.scale


class _ScoringGraph(_Graph):
    def forward(self, x: Tensor, *stats: Tensor) -> tuple[Tensor, Tensor]:
        u64 = self.standardize64(x)
        h = u64.to(self.dtype)
        log_density = None
        j = 0
        for layer in self.layers:
            if isinstance(layer, _FrozenAdaBN):
                h, ld = layer.forward_with_statistics(h, stats[2 * j], stats[2 * j + 1])
                j += 1
            else:
                h, ld = layer(h)
            if not isinstance(layer, Permutation):  # log|det| = 0: no zeros and sums in the graph
                log_density = ld if log_density is None else log_density + ld
        base = standard_normal_log_prob(h)
        log_flow = base if log_density is None else base + log_density
        if self.mixture:
            mean, factor, const, weight = (t.double() for t in stats[2 * self.n_adabn : 2 * self.n_adabn + 4])
            rows = h.double() if self.latent else u64
            y = nn.functional.linear(rows - mean, factor)
            log_gauss = const - 0.5 * y.square().sum(dim=1)
            if self.latent and log_density is not None:
                log_gauss = log_gauss + log_density.double()
            a = torch.log(weight) + log_flow.double()
            b = torch.log1p(-weight) + log_gauss
            m = torch.maximum(a, b)
            log_flow = m + torch.log(torch.exp(a - m) + torch.exp(b - m))
        log_density = log_flow.double() + self.offset  # the offset in float64, as PyTorch adds it
        return -log_density, log_density


class _StatisticsGraph(_Graph):
    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        h = self.standardize(x)
        out: list[Tensor] = []
        for layer in self.layers:
            if isinstance(layer, _FrozenAdaBN):
                mean = h.mean(dim=0)
                var = (h - mean).square().mean(dim=0)
                out += [mean, var]
                h, _ = layer.forward_with_statistics(h, mean, var)
            else:
                h, _ = layer(h)
        if self.mixture:  # flow-only inputs (see the module docstring): no Cholesky in ONNX
            d = self.features
            one = h.new_ones(1)
            out += [h.new_zeros(d) + 0.0 * h[0], torch.eye(d, dtype=h.dtype), 0.0 * one, one]
        return tuple(out)


#: The mixture's graph inputs, after the AdaBN statistics.
MIXTURE_INPUTS = ("gauss_mean", "gauss_factor", "gauss_const", "mix_weight")
#: The sidecar's ``mixture.device_adapt``: how a domain adapted on a device gets its mixture.
DEVICE_ADAPT = {
    "input": "OnnxScorer.adapt computes the mixture as AdaFlow.adapt does: the statistics graph gives the AdaBN "
    "statistics (and flow-only mixture inputs, mix_weight = 1, no Cholesky in ONNX); the scoring graph run with "
    "them gives each row's flow log-density log_density - adapt_rows.log_density_offset; the Gaussian and the "
    "weight come from the standardized rows u (adapt_rows) and those densities by "
    "flowad.flows.moments.fit_mixture (5 folds i % 5, OAS-shrunk correlations — with mixture.stationary_frames > 1 "
    "first shrunk toward block-Toeplitz, flowad.flows.moments.stationary_covariance —, the weight by the rule in "
    "mixture.selection: 'target', 0.5 below 10 rows and 0 from 10 rows on; 'likelihood', from 0, 0.05, ..., 1 by "
    "held-out log-likelihood, 0.5 below 10 rows); the scoring graph's inputs are then gauss_mean, gauss_factor, "
    "gauss_const and mix_weight of that DomainMixture. OnnxScorer.adapt(..., flow_only=True) keeps the flow alone.",
    "latent": "flow only: the Gaussian lives in the flow's latent space, which no graph outputs, so OnnxScorer.adapt "
    "refuses unless flow_only=True (then mix_weight = 1); adapt in Python and copy the domain's inputs from this "
    "file for the mixture",
}


def _has_mixture(det: Any) -> bool:
    return getattr(det, "adapted_density", None) == "mixture" and hasattr(det, "_mix")


def _stat_names(n: int, mixture: bool = False) -> list[str]:
    return [name for j in range(n) for name in (f"mean_{j}", f"var_{j}")] + (list(MIXTURE_INPUTS) if mixture else [])


def _mixture_inputs(det: Any, index: int, features: int) -> list[np.ndarray]:
    """The mixture's graph inputs of domain ``index`` (flow only, weight 1, without a Gaussian)."""
    mix = det._mix[index]
    if mix is None:
        return [np.zeros(features), np.eye(features), np.zeros(1), np.ones(1)]
    g = mix.gaussian
    return [g.mean.copy(), g.factor, np.array([g.const]), np.array([det._weight(mix)])]


def _shared_statistics(det: Any) -> bool:
    """True for BatchNormFlow: one set of batch-norm statistics serves every domain, and
    ``adapt`` leaves it unchanged (only the domain's threshold is set)."""
    return hasattr(det, "domain_models_")


def _domain_stats(det: Any) -> dict[str, list[np.ndarray]]:
    layers = [m for m in _flat(det.flow_.bijection) if isinstance(m, AdaptiveBatchNorm)]
    shared = _shared_statistics(det)
    features = int((~np.asarray(det.constant_features_)).sum())
    return {
        name: [t.detach().cpu().numpy() for layer in layers for t in layer.statistics(0 if shared else k)]
        + (_mixture_inputs(det, k, features) if _has_mixture(det) else [])
        for k, name in enumerate(det.domains_)
    }


def export_onnx(det: Any, path: str | os.PathLike[str]) -> dict[str, Path]:
    """Export a fitted flow detector to ONNX (see the module docstring for the graphs).

    Parameters
    ----------
    det : fitted RealNVP, TrimRealNVP, RobustRealNVP, AdaFlow or BatchNormFlow
    path : path-like
        The scoring graph's file (``.onnx``); the sidecar and the statistics graph go beside it.

    Returns
    -------
    dict
        ``{"scoring": path, "metadata": ..., "statistics": ...}`` (the last for AdaFlow only).
    """
    check_is_fitted(det)
    if not hasattr(det, "flow_") or not hasattr(det, "mean_"):
        raise InputError(f"{type(det).__name__} is not a flow detector; ONNX export supports flow models only.")
    if hasattr(det, "image_shape_"):
        raise InputError("ONNX export does not support image models yet; score them with `flowad image score` or ImageAdaFlow.")
    tuned = [n for n, m in zip(getattr(det, "domains_", []), getattr(det, "domain_models_", []), strict=False) if m is not None]
    if tuned:
        raise InputError(
            f"Domains {tuned} have fine-tuned copies of the flow, which ONNX export does not write; "
            "export a BatchNormFlow with finetune_epochs=0."
        )
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"Output folder {str(path.parent)!r} does not exist.")
    det.flow_.eval()
    scoring = _ScoringGraph(det).eval()
    dtype = det.torch_dtype_
    d_in = int(det.n_features_in_)
    x = torch.zeros(3, d_in, dtype=torch.float64)
    domains = getattr(det, "domains_", None)
    stats_names = _stat_names(scoring.n_adabn, scoring.mixture)
    stats_example: tuple[Tensor, ...] = ()
    if scoring.n_adabn:
        first = _domain_stats(det)[domains[0]]
        stats_example = tuple(torch.as_tensor(a, dtype=dtype) for a in first)
    dyn = {"x": {0: "n"}, "anomaly_score": {0: "n"}, "log_density": {0: "n"}}
    files = {"scoring": path}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            scoring,
            (x, *stats_example),
            str(path),
            input_names=["x", *stats_names],
            output_names=["anomaly_score", "log_density"],
            dynamic_axes=dyn,
            opset_version=OPSET,
            dynamo=False,
        )
        if scoring.n_adabn:
            stats_path = path.with_suffix(".stats.onnx")
            torch.onnx.export(
                _StatisticsGraph(det).eval(),
                (x,),
                str(stats_path),
                input_names=["x"],
                output_names=stats_names,
                dynamic_axes={"x": {0: "n"}},
                opset_version=OPSET,
                dynamo=False,
            )
            files["statistics"] = stats_path
    meta: dict[str, Any] = {
        "kind": getattr(det, "_kind", type(det).__name__),
        "dtype": det.dtype,
        "n_features_in": d_in,
        "feature_names_in": None if getattr(det, "feature_names_in_", None) is None else [str(n) for n in det.feature_names_in_],
        "statistics_inputs": stats_names,
        "adapt_statistics": bool(scoring.n_adabn) and not _shared_statistics(det),  # False: adapt keeps the statistics
        "input_checks": INPUT_CHECKS,  # what OnnxScorer (and any device) checks around the graphs
    }
    if scoring.n_adabn:
        st = det._standardization
        meta["adapt_rows"] = {  # what adapting on a device needs besides the graphs
            "about": "the model's standardization (flowad.preprocessing.Standardization): u = (x[:, ~constant] - mean) / "
            "scale in float64, rounded to the model's dtype; adaptation rows in which a non-constant feature "
            "never changes are refused (flowad._validation.check_adaptation_range)",
            "mean": [float(v) for v in st.mean],
            "scale": [float(v) for v in st.scale],
            "constant": [bool(v) for v in st.constant],
            "log_density_offset": float(scoring.offset),
        }
    if scoring.mixture:
        meta["mixture"] = {
            "inputs": list(MIXTURE_INPUTS),
            "gaussian_space": det.gaussian_space,
            "selection": det._rule,
            "stationary_frames": det._frames,
            "device_adapt": DEVICE_ADAPT[det.gaussian_space],
        }
    if domains is not None:
        stats = _domain_stats(det) if scoring.n_adabn else {}
        meta["domains"] = {
            name: {
                "threshold": float(det.thresholds_[name]),
                "statistics": {n: a.tolist() for n, a in zip(stats_names, stats.get(name, []), strict=False)},
            }
            for name in domains
        }
    else:
        meta["threshold"] = float(det.threshold_)
    meta_path = path.with_suffix(".json")
    meta_path.write_text(json.dumps(meta, indent=1))
    files["metadata"] = meta_path
    return files
