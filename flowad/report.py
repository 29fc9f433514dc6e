"""A self-contained HTML report of a detector's scores on a dataset (plus the PNGs)."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from flowad.exceptions import InputError

__all__ = ["write_report"]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def write_report(
    det: Any,
    X: Any,
    out: str | os.PathLike[str],
    *,
    labels: np.ndarray | None = None,
    domains: np.ndarray | None = None,
    title: str = "flowad report",
) -> dict[str, Path]:
    """Score ``X`` with ``det`` and write ``out`` (HTML, images embedded) and PNGs beside it.

    Parameters
    ----------
    det : fitted flowad detector
    X : array-like of shape (n_samples, n_features)
    out : path-like
        The HTML file; PNGs are written next to it as ``<stem>_<plot>.png``.
    labels : ndarray of shape (n_samples,), optional
        1 = anomaly, 0 = normal; adds ROC and precision-recall curves with AUC / AP.
    domains : ndarray of shape (n_samples,), optional
        Each row's domain (multi-domain models): rows are scored with their domain and the
        per-domain score distributions are shown.

    Returns
    -------
    dict of str to Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    from flowad.viz import plot_roc, plot_score_histogram

    out = Path(out)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.dtype == bool:
            labels = labels.astype(int)
        if not np.issubdtype(labels.dtype, np.number) or not set(np.unique(labels).tolist()) <= {0, 1}:
            shown = np.unique(labels)[:5].tolist()
            raise InputError(f"Labels must be 0 (normal) or 1 (anomaly); got values such as {shown}.")
    if domains is None:
        scores = det.decision_function(X)
        threshold = det.threshold_ if not hasattr(det, "thresholds_") or len(det.domains_) > 1 else det.thresholds_[det.domains_[0]]
    else:
        domains = np.asarray(domains).astype(str)
        scores = np.empty(len(domains))
        Xa = np.asarray(X) if not hasattr(X, "iloc") else X
        for name in np.unique(domains):
            mask = domains == name
            scores[mask] = det.decision_function(Xa[mask], domain=name)
        threshold = None
    flagged = int((scores > threshold).sum()) if threshold is not None else None
    figures: dict[str, Any] = {}

    fig, ax = plt.subplots(figsize=(7, 4))
    plot_score_histogram(ax, scores, None if labels is None else np.asarray(labels), threshold, title="Anomaly scores")
    figures["histogram"] = fig
    if domains is not None:
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(np.unique(domains)) + 1.5))
        names = list(np.unique(domains))
        ax.boxplot([scores[domains == n] for n in names], orientation="horizontal", showfliers=True)
        ax.set_yticks(range(1, len(names) + 1), names)
        for i, n in enumerate(names, start=1):
            t = det.thresholds_.get(n) if hasattr(det, "thresholds_") else None
            if t is not None:
                ax.plot([t, t], [i - 0.4, i + 0.4], color="black", ls="--", lw=1.2)
        ax.set_xscale("asinh")
        ax.set(xlabel="anomaly score (dashed: the domain's threshold)", title="Scores per domain")
        figures["domains"] = fig
    metrics = ""
    if labels is not None:
        y = np.asarray(labels).astype(int)
        if len(np.unique(y)) == 2:
            fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
            plot_roc(a1, y, {type(det).__name__: scores}, title="ROC")
            prec, rec, _ = precision_recall_curve(y, scores)
            ap = average_precision_score(y, scores)
            a2.plot(rec, prec, lw=1.8, label=f"AP {ap:.3f}")
            a2.axhline(y.mean(), ls=":", color="grey", lw=1)
            a2.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.01))
            a2.legend(loc="upper right", fontsize=8)
            figures["curves"] = fig
            metrics = f"<li>ROC AUC <b>{roc_auc_score(y, scores):.4f}</b>, average precision <b>{ap:.4f}</b> ({int(y.sum())} labelled anomalies)</li>"
    written: dict[str, Path] = {}
    parts = []
    for name, fig in figures.items():
        data = _png(fig)
        plt.close(fig)
        png = out.with_name(f"{out.stem}_{name}.png")
        png.write_bytes(data)
        written[name] = png
        parts.append(f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}"></figure>')
    domain_line = f"<li>domains: {html.escape(', '.join(map(str, det.domains_)))}</li>" if hasattr(det, "domains_") else ""
    flagged_line = f"<li>{flagged} of {len(scores)} rows above the threshold {threshold:.4g}</li>" if flagged is not None else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
figure{{margin:1em 0}} img{{max-width:100%}} code{{background:#f4f4f4;padding:0 .3em}}</style></head>
<body><h1>{html.escape(title)}</h1>
<ul><li>model: <code>{html.escape(type(det).__name__)}</code>, {det.n_features_in_} features</li>
<li>{len(scores)} rows scored; anomaly score = negative log-likelihood (higher = more anomalous)</li>
{flagged_line}{domain_line}{metrics}</ul>
{''.join(parts)}
</body></html>
"""
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    written["html"] = out
    return written
