"""The vibration benchmark's experiment: every method × N for one held-out condition and seed, the
resumable run, and the source-only check of the AdaFlow setting."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf
from sklearn.ensemble import IsolationForest

from flowad.detectors import AdaFlow
from flowad.exceptions import InputError
from flowad.features.vibration import feature_names
from flowad.preprocessing import standardize
from flowad_bench.record import output_folder
from flowad_bench.shift import (
    check_grid,
    fit_source_models,
    flow_only,
    knn_target_scores,
    metrics,
    result_row,
    run_resumable,
    target_gaussian_scores,
)
from flowad_bench.vibration.config import (
    CONDITIONS,
    DRIFT_NORMAL,
    DRIFT_POSITIVE,
    HEALTHY,
    METHODS,
    VALIDATION_CANDIDATES,
    VibrationBenchConfig,
)
from flowad_bench.vibration.data import load_features, splits, window

__all__ = ["run_vibration_benchmark", "run_vibration_task", "source_validation"]


def _per_domain_standardized(X: np.ndarray, domains: np.ndarray) -> np.ndarray:
    out = np.empty_like(X)
    for d in np.unique(domains):
        rows = domains == d
        out[rows] = standardize(X[rows])[0]
    return out


def run_vibration_task(
    frame: pd.DataFrame, X: np.ndarray, target: str, seed: int, config: VibrationBenchConfig
) -> list[dict[str, Any]]:
    """All methods × N (and the drift control) for one held-out condition and one seed.

    Parameters
    ----------
    frame : DataFrame
        The FEMTO index (``condition``, ``label``, ``life_fraction`` per row of ``X``).
    X : ndarray of shape (n_snapshots, 70)
        Snapshot features (:func:`~flowad.features.vibration.femto_features`).
    target : str
        Held-out condition.
    seed : int
    config : VibrationBenchConfig

    Returns
    -------
    list of dict
        One row per (experiment, N, method), with the fields of
        :data:`~flowad_bench.shift.RESULT_FIELDS`.
    """
    cond = frame["condition"].to_numpy()
    label = frame["label"].to_numpy()
    src = (cond != target) & (label == 0) & window(frame, HEALTHY)
    Xs, ds = X[src], cond[src]
    names = feature_names(2)
    rms_cols = [names.index("h_log_rms"), names.index("v_log_rms")]

    ada, bn, ae = fit_source_models(Xs, ds, config, seed)
    ada_flow = flow_only(ada)  # the published AdaFlow: the same trained flow, scored by the flow alone
    ada_latent = flow_only(ada, adapted_density="mixture", gaussian_space="latent")  # the Gaussian on the flow's latent
    ada_likelihood = flow_only(ada, adapted_density="mixture", mixture_selection="likelihood")  # weight by held-out likelihood
    pooled_domain = str(ds[0])  # a training domain: scored with the pooled (unadapted) flow

    Zs_global = standardize(Xs)[0]
    Zs_domain = _per_domain_standardized(Xs, ds)
    experiments = {"late_life": (HEALTHY, (cond == target) & (label == 1))}
    if config.drift_control:
        experiments["drift_control"] = (DRIFT_NORMAL, (cond == target) & (label == 0) & window(frame, DRIFT_POSITIVE))

    rows: list[dict[str, Any]] = []
    # Source-only models that do not depend on N: fitted once.
    lw_pooled = LedoitWolf().fit(Zs_global)
    lw_domain = LedoitWolf().fit(Zs_domain)
    if_pooled = IsolationForest(n_estimators=config.iforest_trees, random_state=seed, n_jobs=1).fit(Zs_global)
    if_domain = IsolationForest(n_estimators=config.iforest_trees, random_state=seed, n_jobs=1).fit(Zs_domain)
    for experiment, (normal, positive) in experiments.items():
        for n, split in splits(frame, target, seed, config.n_adapt, normal, positive).items():
            Xa, Xt, y = X[split.adapt], X[split.test], split.y
            normal_rows = y == 0
            scores: dict[str, np.ndarray] = {}
            nll: dict[str, float] = {}
            seconds: dict[str, float] = {}

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "few rows" warnings at N = 10 are expected here
                name = f"{target}@{experiment}"
                adapted = {"adaflow": ada_flow, "adaflow_mixture": ada, "adaflow_mixture_latent": ada_latent,
                           "adaflow_mixture_likelihood": ada_likelihood}
                for method, det in adapted.items():
                    t0 = time.perf_counter()
                    det.adapt(Xa, domain=name)
                    seconds[method] = time.perf_counter() - t0
                    ll = det.score_samples(Xt, domain=name)
                    scores[method], nll[method] = -ll, float(-ll[normal_rows].mean())
                ll = bn.score_samples(Xt, domain=pooled_domain)
                scores["nf_unadapted"], nll["nf_unadapted"] = -ll, float(-ll[normal_rows].mean())
                scores["autoencoder"] = ae.decision_function(Xt)
                if experiment == "late_life":
                    t0 = time.perf_counter()
                    bn.adapt(Xa, domain=f"{name}-N{n}")
                    seconds["nf_finetuned"] = time.perf_counter() - t0
                    ll = bn.score_samples(Xt, domain=f"{name}-N{n}")
                    scores["nf_finetuned"], nll["nf_finetuned"] = -ll, float(-ll[normal_rows].mean())
                    bn.remove_domain(f"{name}-N{n}")

            Zt_global = standardize(Xs, Xt)[1]
            Zt_own = standardize(Xa, Xt)[1]  # the target standardized with its N snapshots
            scores["gauss_pooled"] = lw_pooled.mahalanobis(Zt_global)
            scores["gauss_domain_std"] = lw_domain.mahalanobis(Zt_own)
            scores["gauss_target_only"] = target_gaussian_scores(Xa, Xt)
            scores["knn_target_only"] = knn_target_scores(Xa, Xt)
            scores["iforest_pooled"] = -if_pooled.score_samples(Zt_global)
            scores["iforest_domain_std"] = -if_domain.score_samples(Zt_own)
            scores["log_rms"] = Xt[:, rms_cols].sum(axis=1)

            for method in METHODS:
                if method in scores:
                    rows.append(result_row(experiment, target, seed, n, method, y, scores[method],
                                           nll.get(method, float("nan")), seconds.get(method, float("nan"))))
    return rows


def run_vibration_benchmark(
    data: str | Path, out: str | Path, config: VibrationBenchConfig | None = None, *, progress: bool = True
) -> pd.DataFrame:
    """Run every (target, seed) task and write ``results.csv`` and ``features.npz`` into ``out``.

    Resumable: (target, seed) tasks already in ``out/results.csv`` are skipped. Runs on one
    thread (torch and the BLAS libraries limited to 1 thread, restored after).

    Parameters
    ----------
    data : path
        The ``femto_pronostia`` folder (with ``index.csv``).
    out : path
        Output folder; its ``features.npz`` caches the snapshot features.
    config : VibrationBenchConfig or None
    progress : bool, default=True

    Returns
    -------
    DataFrame
        The result rows (also in ``out/results.csv``).
    """
    cfg = config or VibrationBenchConfig()
    check_grid(cfg)
    unknown = [t for t in cfg.targets if t not in CONDITIONS]
    if unknown:
        raise InputError(f"targets must be among {list(CONDITIONS)}, got {unknown}.")
    out = output_folder(out)
    frame, X = load_features(data, out / "features.npz", progress=progress)
    tasks = [(t, s) for t in cfg.targets for s in cfg.seeds]
    return run_resumable(out / "results.csv", tasks, lambda target, seed: run_vibration_task(frame, X, target, seed, cfg),
                     desc="vibration", progress=progress)


def source_validation(
    frame: pd.DataFrame,
    X: np.ndarray,
    config: VibrationBenchConfig,
    candidates: Sequence[dict[str, Any]] = VALIDATION_CANDIDATES,
    seed: int = 0,
) -> pd.DataFrame:
    """Compare AdaFlow settings on the source conditions only (no target label is used).

    For each outer target T with source conditions {A, B}: train on A's healthy snapshots,
    adapt to B with N of its healthy snapshots, score B's other healthy and its late-life
    snapshots (and the other way round). This repeats the outer protocol inside the source.

    Returns
    -------
    DataFrame with columns candidate, candidate_index, target, inner_source, inner_target, n_adapt, auroc
    """
    cond = frame["condition"].to_numpy()
    label = frame["label"].to_numpy()
    healthy = (label == 0) & window(frame, HEALTHY)
    rows = []
    for ci, cand in enumerate(candidates):
        for target in config.targets:
            src = [c for c in CONDITIONS if c != target]
            for a, b in ((src[0], src[1]), (src[1], src[0])):
                kw = {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr, "device": "cpu",
                      "random_state": seed, **cand}
                train = healthy & (cond == a)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    det = AdaFlow(**kw).fit(X[train], domains=cond[train])
                    for n, split in splits(frame, b, seed, config.n_adapt, HEALTHY, (cond == b) & (label == 1)).items():
                        det.adapt(X[split.adapt], domain="inner")
                        auroc, _ = metrics(split.y, det.decision_function(X[split.test], domain="inner"))
                        rows.append({"candidate": json.dumps(cand), "candidate_index": ci, "target": target,
                                     "inner_source": a, "inner_target": b, "n_adapt": n, "auroc": auroc})
    return pd.DataFrame(rows)
