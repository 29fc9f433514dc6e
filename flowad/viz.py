"""Plots people would rather look at than read: ROC curves and score histograms.

Pure numpy + matplotlib (Agg backend); no model code. Each function draws on a given axes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["asinh_ticks", "plot_roc", "plot_score_histogram"]


def plot_roc(ax: Axes, y_true: np.ndarray, scores: Mapping[str, np.ndarray], title: str = "") -> None:
    """ROC curve of every method's anomaly scores (higher = more anomalous), AUC in the legend."""
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y_true, s)
        ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {roc_auc_score(y_true, s):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.legend(loc="lower right", fontsize=8)


def _nice(x: float) -> float:
    """``x`` rounded to two significant digits (tick values people can read)."""
    if x == 0 or not np.isfinite(x):
        return 0.0
    return float(f"{x:.2g}")


def asinh_ticks(lo: float, hi: float, center: float, width: float, n: int = 6) -> list[float]:
    """About ``n`` readable tick values in ``[lo, hi]``, evenly spaced on the axis
    ``u = arcsinh((x - center) / width)`` and rounded to two significant digits.

    Ticks closer than a third of the even spacing (after rounding) are dropped, so labels
    never overlap however heavy the tail.

    >>> asinh_ticks(0.0, 1000.0, 5.0, 2.0, n=5)
    [0.0, 6.0, 19.0, 120.0, 1000.0]
    """
    u0, u1 = (float(np.arcsinh((v - center) / width)) for v in (lo, hi))
    if not u1 > u0:
        return [_nice(lo)]
    step = (u1 - u0) / max(n - 1, 1)
    tol = 1e-9 * (abs(lo) + abs(hi) + width)
    ticks: list[float] = []
    last_u = -np.inf
    for u in np.linspace(u0, u1, n):
        raw = center + width * float(np.sinh(u))
        x = _nice(raw)
        if not lo - tol <= x <= hi + tol:  # rounded out of the axis (an end): one more digit
            x = float(f"{raw:.3g}")
        x = 0.0 if abs(x) <= tol else x
        ux = float(np.arcsinh((x - center) / width))
        if lo - tol <= x <= hi + tol and ux - last_u >= step / 3:
            ticks.append(x)
            last_u = ux
    return ticks


def plot_score_histogram(
    ax: Axes,
    scores: np.ndarray,
    y_true: np.ndarray | None = None,
    threshold: float | None = None,
    title: str = "",
    bins: int = 60,
    xlabel: str = "anomaly score (negative log-likelihood)",
) -> None:
    """Histogram of anomaly scores, split by label when given, with the decision threshold.

    Negative log-likelihoods of anomalies can be orders of magnitude above those of normal
    data, so the x axis is ``arcsinh((score - median) / IQR)``: linear around the bulk of the
    scores, logarithmic in the tails. Ticks are a handful of rounded values spread evenly on
    that axis (:func:`asinh_ticks`), so their labels do not overlap.
    """
    from matplotlib.ticker import FixedLocator, NullLocator

    scores = np.asarray(scores, dtype=np.float64)
    center = float(np.median(scores))
    width = float(np.subtract(*np.percentile(scores, [75, 25]))) or 1.0
    u = np.arcsinh((scores - center) / width)  # ~linear near the bulk, logarithmic in the tails
    u_lo, u_hi = float(u.min()), float(u.max())
    if threshold is not None and np.isfinite(threshold):  # keep the threshold line in view
        u_t = float(np.arcsinh((threshold - center) / width))
        u_lo, u_hi = min(u_lo, u_t - 0.05), max(u_hi, u_t + 0.05)
    edges = center + width * np.sinh(np.linspace(u_lo, u_hi + 1e-9, bins + 1))
    if y_true is None:
        ax.hist(scores, bins=edges, color="tab:blue", alpha=0.8, label="all")
    else:
        y_true = np.asarray(y_true)
        ax.hist(scores[y_true == 0], bins=edges, color="tab:blue", alpha=0.6, label="normal")
        ax.hist(scores[y_true == 1], bins=edges, color="tab:red", alpha=0.6, label="anomaly")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1.2, label="threshold")

    def forward(x: np.ndarray) -> np.ndarray:
        return np.arcsinh((np.asarray(x, dtype=np.float64) - center) / width)

    def inverse(v: np.ndarray) -> np.ndarray:
        return center + width * np.sinh(np.asarray(v, dtype=np.float64))

    ax.set_xscale("function", functions=(forward, inverse))
    ax.set_yscale("log", nonpositive="clip")
    ax.set_xlim(edges[0], edges[-1])
    ax.xaxis.set_major_locator(FixedLocator(asinh_ticks(edges[0], edges[-1], center, width)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:g}")
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    ax.legend(fontsize=8)
