"""Fuzzing flowad's public paths with Hypothesis: fit / score / adapt / save / load / export.

One engine serves the quick suite (``tests/fuzz``, Hypothesis profile ``ci``) and the long
profile (``flowad bench fuzz``). A *case* is an operation, a detector kind and dtype, and an
awkward input array (:data:`CATEGORIES`); :class:`FuzzRunner` runs it through PyTorch and, where
the operation involves ONNX, through :class:`flowad.export.OnnxScorer`, and classifies what
happened:

- ``scores``: scores came back (finite; from both engines where both ran, agreeing);
- ``refused``: a documented exception (a :class:`flowad.FlowadError` subclass, or a builtin
  in :data:`DOCUMENTED_BUILTINS`) from every engine that ran, of the same type;
- a *finding* otherwise: ``undocumented`` (any other exception), ``nan_score`` / ``inf_score``
  (a non-finite score returned), ``mismatch`` (PyTorch and ONNX scores differ by more than
  :data:`RTOL` relative), ``disagreement`` (one engine refuses what the other scores, or they
  refuse with different types), ``roundtrip`` (a loaded model scores differently from the
  saved one), ``runtime_warning`` (numpy/torch arithmetic warnings raised from flowad code).

A PyTorch/ONNX difference beyond :data:`RTOL` is not a ``mismatch`` when PyTorch's own scores
move as much (within 10x), or a one-sided NonFiniteError not a ``disagreement`` when PyTorch's
own outcome flips, under rounding-level noise in the same input (one unit roundoff of
the model's dtype, relative, plus the smallest normal float64): the two engines round
differently (matrix products, summation order, onnxruntime's flush of float64 denormals), and
an input that amplifies rounding that much has no better answer. Such cases count as
``scores`` with detail ``ill_conditioned`` and are reported separately.

Hypothesis is imported only where strategies are built (it is a development dependency).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CATEGORIES",
    "DOCUMENTED_BUILTINS",
    "OPERATIONS",
    "Case",
    "FuzzRunner",
    "case_strategy",
    "format_fuzz",
    "run_fuzz",
]

#: Kinds of awkward input.
CATEGORIES = (
    "gaussian",
    "huge",
    "tiny",
    "denormal",
    "offset",
    "inf",
    "nan",
    "duplicates",
    "one_row",
    "one_column",
    "constant_column",
    "near_constant",
    "integer",
    "boolean",
    "float16_float32",
    "non_contiguous",
    "fortran",
    "any_float",
    "dataframe_object",
    "dataframe_mixed",
    "nested_list",
    "torch_tensor",
    "wrong_width",
)
#: What a case does. ``score``/``adapt`` use a model fitted on clean rows (cached per kind,
#: dtype and width) and its ONNX export; the others fit on the awkward rows themselves.
OPERATIONS = ("fit", "score", "adapt", "save_load", "export")
KINDS = ("RealNVP", "TrimRealNVP", "RobustRealNVP", "GaussianCore", "AdaFlow", "BatchNormFlow")
#: Kinds that are another kind with fixed arguments: ``GaussianCore`` is RobustRealNVP's Gaussian
#: core alone (no couplings, nothing trained).
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {"GaussianCore": ("RobustRealNVP", {"n_couplings": 0})}
DOMAIN_KINDS = ("AdaFlow", "BatchNormFlow")
#: Builtin exceptions a method is documented to raise besides FlowadError subclasses (none).
DOCUMENTED_BUILTINS: tuple[type[BaseException], ...] = ()
#: PyTorch/ONNX agreement: relative tolerance, with an absolute floor of RTOL * max(1, max |score|)
#: / 1e3 (float32 sums of many terms lose relative precision near a score of zero).
RTOL = 1e-4
TINY = {"n_couplings": 1, "hidden": (4,), "epochs": 1}
MAX_ROWS = 40
MAX_COLS = 4


@dataclasses.dataclass
class Case:
    """One generated case (see the module docstring)."""

    op: str
    kind: str
    dtype: str
    category: str
    X: Any
    width: int  # the model's width for score/adapt (pooled model); X may differ ("wrong_width")
    seed: int

    def describe(self) -> dict[str, Any]:
        """JSON-able description with the array, enough to rebuild the case."""
        X = self.X
        kind = type(X).__name__
        if hasattr(X, "to_dict"):
            value: Any = {"columns": [str(c) for c in X.columns], "dtypes": [str(t) for t in X.dtypes], "rows": X.astype(object).values.tolist()}
        elif hasattr(X, "detach"):
            value = X.detach().cpu().numpy().tolist()
        elif isinstance(X, np.ndarray):
            value = {"dtype": str(X.dtype), "shape": list(X.shape), "c_contiguous": bool(X.flags.c_contiguous), "values": X.tolist()}
        else:
            value = X
        return {
            "op": self.op, "kind": self.kind, "dtype": self.dtype, "category": self.category,
            "width": self.width, "seed": self.seed, "X_type": kind, "X": _jsonable(value),
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float | np.floating):
        return repr(float(v)) if not np.isfinite(v) or v == 0 or abs(v) < 1e-300 or abs(v) > 1e300 else float(v)
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, bool | int | str):
        return v
    return repr(v)


# ------------------------------------------------------------------------------ strategies
def _array(draw: Callable[[Any], Any], st: Any, category: str, rng: np.random.Generator) -> tuple[Any, int]:
    """An awkward input of ``category`` and the width of the model it is given to."""
    n = 1 if category == "one_row" else draw(st.integers(2, MAX_ROWS))
    d = 1 if category == "one_column" else draw(st.integers(1, MAX_COLS))
    X = rng.normal(size=(n, d))
    width = d
    if category == "huge":
        X = X * 10.0 ** draw(st.integers(8, 307))
    elif category == "tiny":
        X = X * 10.0 ** -draw(st.integers(8, 300))
    elif category == "denormal":
        X = np.round(X * draw(st.integers(1, 2**20))) * 5e-324
    elif category == "offset":
        X = X * 10.0 ** draw(st.integers(-6, 3)) + 10.0 ** draw(st.integers(3, 15)) * draw(st.sampled_from([1.0, -1.0]))
    elif category in ("inf", "nan"):
        bad = {"inf": [np.inf, -np.inf], "nan": [np.nan]}[category]
        for _ in range(draw(st.integers(1, 3))):
            X[rng.integers(n), rng.integers(d)] = bad[rng.integers(len(bad))]
    elif category == "duplicates":
        X = X[rng.integers(0, min(n, draw(st.integers(1, 3))), n)]
    elif category == "constant_column":
        X[:, rng.integers(d)] = draw(st.floats(allow_nan=False, allow_infinity=False, width=32))
    elif category == "near_constant":
        c = draw(st.floats(-1e6, 1e6, allow_nan=False))
        X[:, rng.integers(d)] = c + X[:, 0] * max(abs(c), 1.0) * 10.0 ** -draw(st.integers(9, 17))
    elif category == "integer":
        dtype = draw(st.sampled_from(["int8", "int16", "int32", "int64", "uint8", "uint64"]))
        info = np.iinfo(dtype)
        hi = draw(st.sampled_from([3, 100, int(info.max)]))
        X = rng.integers(max(int(info.min), -hi), hi, size=(n, d), dtype=dtype, endpoint=True)
    elif category == "boolean":
        X = rng.random((n, d)) < draw(st.floats(0.0, 1.0))
    elif category == "float16_float32":
        with np.errstate(over="ignore"):  # float16 overflows to inf beyond 65504: an inf case too
            X = (X * 10.0 ** draw(st.integers(-8, 8))).astype(draw(st.sampled_from(["float16", "float32"])))
    elif category == "non_contiguous":
        big = rng.normal(size=(2 * n, 2 * d))
        X = big[::2, ::2] if draw(st.booleans()) else big[:n, : 2 * d : 2].T.copy().T
    elif category == "fortran":
        X = np.asfortranarray(X)
    elif category == "any_float":
        from hypothesis.extra.numpy import arrays

        X = draw(arrays(np.float64, (n, d), elements=st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)))
    elif category in ("dataframe_object", "dataframe_mixed"):
        import pandas as pd

        cols: dict[str, Any] = {f"f{j}": X[:, j] for j in range(d)}
        j = rng.integers(d)
        if category == "dataframe_object":
            cell = draw(st.sampled_from(["numbers", "text", "none", "decimal_text", "bool"]))
            values: list[Any] = [float(v) for v in X[:, j]]
            if cell == "text":
                values[rng.integers(n)] = "n/a"
            elif cell == "none":
                values[rng.integers(n)] = None
            elif cell == "decimal_text":
                values = [f"{v:.3f}" for v in values]
            elif cell == "bool":
                values = [bool(v > 0) for v in values]
            cols[f"f{j}"] = pd.Series(values, dtype=object)
        else:
            what = draw(st.sampled_from(["Int64_NA", "bool", "category", "int_labels", "float32"]))
            if what == "Int64_NA":
                s = pd.array(np.round(X[:, j] * 10).astype(int), dtype="Int64")
                s[rng.integers(n)] = pd.NA
                cols[f"f{j}"] = s
            elif what == "bool":
                cols[f"f{j}"] = X[:, j] > 0
            elif what == "category":
                cols[f"f{j}"] = pd.Categorical(np.where(X[:, j] > 0, "a", "b"))
            elif what == "float32":
                cols[f"f{j}"] = X[:, j].astype(np.float32)
            else:
                X = pd.DataFrame(cols)
                X.columns = list(range(d))  # integer column labels
                return X, width
        X = pd.DataFrame(cols)
    elif category == "nested_list":
        X = X.tolist()
        if n > 1 and draw(st.booleans()):
            X[-1] = X[-1] + [0.0]  # ragged
    elif category == "torch_tensor":
        import torch

        X = torch.as_tensor(X, dtype=draw(st.sampled_from([torch.float32, torch.float64])))
    elif category == "wrong_width":
        width = d + draw(st.sampled_from([-1, 1])) if d > 1 else 2
    return X, width


def case_strategy(ops: tuple[str, ...] = OPERATIONS) -> Any:
    """The Hypothesis strategy of :class:`Case` with an operation among ``ops`` (imports Hypothesis)."""
    from hypothesis import strategies as st

    @st.composite
    def cases(draw: Callable[[Any], Any]) -> Case:
        op = draw(st.sampled_from(ops))
        kind = draw(st.sampled_from(DOMAIN_KINDS if op == "adapt" else KINDS))
        dtype = draw(st.sampled_from(["float32", "float64"]))
        category = draw(st.sampled_from(CATEGORIES))
        seed = draw(st.integers(0, 2**32 - 1))
        X, width = _array(draw, st, category, np.random.default_rng(seed))
        return Case(op, kind, dtype, category, X, width, seed)

    return cases()


# ---------------------------------------------------------------------------------- runner
def _detector(kind: str, dtype: str, **extra: Any) -> Any:
    import flowad
    from flowad.detectors import BatchNormFlow

    name, preset = PRESETS.get(kind, (kind, {}))
    cls = BatchNormFlow if name == "BatchNormFlow" else getattr(flowad, name)
    return cls(**{**TINY, **preset}, dtype=dtype, device="cpu", random_state=0, **extra)


def _attempt(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except Exception as err:  # noqa: BLE001 - classifying every exception is the point
        return "error", err


def _documented(err: BaseException) -> bool:
    from flowad.exceptions import FlowadError

    return isinstance(err, (FlowadError, *DOCUMENTED_BUILTINS))


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    atol = RTOL * max(1.0, float(np.abs(b).max()) / 1e3)
    return bool(np.all(np.abs(a - b) <= RTOL * np.abs(b) + atol))


def _perturbed(X: Any, dtype: str, seed: int) -> np.ndarray | None:
    """Numeric ``X`` moved by rounding-level noise (a unit roundoff of the model's dtype relative, plus
    the smallest normal float64 absolute, as flush-to-zero would), or None for non-arrays."""
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf" or X.ndim != 2:
        return None
    X = X.astype(np.float64)  # integer and boolean rows are perturbed as the floats flowad reads
    u = float(np.finfo(np.float32 if dtype == "float32" else np.float64).eps)
    noise = np.random.default_rng(seed).standard_normal(X.shape)
    with np.errstate(all="ignore"):
        return X * (1.0 + u * noise) + np.finfo(np.float64).tiny * noise


def _conditioned(result: Result, results: dict[str, tuple[str, Any]], again: Callable[[int], Any] | None) -> Result:
    """A PyTorch/ONNX mismatch that is no larger than 10x PyTorch's own change under
    rounding-level noise in its input (:func:`_perturbed`), or a NonFiniteError on one side
    only where PyTorch's own outcome flips under that noise, is the input's conditioning, not
    a disagreement: counted as ``scores`` with detail ``ill_conditioned``."""
    from flowad.exceptions import NonFiniteError

    if again is None:
        return result
    if result.detail == "disagreement:refusal":  # one engine overflowed: does PyTorch's own outcome flip under the noise?
        first = next(iter(results.values()))
        flips = [_attempt(lambda k=k: again(k))[0] != first[0] for k in range(3)]
        if any(flips) and any(isinstance(v, NonFiniteError) for s, v in results.values() if s == "error"):
            return Result("scores", "ill_conditioned", f"{result.message} (PyTorch's own outcome changes under rounding-level input noise)")
        return result
    if not result.detail.startswith("mismatch"):
        return result
    ref, other = (np.asarray(v, dtype=np.float64) for _, v in list(results.values())[:2])
    noise = np.zeros_like(ref)
    for k in range(3):  # three draws of the noise; the largest change of each score counts
        status, moved = _attempt(lambda k=k: again(k))
        if status != "ok":
            return result
        noise = np.maximum(noise, np.abs(np.asarray(moved, dtype=np.float64) - ref))
    atol = RTOL * max(1.0, float(np.abs(ref).max()) / 1e3)
    if np.all(np.abs(other - ref) <= np.maximum(10.0 * noise, RTOL * np.abs(ref) + atol)):
        return Result("scores", "ill_conditioned", f"{result.message}; PyTorch alone moves by up to {float(np.max(noise / np.maximum(np.abs(ref), 1e-300))):.3g} relative under rounding-level input noise")
    return result


@dataclasses.dataclass
class Result:
    """What one case did: ``outcome`` is ``scores``, ``refused`` or ``finding``."""

    outcome: str
    detail: str  # exception type(s), or the finding's kind
    message: str = ""

    @property
    def finding(self) -> bool:
        return self.outcome == "finding"


class FuzzRunner:
    """Runs cases; pooled models (fitted on clean rows) and their exports are built once."""

    def __init__(self, workdir: str | Path | None = None) -> None:
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="flowad-fuzz-")
        self.workdir = Path(workdir if workdir is not None else self._tmp.name)  # type: ignore[union-attr]
        self._pool: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._n = 0

    def _path(self, suffix: str) -> Path:
        self._n += 1
        return self.workdir / f"c{self._n}{suffix}"

    def pooled(self, kind: str, dtype: str, width: int) -> tuple[Any, Any]:
        """A model fitted on 60 clean rows of ``width`` features (two domains for domain kinds) and its ONNX scorer."""
        from flowad.export import OnnxScorer, export_onnx

        key = (kind, dtype, width)
        if key not in self._pool:
            X = np.random.default_rng(width).normal(size=(60, width))
            det = _detector(kind, dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                det.fit(X, domains=np.repeat(["a", "b"], 30)) if kind in DOMAIN_KINDS else det.fit(X)
            self._pool[key] = (det, OnnxScorer(export_onnx(det, self._path(".onnx"))["scoring"]))
        return self._pool[key]

    def run(self, case: Case) -> Result:
        """Run one case and classify it (never raises for what flowad does)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = getattr(self, f"_{case.op}")(case)
        flowad_runtime = [w for w in caught if issubclass(w.category, RuntimeWarning) and "flowad" in str(w.filename)]
        if flowad_runtime and not result.finding:
            w = flowad_runtime[0]
            return Result("finding", "runtime_warning", f"{w.category.__name__} at {w.filename}:{w.lineno}: {w.message}")
        return result

    # ----------------------------------------------------------------------- classification
    @staticmethod
    def _classify(results: dict[str, tuple[str, Any]]) -> Result:
        """Classify the (status, value) of each engine; scores are compared to the first engine's."""
        for engine, (status, value) in results.items():
            if status == "error" and not _documented(value):
                tb = "".join(traceback.format_exception(type(value), value, value.__traceback__)[-3:])
                return Result("finding", f"undocumented:{engine}:{type(value).__name__}", f"{value}\n{tb}")
            if status == "ok":
                s = np.asarray(value, dtype=np.float64)
                if np.isnan(s).any():
                    return Result("finding", f"nan_score:{engine}", f"{int(np.isnan(s).sum())} NaN of {s.size}")
                if not np.isfinite(s).all():
                    return Result("finding", f"inf_score:{engine}", f"{int((~np.isfinite(s)).sum())} inf of {s.size}")
        statuses = {status for status, _ in results.values()}
        if statuses == {"error"}:
            types = sorted({type(v).__name__ for _, v in results.values()})
            if len(types) > 1:
                return Result("finding", "disagreement:types", " vs ".join(f"{e}={type(v).__name__}: {v}" for e, (_, v) in results.items()))
            return Result("refused", types[0], str(next(iter(results.values()))[1]))
        if statuses == {"ok", "error"}:
            return Result("finding", "disagreement:refusal", "; ".join(f"{e}: {'scores' if s == 'ok' else f'{type(v).__name__}: {v}'}" for e, (s, v) in results.items()))
        scores = [np.asarray(v, dtype=np.float64) for _, v in results.values()]
        ref = scores[0]
        for engine, other in zip(list(results)[1:], scores[1:], strict=True):
            if other.shape != ref.shape or not _close(other, ref):
                worst = float(np.max(np.abs(other - ref) / np.maximum(np.abs(ref), 1e-300))) if other.shape == ref.shape else float("nan")
                return Result("finding", f"mismatch:{engine}", f"max relative difference {worst:.3g}")
        return Result("scores", "ok")

    def _domain_kw(self, kind: str) -> dict[str, str]:
        return {"domain": "a"} if kind in DOMAIN_KINDS else {}

    # --------------------------------------------------------------------------- operations
    def _fit_on(self, case: Case) -> tuple[str, Any]:
        det = _detector(case.kind, case.dtype)
        return _attempt(lambda: det.fit(case.X))

    def _fit(self, case: Case) -> Result:
        status, det = self._fit_on(case)
        if status == "error":
            return self._classify({"fit": (status, det)})
        return self._classify({"fit+score": _attempt(lambda: det.decision_function(case.X))})

    def _score(self, case: Case) -> Result:
        det, scorer = self.pooled(case.kind, case.dtype, case.width)
        domain = self._domain_kw(case.kind).get("domain")
        results = {
            "torch": _attempt(lambda: det.decision_function(case.X, **self._domain_kw(case.kind))),
            "onnx": _attempt(lambda: scorer.decision_function(case.X, domain)),
        }
        kw = self._domain_kw(case.kind)
        again = None if _perturbed(case.X, case.dtype, 0) is None else (lambda k: det.decision_function(_perturbed(case.X, case.dtype, case.seed + k), **kw))
        return _conditioned(self._classify(results), results, again)

    def _adapt(self, case: Case) -> Result:
        det, scorer = self.pooled(case.kind, case.dtype, case.width)
        name = f"new{self._n}"
        self._n += 1
        reference = np.random.default_rng(1).normal(size=(20, case.width))

        def torch_side() -> np.ndarray:
            det.adapt(case.X, domain=name)
            return det.decision_function(reference, domain=name)

        def onnx_side() -> np.ndarray:
            scorer.adapt(case.X, name)
            return scorer.decision_function(reference, name)

        def torch_again(k: int) -> np.ndarray:
            det.adapt(_perturbed(case.X, case.dtype, case.seed + k), domain=name)
            return det.decision_function(reference, domain=name)

        try:
            results = {"torch": _attempt(torch_side), "onnx": _attempt(onnx_side)}
            return _conditioned(self._classify(results), results, None if _perturbed(case.X, case.dtype, 0) is None else torch_again)
        finally:
            if name in det.domains_:
                det.remove_domain(name)
            scorer.domains.pop(name, None)

    def _save_load(self, case: Case) -> Result:
        import flowad

        status, det = self._fit_on(case)
        if status == "error":
            return self._classify({"fit": (status, det)})
        path = self._path(".flowad")
        saved = _attempt(lambda: det.save(path))
        if saved[0] == "error":
            return self._classify({"save": saved})
        loaded = _attempt(lambda: flowad.load(path))
        if loaded[0] == "error":
            return self._classify({"load": loaded})
        kw = self._domain_kw(case.kind) if len(getattr(det, "domains_", [])) > 1 else {}
        before = _attempt(lambda: det.decision_function(case.X, **kw))
        after = _attempt(lambda: loaded[1].decision_function(case.X, **kw))
        path.unlink(missing_ok=True)
        result = self._classify({"saved": before, "loaded": after})
        if result.outcome == "scores" and not np.array_equal(before[1], after[1]):
            return Result("finding", "roundtrip", "loaded model scores differ from the saved one")
        return result

    def _export(self, case: Case) -> Result:
        from flowad.export import OnnxScorer, export_onnx

        status, det = self._fit_on(case)
        if status == "error":
            return self._classify({"fit": (status, det)})
        exported = _attempt(lambda: OnnxScorer(export_onnx(det, self._path(".onnx"))["scoring"]))
        if exported[0] == "error":
            return self._classify({"export": exported})
        scorer = exported[1]
        X = case.X
        results = {
            "torch": _attempt(lambda: det.decision_function(X)),
            "onnx": _attempt(lambda: scorer.decision_function(X)),
        }
        again = None if _perturbed(X, case.dtype, 0) is None else (lambda k: det.decision_function(_perturbed(X, case.dtype, case.seed + k)))
        return _conditioned(self._classify(results), results, again)


