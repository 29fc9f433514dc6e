"""The study's sensitivity experiments and its spectral-normalization ablation.

* **Trim-ratio sensitivity** – the training split is brought to a true contamination of 0.1
  (by default fairly, as below: distinct rows only; ``design="resample"`` draws anomalies again,
  with replacement when too few); the trimmed flows are trained with a misestimated trim ratio
  (0.05 … 0.2).
* **Contamination sensitivity** – the training split is brought to a true contamination of
  0.1 … 0.4. By default fairly: distinct rows only, the same training size at every level
  (datasets with too few anomalies are skipped); ``design="resample"`` keeps every normal row
  and draws anomalies again, with replacement when there are too few, so duplicates appear.
  The trim ratio follows the true contamination unless fixed.
* **Spectral-normalization ablation** – TrimRealNVP (no Lipschitz bound) against
  RobustRealNVP (bound) under the ODDS protocol; paired per dataset.

Each writes ``results.csv`` (resumable), ``table.md`` and a PNG in its output folder. The
test split is the protocol's 40 % split and is never resampled.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowad.exceptions import InputError
from flowad_bench.datasets import SkippedFile
from flowad_bench.methods import FLOWAD_METHODS, parse_methods, parse_variant
from flowad_bench.odds import (
    RESULT_FIELDS,
    BenchRun,
    OddsTask,
    check_unique_labels,
    make_tasks,
    prepare_datasets,
    run_and_load,
    run_notes,
    run_task,
)
from flowad_bench.protocol import MIN_CONTAMINATION_ROWS, contamination_train_size, stratified_split
from flowad_bench.report import format_mean_std, frame_to_markdown, markdown_head

__all__ = [
    "TRIM_RATIOS",
    "TRUE_CONTAMINATIONS",
    "CONTAMINATION_DESIGNS",
    "run_trim_sensitivity",
    "run_contamination_sensitivity",
    "run_sn_ablation",
    "sensitivity_markdown",
    "plot_sensitivity",
]

#: Trim ratios of the misestimation experiment (true contamination 0.1).
TRIM_RATIOS = (0.05, 0.075, 0.1, 0.15, 0.2)
#: True training contaminations of the contamination experiment.
TRUE_CONTAMINATIONS = (0.1, 0.2, 0.3, 0.4)
#: True contamination of the trim-ratio experiment.
TRIM_TRUE_CONTAMINATION = 0.1
#: How the contamination study reaches each level (see :func:`run_contamination_sensitivity`).
CONTAMINATION_DESIGNS = ("subsample", "resample")
_RESAMPLE_NOTE = (
    "Training split resampled to the stated contamination from its own anomalies (with replacement "
    "when there are too few, so anomalies can repeat); test split = the protocol's 40 % stratified split, "
    "untouched. Test ROC AUC, mean ± std over seeds."
)
_DESIGN_NOTES = {
    "resample": _RESAMPLE_NOTE,
    "subsample": (
        "Fair design: at every level the training set has the same number of distinct rows of the training "
        "split (set by the highest level and the split's anomalies; see `n_train` in results.csv), the stated "
        "fraction of them anomalies; levels are nested (a higher level swaps normal rows for anomalies); no row "
        "repeats. Datasets with too few anomalies are skipped (notes). Test split = the protocol's 40 % "
        "stratified split, untouched. Test ROC AUC, mean ± std over seeds."
    ),
}
_QUICK_NOTE = "QUICK mode: one seed, the three smallest datasets, reduced epochs — a smoke test."


def _check_values(name: str, values: Sequence[float], low: float, high: float) -> list[float]:
    vals = [float(v) for v in values]
    bad = [v for v in vals if not low <= v < high]
    if not vals or bad:
        raise InputError(f"{name} must be a non-empty list of numbers in [{low}, {high}), got {list(values)}.")
    return vals


def _study_tasks(
    data: str | os.PathLike[str],
    datasets: Sequence[str] | None,
    names: list[str],
    values: list[float],
    *,
    seeds: int,
    quick: bool,
    experiment: str,
    setting: Callable[[float], str],
    overrides: Callable[[str, float], tuple[tuple[str, Any], ...]],
    train_contamination: Callable[[float], float],
    contamination_range: tuple[float, float] | None = None,
    variants: Sequence[tuple[str, str, tuple[tuple[str, Any], ...]]] = (),
) -> tuple[list[OddsTask], list[SkippedFile]]:
    """One :class:`OddsTask` per dataset × method × factor value × seed, in that order.

    ``variants`` (:func:`~flowad_bench.methods.parse_variant` triples) run after ``names`` under
    their labels, with their constructor arguments over the study's ``overrides``.

    With ``contamination_range`` (the fair design) a dataset whose training split cannot reach
    the highest level with :data:`~flowad_bench.protocol.MIN_CONTAMINATION_ROWS` distinct rows is
    left out and listed as skipped, with its row count.
    """
    chosen, skipped, seed_list = prepare_datasets(data, datasets, quick, seeds)
    if contamination_range is not None:
        low, high = contamination_range
        kept = []
        for d in chosen:
            n = contamination_train_size(d.y, stratified_split(d.y, 0)[0], low, high)
            if n >= MIN_CONTAMINATION_ROWS:
                kept.append(d)
            else:
                skipped.append(SkippedFile(d.name, str(d.path), (
                    f"too few anomalies for contamination {high:g} without repeating rows: {n} training rows "
                    f"(< {MIN_CONTAMINATION_ROWS})")))
        chosen = kept
    runs = [(m, m, ()) for m in names] + list(variants)
    check_unique_labels([label for label, _, _ in runs])
    tasks = [
        OddsTask(
            dataset=d.name,
            path=d.path,
            method=label,
            seed=s,
            quick=quick,
            train_contamination=train_contamination(v),
            overrides=tuple({**dict(overrides(method, v)), **dict(own)}.items()),
            experiment=experiment,
            setting=setting(v),
            contamination_range=contamination_range,
        )
        for d in chosen
        for label, method, own in runs
        for v in values
        for s in seed_list
    ]
    return tasks, skipped


def run_trim_sensitivity(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    trim_ratios: Sequence[float] = TRIM_RATIOS,
    methods: str | Sequence[str] = "RobustRealNVP",
    datasets: Sequence[str] | None = None,
    seeds: int = 5,
    jobs: int = 1,
    quick: bool = False,
    progress: bool = True,
    command: str = "",
    design: str = "subsample",
) -> BenchRun:
    """Misestimated trim ratio: true training contamination 0.1, trim ratio varied.

    Parameters
    ----------
    data, out : path-like
        Dataset folder and output folder.
    trim_ratios : sequence of float, default=(0.05, 0.075, 0.1, 0.15, 0.2)
    methods : str or list of str, default="RobustRealNVP"
        Trimmed flowad methods (``trim_ratio`` is set on each).
    datasets, seeds, jobs, quick, progress, command
        As in :func:`flowad_bench.odds.run_odds`.
    design : {"subsample", "resample"}, default="subsample"
        How the training split reaches contamination 0.1, as in
        :func:`run_contamination_sensitivity`: ``"subsample"`` (fair) keeps the largest set of
        distinct rows with 10 % anomalies (datasets where that is under
        :data:`~flowad_bench.protocol.MIN_CONTAMINATION_ROWS` rows are skipped);
        ``"resample"`` keeps every normal row and draws anomalies again, with replacement when
        too few (the design of the earlier ``results/odds_sensitivity/trim_sensitivity``).

    Returns
    -------
    BenchRun
    """
    ratios = _check_values("trim_ratios", trim_ratios, 0.0, 0.5)
    if design not in CONTAMINATION_DESIGNS:
        raise InputError(f"design must be one of {list(CONTAMINATION_DESIGNS)}, got {design!r}.")
    names = parse_methods(methods)
    not_flow = [m for m in names if m not in FLOWAD_METHODS]
    if not_flow:
        raise InputError(f"the trim-ratio experiment needs flowad methods (they take trim_ratio); got {not_flow}.")
    tasks, skipped = _study_tasks(
        data, datasets, names, ratios, seeds=seeds, quick=quick, experiment="trim-sensitivity",
        setting=lambda r: f"trim={r:g}" + (",design=subsample" if design == "subsample" else ""),
        overrides=lambda m, r: (("trim_ratio", r), ("contamination", TRIM_TRUE_CONTAMINATION)),
        train_contamination=lambda r: TRIM_TRUE_CONTAMINATION,
        contamination_range=(TRIM_TRUE_CONTAMINATION,) * 2 if design == "subsample" else None,
    )
    title = f"Sensitivity to a misestimated trim ratio (true contamination {TRIM_TRUE_CONTAMINATION})"
    return _run_study(tasks, skipped, out, factor="trim ratio", values=ratios, methods=names, command=command,
                      jobs=jobs, progress=progress, title=title, quick=quick, design_note=_DESIGN_NOTES[design])


def run_contamination_sensitivity(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    contaminations: Sequence[float] = TRUE_CONTAMINATIONS,
    trim: float | None = None,
    methods: str | Sequence[str] = "flowad",
    datasets: Sequence[str] | None = None,
    seeds: int = 5,
    jobs: int = 1,
    quick: bool = False,
    progress: bool = True,
    command: str = "",
    design: str = "subsample",
    variants: Sequence[str] = (),
) -> BenchRun:
    """True training contamination varied from the training split's own rows.

    Parameters
    ----------
    contaminations : sequence of float, default=(0.1, 0.2, 0.3, 0.4)
    trim : float or None, default=None
        None: every detector is told the true contamination (so the trimmed flows trim it);
        a float: flowad's trimmed flows use this fixed trim ratio whatever the truth.
    design : {"subsample", "resample"}, default="subsample"
        ``"subsample"`` (fair): every level has the same number of distinct training rows, set
        by the highest level and the split's anomalies
        (:func:`flowad_bench.protocol.subsample_contamination`); datasets with too few
        anomalies for it are skipped. ``"resample"``: all normal training rows are kept and
        anomalies are drawn again, with replacement when too few (repeated rows; the design of
        the earlier ``results/odds_sensitivity``).
    variants : sequence of str
        ``NAME:key=value,...`` specs (:func:`flowad_bench.methods.parse_variant`), each its own
        row label, e.g. ``RobustRealNVP:trim_ratio=0.1`` (a fixed trim whatever the truth) or
        ``RobustRealNVP:lipschitz_k=2.0``; their arguments win over the study's.
    data, out, methods, datasets, seeds, jobs, quick, progress, command
        As in :func:`run_trim_sensitivity`; any method may be used.

    Returns
    -------
    BenchRun
    """
    values = _check_values("contaminations", contaminations, 0.0, 0.5 + 1e-12)
    if design not in CONTAMINATION_DESIGNS:
        raise InputError(f"design must be one of {list(CONTAMINATION_DESIGNS)}, got {design!r}.")
    names = parse_methods(methods) if methods else []
    parsed = [parse_variant(v) for v in variants]
    if not names and not parsed:
        raise InputError("no method to run: give --methods and/or --variant.")

    def overrides(m: str, c: float) -> tuple[tuple[str, Any], ...]:
        if trim is not None and m in ("TrimRealNVP", "RobustRealNVP"):
            return (("trim_ratio", float(trim)), ("contamination", c))
        return (("contamination", c),)

    tasks, skipped = _study_tasks(
        data, datasets, names, values, seeds=seeds, quick=quick, experiment="contamination-sensitivity",
        setting=lambda c: (f"contamination={c:g}" + ("" if trim is None else f",trim={float(trim):g}")
                           + (",design=subsample" if design == "subsample" else "")),
        overrides=overrides,
        train_contamination=lambda c: c,
        contamination_range=(min(values), max(values)) if design == "subsample" else None,
        variants=parsed,
    )
    how = "trim ratio = true contamination" if trim is None else f"fixed trim ratio {trim:g}"
    title = f"Sensitivity to the true training contamination ({how})"
    return _run_study(tasks, skipped, out, factor="true contamination", values=values,
                      methods=names + [label for label, _, _ in parsed],
                      command=command, jobs=jobs, progress=progress, title=title, quick=quick,
                      design_note=_DESIGN_NOTES[design])


def _factor_value(task: OddsTask) -> float:
    if task.experiment == "trim-sensitivity":
        return float(dict(task.overrides)["trim_ratio"])
    assert task.train_contamination is not None
    return float(task.train_contamination)


def _run_study(
    tasks: list[OddsTask],
    skipped: list[SkippedFile],
    out: str | os.PathLike[str],
    *,
    factor: str,
    values: list[float],
    methods: list[str],
    command: str,
    jobs: int,
    progress: bool,
    title: str,
    quick: bool,
    design_note: str = _RESAMPLE_NOTE,
) -> BenchRun:
    run, frame = run_and_load(
        tasks, run_task, out, fields=RESULT_FIELDS, skipped=skipped, table="table.md", plot="sensitivity.png",
        jobs=jobs, progress=progress, desc=tasks[0].experiment if tasks else "study",
    )
    factor_of = {t.task_id: _factor_value(t) for t in tasks}
    frame = frame.assign(factor=frame["task_id"].map(factor_of)) if not frame.empty else frame
    notes = run_notes(run, len(tasks), len(frame), _QUICK_NOTE if quick else None)
    run.table_md.write_text(
        sensitivity_markdown(
            frame, factor=factor, values=values, methods=methods, title=title, command=command, notes=notes,
            design_note=design_note,
        )
    )
    if not frame.empty:
        plot_sensitivity(frame, run.plot_png, factor=factor, methods=methods, title=title)
    return run


def sensitivity_markdown(
    frame: pd.DataFrame,
    *,
    factor: str,
    values: list[float],
    methods: list[str],
    title: str,
    command: str = "",
    notes: list[str] | None = None,
    design_note: str = _RESAMPLE_NOTE,
) -> str:
    """Table: one row per dataset × method, one column per factor value (AUC mean ± std over seeds)."""
    parts = markdown_head(title, command)
    parts += [design_note, ""]
    if not frame.empty:
        stats = frame.groupby(["dataset", "method", "factor"])["auc"].agg(["mean", "std"]).fillna(0.0)
        rows = {}
        for (d, m), grp in stats.groupby(level=[0, 1], sort=False):
            g = grp.droplevel([0, 1])
            rows[f"{d} / {m}"] = [format_mean_std(g["mean"].get(v, np.nan), g["std"].get(v, 0.0)) for v in values]
        per_ds = frame.groupby(["method", "factor", "dataset"])["auc"].mean()
        for m in methods:
            if m in per_ds.index.get_level_values(0):
                means = per_ds.loc[m].groupby(level=0).mean()
                rows[f"**mean over datasets / {m}**"] = [f"{means.get(v, np.nan):.3f}" for v in values]
        table = pd.DataFrame.from_dict(rows, orient="index", columns=[f"{factor} = {v:g}" for v in values])
        parts += [frame_to_markdown(table, "dataset / method"), ""]
    else:
        parts += ["No results yet.", ""]
    if notes:
        parts += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(parts)


def plot_sensitivity(
    frame: pd.DataFrame, path: str | os.PathLike[str], *, factor: str, methods: list[str], title: str
) -> None:
    """Mean AUC over datasets against the factor, one line per method; thin lines per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    cmap = plt.get_cmap("tab10")
    per_ds = frame.groupby(["method", "dataset", "factor"])["auc"].mean()
    for j, m in enumerate(methods):
        if m not in per_ds.index.get_level_values(0):
            continue
        sub = per_ds.loc[m]
        for d in sub.index.get_level_values(0).unique():
            s = sub.loc[d].sort_index()
            ax.plot(s.index, s.values, color=cmap(j % 10), lw=0.6, alpha=0.35)
        mean = sub.groupby(level=1).mean().sort_index()
        ax.plot(mean.index, mean.values, "o-", color=cmap(j % 10), lw=2, label=f"{m} (mean over datasets)")
    ax.set_xlabel(factor)
    ax.set_ylabel("test ROC AUC")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------ ablation
