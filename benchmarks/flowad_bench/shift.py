"""Helpers shared by the domain-shift benchmarks (vibration, semi-synthetic sound).

Both benchmarks train the same three models on the source domains (:func:`fit_source_models`),
run resumable (target, seed) tasks on one thread (:func:`run_resumable`) and produce rows
``(experiment, target, seed, n_adapt, method, auroc, pauc, nll, adapt_seconds, ...)``
(:func:`result_row`); this module holds that, the metrics and the summaries / markdown tables
computed from such rows, so that both report them the same way.

pAUC is computed as in the DCASE Task 2 baseline code, with
``sklearn.metrics.roc_auc_score(max_fpr=0.1)``, which returns the **McClish-standardized**
partial AUC (0.5 = chance, 1 = perfect).
"""

from __future__ import annotations

import copy
import logging
import platform
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

from flowad.detectors import AdaFlow, BatchNormFlow
from flowad.exceptions import InputError
from flowad.preprocessing import standardize
from flowad_bench.baselines import AutoEncoderBaseline
from flowad_bench.report import format_mean_std, frame_to_markdown
from flowad_bench.runner import torch_threads

__all__ = [
    "PAUC_MAX_FPR",
    "RESULT_FIELDS",
    "config_dict",
    "check_grid",
    "environment",
    "fit_source_models",
    "flow_only",
    "flow_params",
    "knn_target_scores",
    "lookup",
    "mixture_against_target",
    "metric_table",
    "metrics",
    "per_target_table",
    "plot_auroc_vs_n",
    "result_row",
    "run_resumable",
    "summarize",
    "target_gaussian_scores",
    "timing_table",
]

logger = logging.getLogger(__name__)

#: Max false-positive rate of the partial AUC.
PAUC_MAX_FPR = 0.1
#: Columns of a domain-shift benchmark's ``results.csv``.
RESULT_FIELDS = (
    "experiment",
    "target",
    "seed",
    "n_adapt",
    "method",
    "auroc",
    "pauc",
    "nll",
    "adapt_seconds",
    "n_test_normal",
    "n_test_anomalous",
)