# ----------------------------------------------------------------------------- long profile
ROW_FIELDS = ("batch", "case", "op", "kind", "dtype", "category", "outcome", "detail", "seconds")


def _run_batch(runner: FuzzRunner, b: int, size: int, hypothesis_seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run one batch of ``size`` generated cases; its rows and findings."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    rows: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []

    @hseed(hypothesis_seed)
    @settings(max_examples=size, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case_strategy())
    def body(case: Case) -> None:
        start = time.perf_counter()
        result = runner.run(case)
        rows.append({
            "batch": b, "case": len(rows), "op": case.op, "kind": case.kind, "dtype": case.dtype,
            "category": case.category, "outcome": result.outcome, "detail": result.detail,
            "seconds": round(time.perf_counter() - start, 4),
        })
        if result.finding:
            findings.append({"batch": b, "case": len(rows) - 1, "finding": result.detail, "message": result.message, **case.describe()})

    body()
    return rows, findings


def run_fuzz(
    out: Path,
    *,
    examples: int,
    seed: int = 0,
    batch: int = 500,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Generate ``examples`` cases in batches of ``batch`` (Hypothesis seed ``seed * 100003 + b``
    for batch ``b``), run them, and append one row per case to ``out/cases.csv``; batches
    already in the CSV are skipped (resumable). Findings go to ``out/findings.jsonl`` with the
    case's array (a reproducer). Returns the table of all rows and the findings.
    """
    import pandas as pd

    csv, jsonl = out / "cases.csv", out / "findings.jsonl"
    done = set(pd.read_csv(csv)["batch"].unique().tolist()) if csv.exists() else set()
    runner = FuzzRunner()
    n_batches = -(-examples // batch)
    for b in range(n_batches):
        if b in done:
            continue
        rows, findings = _run_batch(runner, b, min(batch, examples - b * batch), seed * 100003 + b)
        with jsonl.open("a") as f:
            for item in findings:
                f.write(json.dumps(item) + "\n")
        pd.DataFrame(rows, columns=list(ROW_FIELDS)).to_csv(csv, mode="a", header=not csv.exists(), index=False)
        if progress is not None:
            progress(f"batch {b + 1}/{n_batches}: {len(rows)} cases, {len(findings)} finding(s)")
    table = pd.read_csv(csv)
    found = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    return table, found


def format_fuzz(table: Any, findings: list[dict[str, Any]], *, command: str) -> str:
    """The markdown report: counts by category and operation, findings by kind with a reproducer each."""
    import pandas as pd

    n = len(table)
    findings_rows = table[table["outcome"] == "finding"]
    undocumented = int(findings_rows["detail"].str.startswith("undocumented").sum())
    nan = int(findings_rows["detail"].str.startswith("nan_score").sum())
    lines = [
        "# Fuzzing fit / score / adapt / save / load / export",
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
        f"{n} generated cases in {table['batch'].nunique()} batch(es), {table['seconds'].sum():.0f} s of case time; "
        f"**{undocumented} undocumented exception(s)**, **{nan} NaN score(s)**, {len(findings_rows)} finding(s) in all; "
        f"{int((table['detail'] == 'ill_conditioned').sum())} case(s) counted as scores were ill-conditioned "
        "(PyTorch and ONNX differ, but no more than PyTorch's own scores or outcome under rounding-level input noise).",
        "",
        "Outcomes: `scores` = finite scores (PyTorch and ONNX agreeing within "
        f"{RTOL:g} relative where both ran), `refused` = a documented exception (FlowadError subclass) "
        "of the same type from every engine that ran, `finding` = anything else (see flowad_bench.fuzz).",
        "",
        "## By input category",
        "",
    ]

    def table_md(frame: Any, index: str) -> list[str]:
        counts = pd.crosstab(frame[index], frame["outcome"]).reindex(columns=["scores", "refused", "finding"], fill_value=0)
        counts["cases"] = counts.sum(axis=1)
        out = [f"| {index} | cases | scores | refused | finding |", "|---|---:|---:|---:|---:|"]
        for key, row in counts.iterrows():
            out.append(f"| {key} | {row['cases']} | {row['scores']} | {row['refused']} | {row['finding']} |")
        return out

    lines += table_md(table, "category") + ["", "## By operation", ""] + table_md(table, "op")
    refused = table[table["outcome"] == "refused"]["detail"].value_counts()
    lines += ["", "## Refusals by exception", "", "| exception | cases |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in refused.items()]
    lines += ["", "## Findings", ""]
    if not findings:
        lines.append("None.")
    else:
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for item in findings:
            by_kind.setdefault(item["finding"], []).append(item)
        lines += ["| finding | cases | categories | first message |", "|---|---:|---|---|"]
        for kind, items in sorted(by_kind.items()):
            cats = ", ".join(sorted({i["category"] for i in items}))
            msg = items[0]["message"].splitlines()[0][:160].replace("|", "\\|")
            lines.append(f"| {kind} | {len(items)} | {cats} | {msg} |")
        lines += ["", "Every finding's case (operation, kind, dtype and the array) is in findings.jsonl."]
    return "\n".join(lines) + "\n"


def replay(item: dict[str, Any]) -> Case:
    """Rebuild a :class:`Case` from a findings.jsonl entry whose X is a plain array (for reproducers)."""
    X = item["X"]
    if isinstance(X, dict) and "values" in X:
        X = np.array(_floats(X["values"]), dtype=X["dtype"])
    return Case(item["op"], item["kind"], item["dtype"], item["category"], copy.deepcopy(X), item["width"], item["seed"])


def _floats(v: Any) -> Any:
    if isinstance(v, list):
        return [_floats(x) for x in v]
    return float(v) if isinstance(v, str) else v
