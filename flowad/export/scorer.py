"""Score and adapt exported graphs under onnxruntime, behind the same input gate as PyTorch.

:class:`OnnxScorer` checks what it is given exactly as the PyTorch detectors do, with the
same functions (:mod:`flowad._validation`, the domain checks of
:mod:`flowad.detectors._domains`) and so the same exception types and messages:

- rows: a 2-D numeric array, DataFrame or tensor with no NaN/inf (``InputError`` naming the
  first bad row and column), as many features as the model (``InputError``), and a
  DataFrame's column names equal to the exported ones when both are known;
- ``adapt``: at least 2 rows (``InputError``; a warning below
  :data:`~flowad.detectors._domains.MIN_ADAPT_SAMPLES`), all finite, no modelled feature
  constant over them (``InputError``); the new statistics and the scores of the adaptation
  rows under them must be finite, else ``NonFiniteError`` and the domain keeps its previous
  statistics (nothing is stored before every check passed);
- scores: a NaN or infinite score raises ``NonFiniteError`` naming the rows (a row at 1e30
  never comes back as ``inf``);
- domains: ``UnknownDomainError`` for a name the model does not know, ``InputError`` when a
  multi-domain model is scored without one.

The same rules are written into the export's JSON sidecar (``input_checks``) for devices that
run the graphs without this class.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from flowad._validation import check_adaptation_range, check_n_features, check_X, feature_names_of
from flowad.detectors._base import BaseFlowDetector
from flowad.detectors._domains import _check_rows, domain_name
from flowad.exceptions import InputError, NonFiniteError, UnknownDomainError
from flowad.flows.moments import SELECTION_RULES, Frames, fit_mixture
from flowad.preprocessing import Standardization

__all__ = ["INPUT_CHECKS", "OnnxScorer"]

#: What a device must check around the graphs; written into the sidecar as ``input_checks``.
INPUT_CHECKS: dict[str, str] = {
    "x": "float64, 2-D, shape (n, n_features_in), n >= 1, every value finite (refuse rows with NaN or inf, "
    "naming them); DataFrame columns equal to feature_names_in when both are known.",
    "adapt": "at least 2 rows (fewer than 30 give noisy statistics), all finite, no feature that is not "
    "constant (adapt_rows.constant) equal in every row; the statistics graph's "
    "outputs and the scoring graph's scores of those rows under them must be finite, else keep "
    "the domain's previous statistics.",
    "anomaly_score": "refuse a NaN or infinite score (naming the rows): values far outside the "
    "training range overflow, float32 models first.",
    "domain": "one of domains (a model with a single domain may be scored without naming it).",
}


def _check_scores(scores: np.ndarray, dtype: str) -> None:
    """The PyTorch detectors' non-finite score check (same rule, same message)."""
    BaseFlowDetector._check_scores(SimpleNamespace(dtype=dtype), scores)  # type: ignore[arg-type]