def run_sn_ablation(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    datasets: Sequence[str] | None = None,
    seeds: int = 5,
    jobs: int = 1,
    quick: bool = False,
    progress: bool = True,
    command: str = "",
) -> BenchRun:
    """Spectral-normalization ablation: TrimRealNVP vs RobustRealNVP, paired per dataset and seed.

    Rows share their task ids with :func:`flowad_bench.odds.run_odds`, so pointing ``out`` at
    an ODDS output folder reuses its TrimRealNVP and RobustRealNVP rows.

    Returns
    -------
    BenchRun
    """
    methods = ["TrimRealNVP", "RobustRealNVP"]
    chosen, skipped, seed_list = prepare_datasets(data, datasets, quick, seeds)
    tasks = make_tasks(chosen, methods, seed_list, quick=quick)
    run, frame = run_and_load(
        tasks, run_task, out, fields=RESULT_FIELDS, skipped=skipped, table="ablation.md", plot="ablation.png",
        jobs=jobs, progress=progress, desc="sn-ablation",
    )
    notes = run_notes(run, len(tasks), len(frame), _QUICK_NOTE if quick else None)
    run.table_md.write_text(ablation_markdown(frame, command=command, notes=notes))
    if not frame.empty:
        plot_ablation(frame, run.plot_png)
    return run


