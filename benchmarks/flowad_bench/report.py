"""Tables and plots of benchmark results: mean ± std over seeds, average ranks, published numbers.

Published numbers are read through :mod:`flowad_bench.published` from
``benchmarks/flowad_bench/data/robustrealnvp_published.csv`` (the one place they are typed, with
their source) and always labelled "published" in the output.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from flowad_bench import published

__all__ = [
    "published_auc",
    "study_mean_datasets",
    "load_results",
    "mean_std",
    "average_ranks",
    "wins_ties_losses",
    "dataset_sources",
    "format_mean_std",
    "odds_markdown",
    "plot_odds",
    "frame_to_markdown",
]

#: Published column -> the method of ours it sits beside.
PUBLISHED_FOR = {"RobustRealNVP": "RobustRealNVP", "RealNVP": "RealNVP", "IForest": "IForest"}
_NUMERIC = ("auc", "ap", "fit_seconds", "score_seconds", "n_params", "seed")


def published_auc() -> pd.DataFrame:
    """The study's published mean test AUCs, indexed by dataset (columns: method names).

    Returns
    -------
    DataFrame
        Index ``dataset``; columns ``RobustRealNVP``, ``RealNVP``, ``IForest``.
    """
    return published.published_table(published.ROBUSTREALNVP).set_index("dataset").drop(columns=["in_study_mean"])


def study_mean_datasets() -> list[str]:
    """The datasets over which the study averages its published AUCs (its "mean of these 15")."""
    t = published.published_table(published.ROBUSTREALNVP)
    return t.loc[t["in_study_mean"] == 1, "dataset"].tolist()


def published_source() -> str:
    """The comment lines of the published-numbers file (its source), joined."""
    return published.published_source(published.ROBUSTREALNVP)


def load_results(csv_path: str | os.PathLike[str]) -> pd.DataFrame:
    """A result CSV as a DataFrame with numeric columns parsed."""
    frame = pd.read_csv(csv_path)
    for col in _NUMERIC:
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def mean_std(frame: pd.DataFrame, metric: str = "auc", by: tuple[str, ...] = ("dataset", "method")) -> pd.DataFrame:
    """Mean, std (ddof=1; 0 for one seed) and count of ``metric`` over seeds, per ``by`` group."""
    grouped = frame.groupby(list(by), sort=False)[metric]
    out = grouped.agg(["mean", "std", "count"])
    out["std"] = out["std"].fillna(0.0)
    return out


def average_ranks(means: pd.DataFrame) -> pd.Series:
    """Average rank of each column (method) over the rows (datasets); 1 = best (highest).

    Only rows where every column has a value are ranked; ties share the average rank.
    """
    complete = means.dropna(axis=0, how="any")
    if complete.empty:
        return pd.Series(np.nan, index=means.columns)
    return complete.rank(axis=1, ascending=False, method="average").mean(axis=0)


def wins_ties_losses(means: pd.DataFrame, reference: str, digits: int = 3) -> dict[str, str]:
    """``"W/T/L"`` of each column against column ``reference``, over the rows where both have a value.

    A win is a higher per-dataset mean, a tie the same value at ``digits`` decimals (as printed);
    the reference's own cell is "–".
    """
    out = {}
    for m in means.columns:
        if m == reference:
            out[m] = "–"
            continue
        both = means[[m, reference]].dropna()
        diff = (both[m].round(digits) - both[reference].round(digits)).to_numpy()
        out[m] = f"{int((diff > 0).sum())}/{int((diff == 0).sum())}/{int((diff < 0).sum())}"
    return out


def dataset_sources(frame: pd.DataFrame) -> dict[str, str]:
    """Dataset -> its ``source`` (data folder) when the rows record one, else {}."""
    if "source" not in frame:
        return {}
    src = frame[["dataset", "source"]].dropna()
    src = src[src["source"].astype(str).str.len() > 0]
    return dict(zip(src["dataset"], src["source"].astype(str), strict=True))


def format_mean_std(mean: float, std: float, digits: int = 3) -> str:
    """``"0.912 ± 0.011"``; ``"–"`` for a missing value."""
    if mean is None or not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def frame_to_markdown(frame: pd.DataFrame, index_name: str = "") -> str:
    """A DataFrame of strings as a GitHub markdown table (no extra dependency)."""
    cols = [index_name or (frame.index.name or ""), *map(str, frame.columns)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for idx, row in frame.iterrows():
        lines.append("| " + " | ".join([str(idx), *(str(v) for v in row.tolist())]) + " |")
    return "\n".join(lines)


def markdown_head(title: str, command: str = "") -> list[str]:
    """Opening lines of a results table: ``# title`` and, when given, the command that made it."""
    parts = [f"# {title}", ""]
    if command:
        parts += ["Command:", "", "```", command, "```", ""]
    return parts


