"""Plots people would rather look at than read: ROC curves and score histograms.

Pure numpy + matplotlib (Agg backend); no model code. Each function draws on a given axes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["plot_roc", "plot_score_histogram"]


def plot_roc(ax: Axes, y_true: np.ndarray, scores: Mapping[str, np.ndarray], title: str = "") -> None:
    """ROC curve of every method's anomaly scores (higher = more anomalous), AUC in the legend."""
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y_true, s)
        ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {roc_auc_score(y_true, s):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.legend(loc="lower right", fontsize=8)


def plot_score_histogram(
    ax: Axes,
    scores: np.ndarray,
    y_true: np.ndarray | None = None,
    threshold: float | None = None,
    title: str = "",
    bins: int = 60,
) -> None:
    """Histogram of anomaly scores, split by label when given, with the decision threshold.

    Negative log-likelihoods of anomalies can be orders of magnitude above those of normal
    data, so the x axis is symmetric-logarithmic around the median score.
    """
    center = float(np.median(scores))
    width = float(np.subtract(*np.percentile(scores, [75, 25]))) or 1.0
    u = np.arcsinh((scores - center) / width)  # ~linear near the bulk, logarithmic in the tails
    edges = center + width * np.sinh(np.linspace(u.min(), u.max() + 1e-9, bins + 1))
    if y_true is None:
        ax.hist(scores, bins=edges, color="tab:blue", alpha=0.8, label="all")
    else:
        ax.hist(scores[y_true == 0], bins=edges, color="tab:blue", alpha=0.6, label="normal")
        ax.hist(scores[y_true == 1], bins=edges, color="tab:red", alpha=0.6, label="anomaly")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1.2, label="threshold")
    ax.set_xscale("asinh", linear_width=width)
    ax.set_yscale("log", nonpositive="clip")
    ax.set_xlim(edges[0], edges[-1])
    ax.set(xlabel="anomaly score (negative log-likelihood)", ylabel="count", title=title)
    ax.legend(fontsize=8)
