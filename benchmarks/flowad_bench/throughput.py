"""Scoring throughput: flowad under PyTorch and under onnxruntime vs PyOD's IForest.

Every scorer runs on one thread (``torch.set_num_threads(1)``, onnxruntime
``intra_op_num_threads=1``, IForest ``n_jobs=1``) over the same rows; scorers are timed
round-robin for ``repeats`` rounds so a load change on the machine hits all of them alike,
and the table reports each scorer's median rows per second and its ratio to IForest's.

Three RobustRealNVP architectures are timed (:data:`ARCHITECTURES`): the default
(6 couplings x (64, 64)) and two smaller ones for scoring on small devices. Scoring cost is
the conditioner networks' matrix products, so it falls with their size; what the smaller
ones cost in accuracy is measured beside it: each model's test ROC AUC on a held-out split
of the same data (when labels are given), and on the ODDS development sweep
(``flowad bench defaults``, ``results/defaults/``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from flowad_bench.runner import torch_threads

__all__ = ["ARCHITECTURES", "run_throughput", "format_throughput"]


def _default_label() -> str:
    from flowad import RobustRealNVP

    default = RobustRealNVP()
    return f"{default.n_couplings} x {tuple(default.hidden)} (default)"


#: RobustRealNVP architectures timed, by label (everything else at the defaults).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    _default_label(): {},
    "4 x (32, 32)": {"n_couplings": 4, "hidden": (32, 32)},
    "4 x (16, 16)": {"n_couplings": 4, "hidden": (16, 16)},
}


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_throughput(
    X_train: np.ndarray,
    X_score: np.ndarray,
    *,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    architectures: dict[str, dict[str, Any]] = ARCHITECTURES,
    repeats: int = 5,
    epochs: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Median scoring throughput (rows/s, one thread) of each scorer on ``X_score``.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, n_features)
        Data the detectors are fitted on (training length does not affect scoring cost).
    X_score : ndarray of shape (n_rows, n_features)
        Rows scored in every round.
    X_test, y_test : ndarray, optional
        Held-out rows and their labels (1 = anomaly): each model's test ROC AUC is reported
        in the ``auc`` column (NaN without them).
    architectures : dict, default=:data:`ARCHITECTURES`
        RobustRealNVP keyword arguments by label.
    repeats : int, default=5
        Timed rounds per scorer (after one warm-up round).
    epochs : int or None, default=None
        Training epochs of the flows (None: RobustRealNVP's default).

    Returns
    -------
    DataFrame
        One row per scorer: ``scorer``, ``model``, ``runtime``, ``rows_per_s`` (median),
        ``seconds`` (median), ``vs_iforest`` (throughput ratio to PyOD IForest), ``auc``.
    """
    from pyod.models.iforest import IForest

    from flowad import RobustRealNVP
    from flowad.export import OnnxScorer, export_onnx

    fit_kw: dict[str, Any] = {"random_state": seed, "device": "cpu"} | ({} if epochs is None else {"epochs": epochs})
    with torch_threads(1):
        models: dict[str, Any] = {
            f"RobustRealNVP {label}": RobustRealNVP(**fit_kw, **kw).fit(X_train) for label, kw in architectures.items()
        }
        iforest = IForest(random_state=seed, n_jobs=1).fit(X_train)
        with tempfile.TemporaryDirectory() as tmp:
            scorers: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {}
            for i, (name, det) in enumerate(models.items()):
                onnx = OnnxScorer(export_onnx(det, Path(tmp) / f"m{i}.onnx")["scoring"])
                scorers[name, "PyTorch"] = det.decision_function
                scorers[name, "onnxruntime"] = onnx.decision_function
            scorers["PyOD IForest", "scikit-learn"] = iforest.decision_function
            times: dict[tuple[str, str], list[float]] = {key: [] for key in scorers}
            for round_no in range(repeats + 1):
                for key, fn in scorers.items():
                    t = _timed(lambda fn=fn: fn(X_score))
                    if round_no:  # round 0 warms caches up
                        times[key].append(t)
            labelled = X_test is not None and y_test is not None
            aucs = {key: float(roc_auc_score(y_test, fn(X_test))) if labelled else float("nan") for key, fn in scorers.items()}
    n = X_score.shape[0]
    rows = [
        {
            "scorer": f"flowad {model} ({runtime})" if model != "PyOD IForest" else model,
            "model": model,
            "runtime": runtime,
            "seconds": float(np.median(v)),
            "rows_per_s": n / float(np.median(v)),
            "auc": aucs[model, runtime],
        }
        for (model, runtime), v in times.items()
    ]
    table = pd.DataFrame(rows)
    base = table.loc[table.model == "PyOD IForest", "rows_per_s"].item()
    table["vs_iforest"] = table["rows_per_s"] / base
    return table


def format_throughput(table: pd.DataFrame, *, n_rows: int, n_features: int, command: str) -> str:
    """Markdown report of :func:`run_throughput`'s table."""
    lines = [
        "# Scoring throughput (one thread)",
        "",
        f"Command: `{command}`",
        "",
        f"{n_rows} rows x {n_features} features scored per round; medians over rounds, timed round-robin, "
        "one thread each. Test AUC: every model fitted on the same training split (RobustRealNVP at its "
        "default epochs), scored on the held-out split, under each runtime. The smaller architectures' "
        "accuracy on more data: `results/defaults/README.md` (ODDS development sweep).",
        "",
        "| scorer | rows/s | seconds | throughput vs IForest | test AUC |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.scorer} | {r.rows_per_s:,.0f} | {r.seconds:.4f} | {r.vs_iforest:.1f}x | {r.auc:.3f} |" for r in table.itertuples()
    ]
    return "\n".join(lines) + "\n"
