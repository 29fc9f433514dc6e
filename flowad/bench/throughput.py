"""Scoring throughput: flowad under PyTorch and under onnxruntime vs PyOD's IForest.

Every scorer runs on one thread (``torch.set_num_threads(1)``, onnxruntime
``intra_op_num_threads=1``, IForest ``n_jobs=1``) over the same rows; scorers are timed
round-robin for ``repeats`` rounds so a load change on the machine hits all of them alike,
and the table reports each scorer's median rows per second and its ratio to IForest's.
Two flowad architectures are timed: the default (6 couplings x (64, 64)) and a compact one.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

__all__ = ["run_throughput", "format_throughput", "COMPACT"]

#: A compact architecture, shown beside the default to make the speed/size trade-off visible
#: (on the defaults sweep it scored about as well: ``results/defaults/README.md``).
COMPACT: dict[str, object] = {"n_couplings": 4, "hidden": (32, 32)}
COMPACT_LABEL = "4 x (32, 32)"


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_throughput(
    X_train: np.ndarray,
    X_score: np.ndarray,
    *,
    repeats: int = 5,
    epochs: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Median scoring throughput (rows/s, one thread) of each scorer on ``X_score``.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, n_features)
        Data the detectors are fitted on (training length does not affect scoring cost).
    X_score : ndarray of shape (n_rows, n_features)
        Rows scored in every round.
    repeats : int, default=5
        Timed rounds per scorer (after one warm-up round).
    epochs : int, default=5
        Training epochs of the flows.

    Returns
    -------
    DataFrame
        One row per scorer: ``scorer``, ``rows_per_s`` (median), ``seconds`` (median),
        ``vs_iforest`` (throughput ratio to PyOD IForest).
    """
    from pyod.models.iforest import IForest

    from flowad import RobustRealNVP
    from flowad.export import OnnxScorer, export_onnx

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        flows = {
            "RobustRealNVP": RobustRealNVP(epochs=epochs, random_state=seed, device="cpu").fit(X_train),
            f"RobustRealNVP {COMPACT_LABEL}": RobustRealNVP(epochs=epochs, random_state=seed, device="cpu", **COMPACT).fit(X_train),
        }
        iforest = IForest(random_state=seed, n_jobs=1).fit(X_train)
        with tempfile.TemporaryDirectory() as tmp:
            scorers: dict[str, Callable[[], object]] = {}
            for i, (name, det) in enumerate(flows.items()):
                onnx = OnnxScorer(export_onnx(det, Path(tmp) / f"m{i}.onnx")["scoring"])
                scorers[f"flowad {name} (PyTorch)"] = lambda det=det: det.decision_function(X_score)
                scorers[f"flowad {name} (onnxruntime)"] = lambda onnx=onnx: onnx.decision_function(X_score)
            scorers["PyOD IForest"] = lambda: iforest.decision_function(X_score)
            times: dict[str, list[float]] = {name: [] for name in scorers}
            for round_no in range(repeats + 1):
                for name, fn in scorers.items():
                    t = _timed(fn)
                    if round_no:  # round 0 warms caches up
                        times[name].append(t)
    finally:
        torch.set_num_threads(previous)
    n = X_score.shape[0]
    rows = [{"scorer": k, "seconds": float(np.median(v)), "rows_per_s": n / float(np.median(v))} for k, v in times.items()]
    table = pd.DataFrame(rows)
    base = table.loc[table.scorer == "PyOD IForest", "rows_per_s"].item()
    table["vs_iforest"] = table["rows_per_s"] / base
    return table


def format_throughput(table: pd.DataFrame, *, n_rows: int, n_features: int, command: str) -> str:
    """Markdown report of :func:`run_throughput`'s table."""
    lines = [
        "# Scoring throughput (one thread)",
        "",
        f"Command: `{command}`",
        "",
        f"{n_rows} rows x {n_features} features scored per round; medians over rounds, timed round-robin.",
        "",
        "| scorer | rows/s | seconds | throughput vs IForest |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.scorer} | {r.rows_per_s:,.0f} | {r.seconds:.4f} | {r.vs_iforest:.1f}x |" for r in table.itertuples()]
    return "\n".join(lines) + "\n"