def _method_order(frame: pd.DataFrame, methods: list[str] | None) -> list[str]:
    present = list(dict.fromkeys(frame["method"]))
    if methods is None:
        return present
    return [m for m in methods if m in present] + [m for m in present if m not in methods]


def _metric_table(
    frame: pd.DataFrame, metric: str, methods: list[str], with_published: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    stats = mean_std(frame, metric)
    datasets = list(dict.fromkeys(frame["dataset"]))
    means = stats["mean"].unstack("method").reindex(index=datasets, columns=methods)
    stds = stats["std"].unstack("method").reindex(index=datasets, columns=methods)
    cells = pd.DataFrame(index=datasets)
    sources = dataset_sources(frame)
    if sources:
        cells["source"] = [sources.get(d, "") for d in datasets]
    pub = published_auc() if with_published else None
    for m in methods:
        cells[m] = [format_mean_std(means.at[d, m], stds.at[d, m]) for d in datasets]
        if pub is not None and m in PUBLISHED_FOR.values():
            col = next(k for k, v in PUBLISHED_FOR.items() if v == m)
            cells[f"{m} (published)"] = [f"{pub.at[d, col]:.3f}" if d in pub.index else "–" for d in datasets]
    # Summary rows: mean over datasets (of the per-dataset means) and average rank.
    mean_row, rank_row = {}, {}
    ranks = average_ranks(means)
    complete = means.dropna(axis=0, how="any").index
    for m in methods:
        mean_row[m] = f"{means.loc[complete, m].mean():.3f}" if len(complete) else "–"
        rank_row[m] = f"{ranks[m]:.2f}" if np.isfinite(ranks[m]) else "–"
        if pub is not None and m in PUBLISHED_FOR.values():
            col = next(k for k, v in PUBLISHED_FOR.items() if v == m)
            have = [d for d in complete if d in pub.index]
            mean_row[f"{m} (published)"] = (
                f"{pub.loc[have, col].mean():.3f}" if have and len(have) == len(complete) else "–"
            )
            rank_row[f"{m} (published)"] = ""
    cells.loc[f"**mean {metric.upper()}** ({len(complete)} datasets)"] = pd.Series(mean_row)
    by_source = sorted(set(sources.get(d, "") for d in complete) - {""})
    if len(by_source) > 1:
        for src in by_source:
            rows = [d for d in complete if sources.get(d) == src]
            cells.loc[f"**mean {metric.upper()}, {src}** ({len(rows)} datasets)"] = pd.Series(
                {m: f"{means.loc[rows, m].mean():.3f}" for m in methods}
            )
    if len(complete) < len(datasets):
        # a method that failed somewhere: its own mean over the datasets where it ran, with the count
        cells.loc["**mean where the method ran** (datasets)"] = pd.Series(
            {m: f"{means[m].mean():.3f} ({int(means[m].notna().sum())})" if means[m].notna().any() else "–" for m in methods}
        )
    study = study_mean_datasets()
    if pub is not None and set(study) <= set(complete) and len(study) < len(complete):
        row = {m: f"{means.loc[study, m].mean():.3f}" for m in methods}
        for m in methods:
            if m in PUBLISHED_FOR.values():
                col = next(k for k, v in PUBLISHED_FOR.items() if v == m)
                row[f"{m} (published)"] = f"{pub.loc[study, col].mean():.3f}"
        cells.loc[f"**mean {metric.upper()}, the study's {len(study)}**"] = pd.Series(row)
    cells.loc["**average rank**"] = pd.Series(rank_row)
    if "IForest" in methods and len(methods) > 1:
        cells.loc[f"**wins/ties/losses vs IForest** ({len(complete)} datasets)"] = pd.Series(
            wins_ties_losses(means.loc[complete], "IForest")
        )
    cells = cells.fillna("")
    return cells, means


def odds_markdown(
    frame: pd.DataFrame,
    *,
    methods: list[str] | None = None,
    title: str = "ODDS benchmark",
    command: str = "",
    notes: list[str] | None = None,
) -> str:
    """The markdown report of an ODDS run: AUC and AP tables, ranks, times, published AUCs.

    Parameters
    ----------
    frame : DataFrame
        Result rows (``dataset``, ``method``, ``seed``, ``auc``, ``ap``, ``fit_seconds``, ...).
    methods : list of str, optional
        Column order.
    title, command : str
        Heading and the command that produced the results.
    notes : list of str, optional
        Extra lines (skipped files, failures, partial-run warnings).
    """
    methods = _method_order(frame, methods)
    seeds = sorted(frame["seed"].dropna().unique().astype(int).tolist())
    auc_cells, auc_means = _metric_table(frame, "auc", methods, with_published=True)
    n_complete = len(auc_means.dropna(axis=0, how="any"))
    ap_cells, _ = _metric_table(frame, "ap", methods, with_published=False)
    times = frame.groupby("method")[["fit_seconds", "score_seconds"]].sum().reindex(methods)
    params = frame.groupby(["dataset", "method"])["n_params"].first().unstack("method").reindex(columns=methods)
    time_cells = pd.DataFrame(
        {
            "total fit s": times["fit_seconds"].map(lambda v: f"{v:.1f}"),
            "total score s": times["score_seconds"].map(lambda v: f"{v:.2f}"),
            "median n params": [
                f"{int(params[m].median())}" if m in params and params[m].notna().any() else "–" for m in methods
            ],
        },
        index=methods,
    )
    parts = markdown_head(title, command)
    parts += [
        f"Protocol: stratified random 60/40 split per seed (seeds {seeds}); unlabeled training split with its "
        "anomalies; standardization from training statistics; test ROC AUC / average precision, mean ± std over seeds. "
        "Average rank: 1 = best, over the datasets where every method has a result.",
        "",
        f"{len(auc_means)} datasets × {len(seeds)} seeds × {len(methods)} methods; {n_complete} datasets where every "
        "method has a result (the mean, rank and win rows use those; a method that could not run on a dataset "
        "shows \"–\" there and the task is listed under Notes).",
        "",
        "Columns marked **(published)** are the numbers the RobustRealNVP study reports, not results of this run. "
        f"Source: {published_source()}",
        "",
        "## ROC AUC",
        "",
        frame_to_markdown(auc_cells, "dataset"),
        "",
        "## Average precision",
        "",
        frame_to_markdown(ap_cells, "dataset"),
        "",
        "## Time and size (sums over all rows of this table)",
        "",
        frame_to_markdown(time_cells, "method"),
        "",
    ]
    if notes:
        parts += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(parts)


def plot_odds(
    frame: pd.DataFrame, path: str | os.PathLike[str], *, methods: list[str] | None = None, title: str = ""
) -> None:
    """Dot plot of mean test AUC per dataset and method, with the published AUCs as open markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = _method_order(frame, methods)
    stats = mean_std(frame, "auc")
    datasets = list(dict.fromkeys(frame["dataset"]))
    pub = published_auc()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(datasets) + 3) + 2.5, 4.8))
    tab20 = plt.get_cmap("tab20")
    palette = [tab20(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]  # dark shades first: distinct colours
    x = np.arange(len(datasets))
    width = 0.8 / max(1, len(methods))
    for j, m in enumerate(methods):
        mean = [stats["mean"].get((d, m), np.nan) for d in datasets]
        std = [stats["std"].get((d, m), np.nan) for d in datasets]
        off = x - 0.4 + width * (j + 0.5)
        ax.errorbar(off, mean, yerr=std, fmt="o", ms=4, color=palette[j % 20], label=m, capsize=2)
        if m in PUBLISHED_FOR.values():
            col = next(k for k, v in PUBLISHED_FOR.items() if v == m)
            pv = [pub.at[d, col] if d in pub.index else np.nan for d in datasets]
            ax.plot(off, pv, marker="D", ls="none", mfc="none", mec=palette[j % 20], ms=6, label=f"{m} (published)")
    ax.set_xticks(x)
    sources = dataset_sources(frame)
    ax.set_xticklabels([f"{d} [{sources[d]}]" if d in sources else d for d in datasets], rotation=45, ha="right")
    ax.set_ylabel("test ROC AUC (mean ± std over seeds)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_title(title or "ODDS benchmark")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=120)
    plt.close(fig)