class OnnxScorer:
    """Score and adapt with exported graphs under onnxruntime (no PyTorch needed at run time).

    Parameters
    ----------
    path : path-like
        The scoring graph written by :func:`~flowad.export.export_onnx`; the sidecar JSON and,
        for AdaFlow, the statistics graph are read from beside it.

    Raises
    ------
    InputError
        In every method, for rows the PyTorch detector would refuse (see the module docstring).
    NonFiniteError
        When a score, or a statistic computed by :meth:`adapt`, is NaN or infinite.
    UnknownDomainError
        When scoring a domain the model does not know.
    """

    #: Rows per onnxruntime call of :meth:`decision_function` (as PyTorch scoring's batches).
    chunk_rows = 4096

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import onnxruntime as ort

        path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.meta = json.loads(path.with_suffix(".json").read_text())
        self.dtype = np.float64 if self.meta["dtype"] == "float64" else np.float32
        self.n_features_in_ = int(self.meta["n_features_in"])
        names = self.meta.get("feature_names_in")
        self.feature_names_in_ = None if names is None else list(names)
        self._score = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        stats_path = path.with_suffix(".stats.onnx")
        self._stats = ort.InferenceSession(str(stats_path), opts, providers=["CPUExecutionProvider"]) if stats_path.exists() else None
        self.domains: dict[str, dict[str, np.ndarray]] = {
            name: {k: np.asarray(v, dtype=self.dtype) for k, v in d["statistics"].items()}
            for name, d in self.meta.get("domains", {}).items()
        }

    # ------------------------------------------------------------------------ input gate
    def _check_input(self, X: Any, *, name: str = "X", min_samples: int = 1) -> np.ndarray:
        """Validated float64 rows (the PyTorch detectors' checks)."""
        arr = check_X(X, name=name, min_samples=min_samples)
        check_n_features(arr, self.n_features_in_, self, name=name)
        names = feature_names_of(X)
        if self.feature_names_in_ is not None and names is not None and names != self.feature_names_in_:
            raise InputError(
                f"{name} has feature names {names}, but the exported {self.meta['kind']} was fitted with "
                f"{self.feature_names_in_}; pass the same columns in the same order."
            )
        return arr  # float64: the graphs standardize in float64, as PyTorch does

    def _domain(self, domain: Any) -> str | None:
        if not self.meta["statistics_inputs"]:
            return None
        known = list(self.domains)
        if domain is None:
            if len(known) == 1:
                return known[0]
            raise InputError(f"domain is required: this exported {self.meta['kind']} knows {len(known)} domains {known}.")
        name = domain_name(domain)
        if name not in self.domains:
            raise UnknownDomainError(f"Unknown domain {name!r}; known domains: {known}. Call adapt(X, domain={name!r}) first.")
        return name

    def _run_scores(self, x: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
        out = np.empty(x.shape[0], dtype=np.float64)
        for start in range(0, x.shape[0], self.chunk_rows):  # bounded memory whatever the row count
            out[start : start + self.chunk_rows] = self._score.run(["anomaly_score"], {"x": x[start : start + self.chunk_rows], **stats})[0]
        _check_scores(out, self.meta["dtype"])
        return out

    def _standardization(self) -> Standardization | None:
        rows = self.meta.get("adapt_rows")
        if rows is None:  # exported before the sidecar held it
            return None
        return Standardization(np.asarray(rows["mean"], dtype=np.float64), np.asarray(rows["scale"], dtype=np.float64),
                               np.asarray(rows["constant"], dtype=bool))

    def _mixture_inputs(self, x: np.ndarray, stats: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
        """The domain's Gaussian and flow weight, computed as ``AdaFlow.adapt`` does (in numpy)."""
        mixture = self.meta["mixture"]
        if mixture.get("gaussian_space") != "input":
            raise InputError(
                f"Cannot adapt domain {name!r} on the device: this model's Gaussian lives in the flow's latent space "
                "(gaussian_space='latent'), which the exported graphs do not output. Adapt it in Python "
                "(AdaFlow.adapt) and re-export, or pass flow_only=True to score the domain by the flow alone."
            )
        st = self._standardization()
        if st is None:
            raise InputError(
                f"Cannot adapt domain {name!r} with its mixture: this export predates the sidecar's adapt_rows. "
                "Re-export the model with this flowad, adapt it in Python, or pass flow_only=True."
            )
        # the statistics graph's mixture inputs are the flow-only ones (mix_weight = 1): the scores
        # under them are the flow's log-densities, as the adapting pass gives them in PyTorch
        log_flow = -self._run_scores(x, stats) - float(self.meta["adapt_rows"]["log_density_offset"])
        with np.errstate(over="ignore"):
            rows = st.transform(x, drop_constant=True).astype(self.dtype).astype(np.float64)  # as PyTorch's Z
        if not np.isfinite(rows).all():
            raise NonFiniteError(
                f"The standardized rows of domain {name!r} are not finite: their values lie far outside the "
                "training range" + (" and overflow float32." if self.dtype == np.float32 else ".")
            )
        # sidecars written before the "selection" field come from models whose weights were all
        # chosen by held-out likelihood
        rule = mixture.get("selection", "likelihood")
        if rule not in SELECTION_RULES:
            raise InputError(
                f"Cannot adapt domain {name!r} with its mixture: the sidecar's mixture.selection is {rule!r}, "
                f"which this flowad does not know ({', '.join(SELECTION_RULES)}); upgrade flowad or pass flow_only=True."
            )
        n_frames = int(mixture.get("stationary_frames", 1))
        keep = ~np.asarray(st.constant, dtype=bool)
        frames = Frames(n_frames, np.asarray(st.mean, dtype=np.float64)[keep], np.asarray(st.scale, dtype=np.float64)[keep]) if n_frames > 1 else 1
        state, _ = fit_mixture(rows, log_flow, rule=rule, frames=frames)
        g = state.gaussian
        values = (g.mean, g.factor, np.array([g.const]), np.array([state.weight]))
        return {k: np.asarray(v, dtype=self.dtype) for k, v in zip(mixture["inputs"], values, strict=True)}

    # --------------------------------------------------------------------------- methods
    def adapt(self, X: Any, domain: Any, *, flow_only: bool = False) -> OnnxScorer:
        """Compute ``domain``'s statistics from its normal rows with the statistics graph
        (BatchNormFlow: keep the pooled statistics, as its ``adapt`` does).

        For an AdaFlow mixture model (``adapted_density="mixture"``) the domain's Gaussian and
        flow weight are then computed in numpy exactly as :meth:`flowad.AdaFlow.adapt` computes
        them (the flow's per-row log-densities from the scoring graph, the Gaussian on the
        standardized rows, the weight by the model's ``mixture_selection`` rule from 5-fold held-out
        log-likelihoods), so the domain scores
        as after PyTorch's ``adapt``. ``flow_only=True`` keeps the flow alone (``mix_weight =
        1``); a latent-space Gaussian (``gaussian_space="latent"``) can only be adapted so.

        The domain (new, or replacing its statistics) changes only when every check passed:
        at least 2 finite rows of the right width, no modelled feature constant over them,
        finite statistics and finite scores of those rows under them.
        """
        if self._stats is None:
            raise InputError("This model has no domain statistics to adapt (not an AdaFlow export).")
        name = domain_name(domain)
        x = self._check_input(X)
        _check_rows(x.shape[0], name)
        st = self._standardization()
        if st is not None:  # PyTorch's adapt refuses rows with a stuck feature: same rule, same message
            check_adaptation_range(x.min(axis=0), x.max(axis=0), domain=name, ignore=st.constant, names=self.feature_names_in_)
        if self.meta.get("adapt_statistics", True):
            outs = self._stats.run(None, {"x": x})
            stats = dict(zip(self.meta["statistics_inputs"], outs, strict=True))
        else:  # BatchNormFlow: every domain uses the pooled statistics, as its adapt does
            stats = {k: v.copy() for k, v in next(iter(self.domains.values())).items()}
        bad = [k for k, v in stats.items() if not np.isfinite(v).all()]
        if bad:
            raise NonFiniteError(
                f"The statistics {bad} of domain {name!r} computed from these rows are not finite: their values "
                "lie far outside the training range" + (" and overflow float32." if self.dtype == np.float32 else ".")
            )
        if "mixture" in self.meta and not flow_only:
            stats.update(self._mixture_inputs(x, stats, name))
        self._run_scores(x, stats)  # PyTorch's adapt scores its rows too: same refusal, nothing stored
        self.domains[name] = stats
        return self

    def decision_function(self, X: Any, domain: Any = None) -> np.ndarray:
        """Anomaly scores (negative log-likelihood, float64) of the rows of ``X`` in ``domain``."""
        name = self._domain(domain)
        x = self._check_input(X)
        return self._run_scores(x, {} if name is None else self.domains[name])

    def score_samples(self, X: Any, domain: Any = None) -> np.ndarray:
        """Log-density of each row (``-decision_function``; higher = more normal)."""
        return -self.decision_function(X, domain)

    def predict(self, X: Any, domain: Any = None) -> np.ndarray:
        """1 where the anomaly score exceeds the exported threshold of ``domain``, else 0."""
        name = self._domain(domain)
        threshold = self.meta["threshold"] if name is None else self.meta["domains"].get(name, {}).get("threshold")
        if threshold is None:
            raise InputError(f"Domain {name!r} was adapted on the device and has no threshold in the sidecar.")
        return (self.decision_function(X, name) > threshold).astype(np.int64)