def ablation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: mean AUC of both methods, mean paired difference (Robust − Trim), seeds won."""
    wide = frame.pivot_table(index=["dataset", "seed"], columns="method", values="auc").dropna()
    wide["diff"] = wide["RobustRealNVP"] - wide["TrimRealNVP"]
    g = wide.groupby(level=0, sort=False)
    return pd.DataFrame(
        {
            "TrimRealNVP": g["TrimRealNVP"].mean(),
            "RobustRealNVP": g["RobustRealNVP"].mean(),
            "diff_mean": g["diff"].mean(),
            "diff_std": g["diff"].std().fillna(0.0),
            "seeds_robust_better": g["diff"].apply(lambda s: int((s > 0).sum())),
            "n_seeds": g["diff"].size(),
        }
    )


def ablation_markdown(frame: pd.DataFrame, *, command: str = "", notes: list[str] | None = None) -> str:
    """Markdown of :func:`ablation_table` plus a Wilcoxon signed-rank test over datasets."""
    parts = markdown_head("Spectral-normalization ablation: TrimRealNVP (no Lipschitz bound) vs RobustRealNVP", command)
    parts += [
        "ODDS protocol (stratified 60/40 split per seed, unlabeled contaminated training split); test ROC AUC.",
        "",
    ]
    if frame.empty or not {"TrimRealNVP", "RobustRealNVP"} <= set(frame["method"]):
        parts += ["No paired results yet.", ""]
    else:
        tab = ablation_table(frame)
        cells = pd.DataFrame(
            {
                "TrimRealNVP": tab["TrimRealNVP"].map("{:.3f}".format),
                "RobustRealNVP": tab["RobustRealNVP"].map("{:.3f}".format),
                "Robust − Trim (mean ± std over seeds)": [
                    format_mean_std(a, b) for a, b in zip(tab["diff_mean"], tab["diff_std"], strict=True)
                ],
                "seeds Robust better": [
                    f"{a}/{b}" for a, b in zip(tab["seeds_robust_better"], tab["n_seeds"], strict=True)
                ],
            },
            index=tab.index,
        )
        cells.loc["**mean**"] = [
            f"{tab['TrimRealNVP'].mean():.3f}",
            f"{tab['RobustRealNVP'].mean():.3f}",
            f"{tab['diff_mean'].mean():+.3f}",
            f"{int((tab['diff_mean'] > 0).sum())}/{len(tab)} datasets",
        ]
        parts += [frame_to_markdown(cells, "dataset"), ""]
        if len(tab) >= 5 and (tab["diff_mean"] != 0).any():
            from scipy.stats import wilcoxon

            p = float(wilcoxon(tab["diff_mean"]).pvalue)
            parts += [f"Wilcoxon signed-rank test over the {len(tab)} per-dataset mean differences: p = {p:.3g}.", ""]
        else:
            parts += ["Too few datasets (< 5) for a signed-rank test.", ""]
    if notes:
        parts += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(parts)


def plot_ablation(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Scatter of per-dataset mean AUC: TrimRealNVP (x) vs RobustRealNVP (y), with the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tab = ablation_table(frame)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(tab["TrimRealNVP"], tab["RobustRealNVP"], s=20)
    for name, row in tab.iterrows():
        ax.annotate(
            str(name), (row["TrimRealNVP"], row["RobustRealNVP"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    lo = float(min(tab["TrimRealNVP"].min(), tab["RobustRealNVP"].min(), 0.5)) - 0.02
    ax.plot([lo, 1], [lo, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlim(lo, 1.0)
    ax.set_ylim(lo, 1.0)
    ax.set_xlabel("TrimRealNVP AUC (no spectral norm)")
    ax.set_ylabel("RobustRealNVP AUC (spectral norm)")
    ax.set_title("Spectral-normalization ablation (above the line: SN helps)", fontsize=9)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=120)
    plt.close(fig)
