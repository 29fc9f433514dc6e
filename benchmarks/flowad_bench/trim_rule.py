"""Can a rule that reads no label choose RobustRealNVP's trim ratio?

``results/defaults_dev/trim_ratio/`` found that a fixed trim ratio of 0.2 (twice the default
contamination) wins the tabular development set and loses on the CIFAR-10 features. A rule that
trims more only where it helps would have to decide from the training rows alone. This study
measures two such rules against the labels they never see:

- **held-out likelihood**: hold out a random :data:`VALIDATION_FRACTION` of the training split
  (no labels), fit RobustRealNVP with every candidate trim ratio on the rest, and keep the one
  whose held-out rows have the lowest ``L``-trimmed mean negative log-likelihood
  (:func:`flowad.training.trimmed_mean`, one column per level of :data:`NLL_LEVELS`);
- **robust-Gaussian outlier fraction**: the share of training rows beyond the
  :data:`OUTLIER_QUANTILE` quantile of a trimmed Ledoit–Wolf Gaussian's squared Mahalanobis
  distance (:func:`gaussian_outlier_fraction`, the classic reweighting step of the minimum
  covariance determinant), taken as an estimate of the contamination: trim the candidate nearest
  ``max(smallest candidate, estimate)``.

Each task is one dataset × seed × candidate trim under the ODDS protocol (stratified 60/40 split,
optional row cap); the model is the one fitted on the training split's non-held-out part, and its
test ROC AUC is what the rule's choice would deploy. :func:`rule_summary` compares each rule's
choices with every fixed candidate, per dataset source (folder).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from flowad.exceptions import InputError, NonFiniteError
from flowad.training import trimmed_mean
from flowad_bench.odds import BenchRun, _capped_dataset, _versions, load_only, prepare_datasets, run_and_load, run_notes
from flowad_bench.protocol import evaluate, stratified_split
from flowad_bench.report import markdown_head

__all__ = [
    "TRIMS",
    "NLL_LEVELS",
    "VALIDATION_FRACTION",
    "OUTLIER_QUANTILE",
    "TIE",
    "GAP_LEVEL",
    "FIELDS",
    "TrimRuleTask",
    "held_out_split",
    "gaussian_outlier_fraction",
    "run_trim_rule_task",
    "rule_choices",
    "rule_summary",
    "trim_rule_markdown",
    "run_trim_rule",
]

#: Candidate trim ratios (the default contamination and twice it).
TRIMS: tuple[float, ...] = (0.1, 0.2)
#: Levels of the held-out trimmed NLL (one rule each).
NLL_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3)
#: Share of the training split held out, at random, for the held-out NLL.
VALIDATION_FRACTION = 0.2
#: Quantile of the chi-squared distribution beyond which a row counts as an outlier.
OUTLIER_QUANTILE = 0.975
#: AUC differences within this are ties (neither choice is right or wrong).
TIE = 0.002
#: Level of the held-out NLL whose gap between the largest and the smallest candidate is plotted.
GAP_LEVEL = 0.2
FIELDS = (
    "dataset",
    "source",
    "seed",
    "trim_ratio",
    "n_fit",
    "n_val",
    "n_features",
    *(f"val_nll_{level:g}" for level in NLL_LEVELS),
    "outlier_fraction",
    "auc",
    "ap",
    "fit_seconds",
    "train_contamination",
    "versions",
)


@dataclass(frozen=True)
class TrimRuleTask:
    """One fit: dataset × seed × candidate trim ratio (``max_rows``: the ODDS protocol's cap)."""

    dataset: str
    path: str
    source: str
    seed: int
    trim_ratio: float
    max_rows: int | None = None
    epochs: int | None = None

    @property
    def task_id(self) -> str:
        """``dataset|trim=<t>|seed``."""
        return f"{self.dataset}|trim={self.trim_ratio:g}|{self.seed}"


def held_out_split(train_idx: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training rows to fit on and the :data:`VALIDATION_FRACTION` held out, drawn at random
    (seeded, no labels). Both sorted; together they are ``train_idx``."""
    order = np.random.default_rng(seed).permutation(np.asarray(train_idx))
    n_val = int(round(VALIDATION_FRACTION * order.size))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def gaussian_outlier_fraction(Z: np.ndarray, trim_ratio: float = TRIMS[0]) -> float:
    """Share of the rows of ``Z`` that a trimmed Gaussian calls outliers.

    Squared Mahalanobis distances from :func:`flowad_bench.embeddings.robust_distances` (trimmed
    Ledoit–Wolf fitted with ``trim_ratio`` on the robustly standardized non-constant columns),
    rescaled so that their median is the chi-squared median with as many degrees of freedom as
    columns (the usual consistency step); the share beyond the :data:`OUTLIER_QUANTILE` quantile.
    """
    from scipy.stats import chi2

    from flowad_bench.embeddings import robust_distances

    Z = np.asarray(Z, dtype=np.float64)
    Z = Z[:, Z.std(axis=0) > 0]
    if Z.shape[1] == 0:
        raise InputError("every column is constant; no outlier fraction to estimate.")
    dist = robust_distances(Z, trim_ratio)
    d = Z.shape[1]
    cut = np.median(dist) * chi2.ppf(OUTLIER_QUANTILE, d) / chi2.ppf(0.5, d)
    return float(np.mean(dist > cut))


@functools.lru_cache(maxsize=4)
def _fit_rows_outlier_fraction(path: str, max_rows: int | None, seed: int) -> float:
    """:func:`gaussian_outlier_fraction` of a dataset × seed's fit rows, computed once for all its candidates."""
    X, y = _capped_dataset(path, max_rows)
    fit_idx, _ = held_out_split(stratified_split(y, seed)[0], seed)
    return gaussian_outlier_fraction(X[fit_idx])


def run_trim_rule_task(task: TrimRuleTask) -> dict[str, Any]:
    """Fit RobustRealNVP with the task's trim ratio on the non-held-out training rows; its row."""
    from flowad import RobustRealNVP

    X, y = _capped_dataset(task.path, task.max_rows)
    train_idx, test_idx = stratified_split(y, task.seed)
    fit_idx, val_idx = held_out_split(train_idx, task.seed)
    kwargs: dict[str, Any] = {} if task.epochs is None else {"epochs": task.epochs}
    det = RobustRealNVP(trim_ratio=task.trim_ratio, random_state=task.seed, device="cpu", **kwargs)
    t0 = time.perf_counter()
    det.fit(X[fit_idx])
    seconds = time.perf_counter() - t0
    try:
        val = torch.as_tensor(det.decision_function(X[val_idx]))
        nll = {f"val_nll_{level:g}": float(trimmed_mean(val, level)) for level in NLL_LEVELS}
    except NonFiniteError:  # a held-out row far outside the fitted density
        nll = {f"val_nll_{level:g}": float("nan") for level in NLL_LEVELS}
    auc, ap = evaluate(y[test_idx], det.decision_function(X[test_idx]))
    return {
        "dataset": task.dataset,
        "source": task.source,
        "seed": task.seed,
        "trim_ratio": task.trim_ratio,
        "n_fit": int(fit_idx.size),
        "n_val": int(val_idx.size),
        "n_features": int(X.shape[1]),
        **nll,
        "outlier_fraction": _fit_rows_outlier_fraction(task.path, task.max_rows, task.seed),
        "auc": auc,
        "ap": ap,
        "fit_seconds": seconds,
        "train_contamination": float(y[fit_idx].mean()),  # for the reader; no rule reads it
        "versions": _versions(),
    }


def _candidates(choices: pd.DataFrame) -> list[float]:
    """The candidate trim ratios of a :func:`rule_choices` frame, smallest first (column ``auc@<t>`` each)."""
    return sorted(float(c.split("@")[1]) for c in choices.columns if c.startswith("auc@"))


def _nearest(trims: np.ndarray, value: float) -> float:
    return float(trims[np.argmin(np.abs(trims - value))])


def rule_choices(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × seed with every candidate's test AUC and each rule's chosen trim.

    Columns: ``dataset``, ``source``, ``seed``, ``auc@<t>`` per candidate, ``outlier_fraction``,
    ``held_out_gap`` (the :data:`GAP_LEVEL`-trimmed held-out NLL of the largest candidate minus that
    of the smallest, per feature: negative where the held-out rows favour trimming more), then
    ``<rule>`` (the chosen trim ratio) per rule: ``held-out NLL <L>`` for each level (the
    candidate with the lowest held-out ``L``-trimmed NLL; a non-finite one is never chosen) and
    ``Gaussian outlier fraction``. Pairs where some candidate has no row are left out.
    """
    trims = np.sort(frame["trim_ratio"].unique())
    rows = []
    for (dataset, source, seed), group in frame.groupby(["dataset", "source", "seed"], sort=True):
        by = group.set_index("trim_ratio")
        if len(by.index.unique()) < trims.size:
            continue
        row: dict[str, Any] = {"dataset": dataset, "source": source, "seed": seed}
        row.update({f"auc@{t:g}": float(by.at[t, "auc"]) for t in trims})
        fraction = float(by["outlier_fraction"].iloc[0])
        row["outlier_fraction"] = fraction
        gap = by[f"val_nll_{GAP_LEVEL:g}"].astype(float)
        row["held_out_gap"] = float((gap[trims[-1]] - gap[trims[0]]) / by["n_features"].iloc[0])
        for level in NLL_LEVELS:
            values = by[f"val_nll_{level:g}"].astype(float).reindex(trims).to_numpy()
            row[f"held-out NLL {level:g}"] = (
                float(trims[np.nanargmin(values)]) if np.isfinite(values).any() else float(trims[0])
            )
        row["Gaussian outlier fraction"] = _nearest(trims, max(float(trims[0]), fraction))
        rows.append(row)
    return pd.DataFrame(rows)


def _rules() -> list[str]:
    return [f"held-out NLL {level:g}" for level in NLL_LEVELS] + ["Gaussian outlier fraction"]


def rule_summary(choices: pd.DataFrame) -> pd.DataFrame:
    """Each fixed candidate and each rule: mean test AUC of the models it chooses (seeds averaged
    within a dataset, then datasets averaged) per source and over all, how often it chose the
    largest candidate, and in how many dataset × seed pairs whose candidates differ by more than
    :data:`TIE` it chose the better one.
    """
    trims = _candidates(choices)
    aucs = choices[[f"auc@{t:g}" for t in trims]].to_numpy()
    best = np.array(trims)[aucs.argmax(axis=1)]
    decided = (aucs.max(axis=1) - aucs.min(axis=1)) > TIE
    picks = {f"trim {t:g} (fixed)": np.full(len(choices), t) for t in trims}
    picks.update({rule: choices[rule].to_numpy(dtype=float) for rule in _rules()})
    sources = sorted(choices["source"].unique())
    rows = []
    for name, chosen in picks.items():
        auc = aucs[np.arange(len(choices)), [trims.index(c) for c in chosen]]
        per = choices.assign(chosen_auc=auc).groupby(["source", "dataset"])["chosen_auc"].mean()
        row: dict[str, Any] = {"choice": name}
        row.update({f"mean AUC, {s} ({per.loc[s].size})": float(per.loc[s].mean()) for s in sources})
        row[f"mean AUC, all ({per.size})"] = float(per.mean())
        row[f"chose {trims[-1]:g}"] = f"{int(np.sum(chosen == trims[-1]))}/{len(chosen)}"
        row["chose the better trim"] = f"{int(np.sum((chosen == best) & decided))}/{int(decided.sum())}"
        rows.append(row)
    return pd.DataFrame(rows)


def _per_dataset_signals(choices: pd.DataFrame) -> pd.DataFrame:
    """Per dataset (seeds averaged): ``gain`` (test AUC of the largest candidate minus the
    smallest's), ``outlier_fraction`` and ``held_out_gap``."""
    trims = _candidates(choices)
    gain = choices[f"auc@{trims[-1]:g}"] - choices[f"auc@{trims[0]:g}"]
    return choices.assign(gain=gain).groupby("dataset")[["gain", "outlier_fraction", "held_out_gap"]].mean()


def _gain_correlations(choices: pd.DataFrame) -> dict[str, float]:
    """Spearman correlation over datasets of each label-free signal with the AUC gained by the
    largest candidate (the held-out gap negated, so that positive means "the signal points the
    right way" for both)."""
    from scipy.stats import spearmanr

    means = _per_dataset_signals(choices)
    if len(means) < 3:
        return {"outlier_fraction": float("nan"), "held_out_gap": float("nan")}
    return {
        "outlier_fraction": float(spearmanr(means["outlier_fraction"], means["gain"]).statistic),
        "held_out_gap": float(spearmanr(-means["held_out_gap"], means["gain"]).statistic),
    }


def trim_rule_markdown(frame: pd.DataFrame, *, command: str = "", notes: Sequence[str] = ()) -> str:
    """The rules' summary and the per-dataset choices (seeds averaged)."""
    parts = markdown_head("Choosing the trim ratio without labels", command)
    parts += [
        f"Each dataset × seed: ODDS protocol split; RobustRealNVP (defaults, one candidate trim ratio each) "
        f"fitted on a random {1 - VALIDATION_FRACTION:.0%} of the training split; test ROC AUC of that model. "
        f"Rules (no label read): *held-out NLL L* keeps the candidate with the lowest L-trimmed mean NLL on the "
        f"held-out {VALIDATION_FRACTION:.0%}; *Gaussian outlier fraction* trims the candidate nearest the share "
        f"of training rows beyond a trimmed Ledoit–Wolf Gaussian's {OUTLIER_QUANTILE} chi-squared quantile "
        f"(at least the smallest candidate). *Chose the better trim*: pairs whose candidates differ by more than "
        f"{TIE} AUC.",
        "",
    ]
    if frame.empty:
        return "\n".join([*parts, "No results yet.", ""])
    choices = rule_choices(frame)
    if choices.empty:
        return "\n".join([*parts, "No dataset × seed has a row for every candidate yet.", ""])
    summary = rule_summary(choices)
    cols = list(summary.columns)
    parts += ["## Rules against fixed trim ratios", "", "| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for r in summary.itertuples(index=False):
        parts.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
    corr = _gain_correlations(choices)
    parts += [
        "",
        f"Spearman correlation over datasets with the AUC gained by the largest candidate: the outlier fraction "
        f"{corr['outlier_fraction']:.2f}; how much better the largest candidate's held-out {GAP_LEVEL:g}-trimmed "
        f"NLL is per feature {corr['held_out_gap']:.2f} (1 would be a perfect signal, 0 none).",
        "",
        "## Per dataset",
        "",
        f"Seeds averaged. *Held-out gap*: the largest candidate's held-out {GAP_LEVEL:g}-trimmed NLL minus the "
        "smallest's, nats per feature (negative: the held-out rows favour trimming more). The rules' columns: "
        "share of seeds choosing the largest candidate.",
        "",
    ]
    trims = _candidates(choices)
    per = choices.groupby(["source", "dataset"], sort=True)
    header = [
        "source",
        "dataset",
        *(f"AUC trim {t:g}" for t in trims),
        "outlier fraction",
        "held-out gap",
        *_rules(),
    ]
    parts += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for (source, dataset), g in per:
        cells = [
            source,
            dataset,
            *(f"{g[f'auc@{t:g}'].mean():.3f}" for t in trims),
            f"{g['outlier_fraction'].mean():.3f}",
            f"{g['held_out_gap'].mean():+.3f}",
        ]
        cells += [f"{np.mean(g[r] == trims[-1]):.2f}" for r in _rules()]
        parts.append("| " + " | ".join(cells) + " |")
    parts.append("")
    if notes:
        parts += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(parts)


def _plot(choices: pd.DataFrame, path: Path) -> None:
    """AUC gained by the largest candidate against each label-free signal, one point per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trims = _candidates(choices)
    means = _per_dataset_signals(choices)
    lo, hi = f"{trims[0]:g}", f"{trims[-1]:g}"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, x, label in [
        (axes[0], means["outlier_fraction"], "robust-Gaussian outlier fraction of the training rows"),
        (
            axes[1],
            -means["held_out_gap"],
            f"held-out {GAP_LEVEL:g}-trimmed NLL, nats per feature: trim {lo} model minus trim {hi} model",
        ),
    ]:
        ax.scatter(x, means["gain"])
        for name, xi, yi in zip(means.index, x, means["gain"], strict=True):
            ax.annotate(name, (xi, yi), fontsize=6)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(label)
    axes[0].set_ylabel(f"test AUC, trim {hi} minus trim {lo}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_trim_rule(
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    trims: Sequence[float] = TRIMS,
    datasets: Sequence[str] | None = None,
    seeds: int = 2,
    max_rows: int | None = None,
    jobs: int = 1,
    progress: bool = True,
    command: str = "",
    report_only: bool = False,
    epochs: int | None = None,
) -> BenchRun:
    """Run every dataset × seed × candidate (resuming ``out/results.csv``); write ``table.md`` and ``rules.png``.

    Parameters
    ----------
    data : path-like or sequence of path-like
        Dataset folders (as ``flowad bench odds --data``).
    out : path-like
    trims : sequence of float, default=TRIMS
        At least two candidate trim ratios in [0, 0.5).
    datasets : sequence of str, optional
        File stems (default: every dataset file).
    seeds : int, default=2
    max_rows : int, optional
        Row cap before the split (stratified, fixed seed), as the development set's.
    jobs, progress, command
        As in :func:`flowad_bench.odds.run_odds`.
    report_only : bool, default=False
        Run nothing; write the report from the rows already there.
    epochs : int, optional
        Override RobustRealNVP's epochs (tests).

    Raises
    ------
    InputError
        If fewer than two distinct candidates are given or one is outside [0, 0.5).
    """
    trims = sorted({float(t) for t in trims})
    if len(trims) < 2 or not all(0.0 <= t < 0.5 for t in trims):
        raise InputError(f"give at least two distinct trim ratios in [0, 0.5), got {list(trims)}.")
    found, skipped, seed_list = prepare_datasets(data, datasets, False, seeds)
    tasks = [
        TrimRuleTask(ds.name, str(ds.path), ds.source, seed, t, max_rows, epochs)
        for ds in found
        for seed in seed_list
        for t in trims
    ]
    if report_only:
        run, frame = load_only(tasks, out, skipped=skipped, table="table.md", plot="rules.png")
    else:
        run, frame = run_and_load(
            tasks,
            run_trim_rule_task,
            out,
            fields=FIELDS,
            skipped=skipped,
            table="table.md",
            plot="rules.png",
            jobs=jobs,
            progress=progress,
            desc="trim-rule",
        )
    notes = run_notes(run, len(tasks), len(frame))
    run.table_md.write_text(trim_rule_markdown(frame, command=command, notes=notes))
    if not frame.empty:
        choices = rule_choices(frame)
        if not choices.empty:
            _plot(choices, run.plot_png)
    return run