def metrics(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """AUROC and McClish-standardized pAUC (max FPR 0.1); NaNs if a score is not finite."""
    if not np.isfinite(score).all():
        return float("nan"), float("nan")
    return float(roc_auc_score(y, score)), float(roc_auc_score(y, score, max_fpr=PAUC_MAX_FPR))


def check_grid(config: Any) -> None:
    """Refuse an empty run or an N too small to adapt: ``config`` has ``targets``, ``seeds`` and ``n_adapt``.

    Raises
    ------
    InputError
        If there is no target or no seed, or an N is below 2 (a variance needs two rows).
    """
    if not config.targets:
        raise InputError("no target to run: give at least one target.")
    if not config.seeds:
        raise InputError("no seed to run: --seeds must be >= 1.")
    small = [n for n in config.n_adapt if n < 2]
    if not config.n_adapt or small:
        raise InputError(f"every N of --n-adapt must be >= 2 (a variance needs two rows), got {list(config.n_adapt)}.")


def result_row(
    experiment: str,
    target: str,
    seed: int,
    n: int,
    method: str,
    y: np.ndarray,
    scores: np.ndarray,
    nll: float = float("nan"),
    seconds: float = float("nan"),
) -> dict[str, Any]:
    """One row of a ``results.csv`` (:data:`RESULT_FIELDS`): the metrics of ``scores`` against labels ``y``."""
    auroc, pauc = metrics(y, scores)
    return {
        "experiment": experiment,
        "target": target,
        "seed": seed,
        "n_adapt": n,
        "method": method,
        "auroc": auroc,
        "pauc": pauc,
        "nll": nll,
        "adapt_seconds": seconds,
        "n_test_normal": int((y == 0).sum()),
        "n_test_anomalous": int((y != 0).sum()),
    }


def fit_source_models(X: np.ndarray, domains: np.ndarray, config: Any, seed: int) -> tuple[AdaFlow, BatchNormFlow, AutoEncoderBaseline]:
    """AdaFlow, the batch-norm flow (fine-tuning on ``adapt``) and the autoencoder, trained on the source rows.

    ``config`` gives ``epochs``, ``batch_size``, ``lr`` (all three models) and
    ``finetune_epochs``, ``finetune_batch_size``, ``finetune_lr`` (the batch-norm flow's
    ``adapt``). AdaFlow learns one set of statistics per source domain; the other two pool
    the domains. Every model is seeded with ``seed`` and runs on the CPU.
    """
    common = {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr, "device": "cpu", "random_state": seed}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "few rows" warnings of small domains are expected here
        ada = AdaFlow(**common).fit(X, domains=domains)
        bn = BatchNormFlow(
            finetune_epochs=config.finetune_epochs,
            finetune_batch_size=config.finetune_batch_size,
            finetune_lr=config.finetune_lr,
            **common,
        ).fit(X, domains=domains)
        ae = AutoEncoderBaseline(**common).fit(X, domains=domains)
    return ada, bn, ae


def run_resumable(
    csv: Path,
    tasks: Sequence[tuple[str, int]],
    task: Callable[[str, int], list[dict[str, Any]]],
    *,
    desc: str,
    progress: bool = True,
) -> pd.DataFrame:
    """Run ``task(target, seed)`` for every (target, seed) not yet in ``csv``, on one thread.

    The rows of ``csv`` (if it exists) are kept and the (target, seed) pairs they hold are
    skipped; after every task all rows are written back, so an interrupted run resumes where
    it stopped. torch and the BLAS libraries are limited to one thread (restored after).

    Returns
    -------
    DataFrame
        Every row, with the columns :data:`RESULT_FIELDS`.
    """
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    previous = pd.read_csv(csv) if csv.is_file() else pd.DataFrame(columns=list(RESULT_FIELDS))
    done = set(zip(previous["target"].astype(str), previous["seed"].astype(int), strict=True))
    rows: list[dict[str, Any]] = previous.to_dict("records")
    todo = [(t, s) for t, s in tasks if (t, s) not in done]
    with torch_threads(1), threadpool_limits(1):
        for target, seed in tqdm(todo, desc=desc, unit="task", disable=not progress):
            logger.info("target %s, seed %d", target, seed)
            rows += task(target, seed)
            pd.DataFrame(rows, columns=list(RESULT_FIELDS)).to_csv(csv, index=False)
    return pd.DataFrame(rows, columns=list(RESULT_FIELDS))


def summarize(results: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """Mean ± std over seeds of the mean over targets, per experiment × method × N.

    Returns
    -------
    DataFrame with columns experiment, method, n_adapt, mean, std, n_seeds
    """
    per_seed = results.groupby(["experiment", "method", "n_adapt", "seed"])[metric].mean().reset_index()
    agg = per_seed.groupby(["experiment", "method", "n_adapt"])[metric].agg(["mean", "std", "count"]).reset_index()
    agg["std"] = agg["std"].fillna(0.0)
    return agg.rename(columns={"count": "n_seeds"})


def lookup(summary: pd.DataFrame, experiment: str, method: str, n: int) -> tuple[float, float]:
    """``(mean, std)`` of one cell of :func:`summarize`'s output (NaNs when absent)."""
    row = summary[(summary.experiment == experiment) & (summary.method == method) & (summary.n_adapt == n)]
    if row.empty:
        return float("nan"), float("nan")
    return float(row["mean"].iloc[0]), float(row["std"].iloc[0])


def metric_table(
    results: pd.DataFrame,
    metric: str,
    experiment: str,
    methods: Sequence[str],
    ns: Sequence[int],
    published: pd.DataFrame | None = None,
    published_label: str = "published",
) -> str:
    """Markdown table: one row per method, one column per N (mean ± std over seeds).

    ``published`` (columns experiment, method, n_adapt and ``metric``) adds, after each N, a
    column of published values, headed ``N=n <published_label>``.
    """
    summary = summarize(results, metric)
    table = {}
    for m in methods:
        if summary[(summary.experiment == experiment) & (summary.method == m)].empty:
            continue
        row = {}
        for n in ns:
            row[f"N={n}"] = format_mean_std(*lookup(summary, experiment, m, n))
            if published is not None:
                p = published[(published.experiment == experiment) & (published.method == m) & (published.n_adapt == n)]
                value = p[metric].iloc[0] if (not p.empty and metric in p) else float("nan")
                row[f"N={n} {published_label}"] = f"{float(value):.3f}" if np.isfinite(value) else ""
        table[m] = row
    return frame_to_markdown(pd.DataFrame.from_dict(table, orient="index"), "method")


def per_target_table(
    results: pd.DataFrame, metric: str, experiment: str, methods: Sequence[str], targets: Sequence[str], ns: Sequence[int]
) -> str:
    """Markdown table: one row per method, one column per (target, N): mean ± std over seeds."""
    rows = results[results.experiment == experiment]
    per_target = rows.groupby(["method", "target", "n_adapt"])[metric].agg(["mean", "std"])
    table = {}
    for m in methods:
        if m not in per_target.index.get_level_values(0):
            continue
        table[m] = {
            f"{t} N={n}": format_mean_std(*per_target.loc[(m, t, n)].fillna(0.0).tolist())
            for t in targets
            for n in ns
            if (m, t, n) in per_target.index
        }
    return frame_to_markdown(pd.DataFrame.from_dict(table, orient="index"), "method")


def timing_table(results: pd.DataFrame, experiment: str, ns: Sequence[int], adapted: str = "adaflow",
                 finetuned: str = "nf_finetuned", mixture: str | None = "adaflow_mixture") -> str:
    """Median adaptation times per N (the flow alone, the mixture when present, fine-tuning) and their ratios."""
    rows = results[results.experiment == experiment]
    has_mixture = mixture is not None and (rows.method == mixture).any()

    def median(method: str, n: int) -> float:
        return float(rows[(rows.method == method) & (rows.n_adapt == n)]["adapt_seconds"].median())

    timing = {}
    for n in ns:
        a, f = median(adapted, n), median(finetuned, n)
        entry = {"AdaFlow.adapt, flow only (ms)": f"{1e3 * a:.2f}"}
        if has_mixture:
            m = median(mixture, n)  # type: ignore[arg-type]
            entry["AdaFlow.adapt, mixture (ms)"] = f"{1e3 * m:.2f}"
        entry["fine-tuning (s)"] = f"{f:.3f}"
        entry["fine-tuning / flow-only adaptation"] = f"{f / a:.0f}x"
        if has_mixture:
            entry["fine-tuning / mixture adaptation"] = f"{f / m:.0f}x"
            entry["mixture / flow-only adaptation"] = f"{m / a:.2f}x"
        timing[f"N={n}"] = entry
    return frame_to_markdown(pd.DataFrame.from_dict(timing, orient="index"), "N")


def mixture_against_target(results: pd.DataFrame, experiment: str, ns: Sequence[int], gauss: str, knn: str,
                           mixture: str = "adaflow_mixture", flow: str = "adaflow", unadapted: str = "nf_unadapted") -> str:
    """Per N: the default (mixture) against the target-only Gaussian, 1-NN,
    the flow alone and the unadapted flow (AUROC and pAUC means), and the mean margin over the two smallest N."""
    table = {}
    margins = []
    for metric in ("auroc", "pauc"):
        summary = summarize(results, metric)
        for n in ns:
            mix = lookup(summary, experiment, mixture, n)[0]
            g = lookup(summary, experiment, gauss, n)[0]
            entry = table.setdefault(f"N={n}", {})
            entry[f"{metric}: mixture"] = f"{mix:.3f}"
            entry[f"{metric}: Gaussian"] = f"{g:.3f}"
            entry[f"{metric}: mixture − Gaussian"] = f"{mix - g:+.3f}"
            if metric == "auroc":
                entry["auroc: mixture − 1-NN"] = f"{mix - lookup(summary, experiment, knn, n)[0]:+.3f}"
                entry["auroc: mixture − flow alone"] = f"{mix - lookup(summary, experiment, flow, n)[0]:+.3f}"
                entry["auroc: mixture − unadapted"] = f"{mix - lookup(summary, experiment, unadapted, n)[0]:+.3f}"
                margins.append(mix - g)
    text = frame_to_markdown(pd.DataFrame.from_dict(table, orient="index"), "N")
    if len(margins) >= 2:
        small = sorted(range(len(ns)), key=lambda i: ns[i])[:2]
        text += (f"\n\nMean AUROC margin of the mixture over the target-only Gaussian at the two smallest N "
                 f"({', '.join(str(ns[i]) for i in small)}): {np.mean([margins[i] for i in small]):+.3f}; "
                 f"smallest margin over all N: {min(margins):+.3f}.")
    return text


def flow_only(ada: AdaFlow, **params: Any) -> AdaFlow:
    """A copy of a fitted AdaFlow that scores with the flow alone (``adapted_density="flow"``): the
    published AdaFlow, on the same trained flow as the default mixture. Other ``params`` (e.g.
    ``adapted_density="mixture", gaussian_space="latent"``) give other variants of the same flow;
    only domains adapted after the change follow them."""
    out = copy.deepcopy(ada)
    out.set_params(**({"adapted_density": "flow"} | params))
    return out


def knn_target_scores(adapt: np.ndarray, test: np.ndarray, batch: int = 2048) -> np.ndarray:
    """The "1-nearest-neighbour distance to the N target samples" baseline: both sets standardized
    by ``adapt`` (:func:`flowad.preprocessing.standardize`), the Euclidean distance of each test row
    to its nearest adaptation row (higher = more anomalous)."""
    a, t = standardize(adapt, test)
    out = np.empty(t.shape[0])
    a2 = (a**2).sum(axis=1)
    for start in range(0, t.shape[0], batch):
        block = t[start : start + batch]
        d2 = (block**2).sum(axis=1)[:, None] - 2.0 * block @ a.T + a2[None, :]
        out[start : start + batch] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def environment(threads: int = 1) -> dict[str, Any]:
    """Versions and machine of a run."""
    from flowad import __version__

    return {
        "flowad": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "threads": threads,
    }


def config_dict(config: Any) -> dict[str, Any]:
    """A dataclass configuration as JSON-serialisable values (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}


def flow_params(config: Any) -> dict[str, Any]:
    """The AdaFlow settings a benchmark used: library defaults plus its ``epochs``, ``batch_size``, ``lr``."""
    params = AdaFlow(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, device="cpu").get_params()
    params.pop("random_state", None)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def plot_auroc_vs_n(
    results: pd.DataFrame, experiments: Sequence[str], methods: Sequence[str], path: Any, *, title: str = ""
) -> None:
    """One panel per experiment: AUROC (mean ± std over seeds) against N for every method; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(results, "auroc")
    fig, axes = plt.subplots(1, len(experiments), figsize=(5.2 * len(experiments), 4.2), squeeze=False)
    for ax, experiment in zip(axes[0], experiments, strict=True):
        for m in methods:
            rows = summary[(summary.experiment == experiment) & (summary.method == m)].sort_values("n_adapt")
            if rows.empty:
                continue
            ax.errorbar(rows["n_adapt"], rows["mean"], yerr=rows["std"], marker="o", ms=4, capsize=2, label=m)
        ax.set_xscale("log")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set(xlabel="N target samples for adaptation", ylabel="AUROC (mean ± std over seeds)", title=experiment)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def target_gaussian_scores(adapt: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The "Gaussian fitted on the N target samples only" baseline: squared Mahalanobis distances.

    ``adapt`` (the N target rows) standardizes both sets; a Ledoit–Wolf Gaussian fitted on it
    scores ``test`` (higher = more anomalous). It uses the same N rows as the adapted flows.
    Both sets are standardized by :func:`flowad.preprocessing.standardize`, in float64 whatever
    their dtype (the covariance of many features from few rows is ill-conditioned; float32
    frames would lose precision in its inverse).
    """
    a, t = standardize(adapt, test)
    return LedoitWolf().fit(a).mahalanobis(t)
