"""The two-moons study: how anomalies in the training data shape each model's density.

Normal data lie on two moons; a fraction ``eps`` of the training rows are anomalies, either
uniform over the box around the moons or a tight Gaussian cluster off the moons. RealNVP,
TrimRealNVP and RobustRealNVP are fitted on the same contaminated data; each is scored by
ROC AUC on a clean held-out test set (fresh normal rows plus fresh anomalies of the same
kind), over several seeds, and the learned densities of the first seed are drawn as heat maps
(one PNG per setting, the three models side by side, training points on top).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from flowad.datasets.synthetic import MOONS_NOISE, moons_box, two_moons
from flowad.detectors import RealNVP, RobustRealNVP, TrimRealNVP
from flowad.detectors._base import BaseFlowDetector
from flowad.exceptions import InputError

__all__ = ["TwoMoonsConfig", "MODELS", "SETTINGS", "run_two_moons", "summarize", "to_markdown", "plot_densities"]

#: Model name -> detector class, in the order of the figures and tables.
MODELS: dict[str, type[BaseFlowDetector]] = {
    "RealNVP": RealNVP,
    "TrimRealNVP": TrimRealNVP,
    "RobustRealNVP": RobustRealNVP,
}
#: Kinds of anomalies, one PNG each.
SETTINGS: tuple[str, ...] = ("uniform", "clustered")

# Seed offsets so that training, test-normal and test-anomaly draws never share a stream.
_TEST_NORMAL_OFFSET = 10_000
_TEST_ANOMALY_OFFSET = 20_000


@dataclasses.dataclass(frozen=True)
class TwoMoonsConfig:
    """Settings of :func:`run_two_moons`.

    Attributes
    ----------
    seeds : int
        Number of seeds ``0..seeds-1``; each seed redraws the data and re-initialises the models.
    epochs : int
        Training epochs of every model.
    n_train : int
        Training rows (normal + anomalies).
    contamination : float
        Fraction ``eps`` of anomalies in the training data; also passed to the detectors as
        ``contamination`` (so TrimRealNVP and RobustRealNVP trim this fraction).
    n_test_normal, n_test_anomalies : int
        Size of the held-out test set.
    noise : float
        Noise of the moons (``sklearn.datasets.make_moons(noise=...)``).
    grid : int
        Heat-map resolution (grid points per axis).
    model_params : dict
        Extra hyper-parameters given to every detector (e.g. ``{"n_couplings": 4}``).
    """

    seeds: int = 5
    epochs: int = 100
    n_train: int = 1000
    contamination: float = 0.05
    n_test_normal: int = 1000
    n_test_anomalies: int = 100
    noise: float = MOONS_NOISE
    grid: int = 200
    model_params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def quick(cls, **overrides: Any) -> TwoMoonsConfig:
        """A seconds-long configuration for smoke tests (1 seed, 5 epochs, small data, coarse grid)."""
        base = {"seeds": 1, "epochs": 5, "n_train": 300, "n_test_normal": 200, "n_test_anomalies": 40, "grid": 60}
        base.update(overrides)
        return cls(**base)

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise InputError(f"seeds must be >= 1, got {self.seeds}.")
        if self.epochs < 1:
            raise InputError(f"epochs must be >= 1, got {self.epochs}.")
        if not 0.0 < self.contamination < 0.5:
            raise InputError(f"contamination must be in (0, 0.5), got {self.contamination}.")
        if self.n_test_normal < 1 or self.n_test_anomalies < 1:
            raise InputError(
                f"n_test_normal and n_test_anomalies must be >= 1, got {self.n_test_normal}, {self.n_test_anomalies}."
            )
        if self.grid < 10:
            raise InputError(f"grid must be >= 10, got {self.grid}.")


def _anomalies_only(kind: str, n: int, noise: float, seed: int) -> np.ndarray:
    """``n`` fresh anomalies of ``kind`` (drawn through the same generator as the training ones)."""
    # contamination just below 1 so that round(c * total) == n exactly, with one normal row to drop.
    total = n + 1
    X, y = two_moons(total, contamination=n / total, anomalies=kind, noise=noise, random_state=seed)
    return X[y == 1]


def make_split(kind: str, seed: int, config: TwoMoonsConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training set (contaminated) and clean test set for one setting and seed.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarrays
        ``X_test`` holds ``n_test_normal`` fresh normal rows followed by ``n_test_anomalies``
        fresh anomalies of the same ``kind``.
    """
    X_train, y_train = two_moons(
        config.n_train, contamination=config.contamination, anomalies=kind, noise=config.noise, random_state=seed
    )
    X_norm, _ = two_moons(config.n_test_normal, contamination=0.0, noise=config.noise, random_state=seed + _TEST_NORMAL_OFFSET)
    X_anom = _anomalies_only(kind, config.n_test_anomalies, config.noise, seed + _TEST_ANOMALY_OFFSET)
    X_test = np.vstack([X_norm, X_anom])
    y_test = np.concatenate([np.zeros(len(X_norm), dtype=np.int64), np.ones(len(X_anom), dtype=np.int64)])
    return X_train, y_train, X_test, y_test


def _grid(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    (x0, x1), (y0, y1) = moons_box()
    gx = np.linspace(x0, x1, n)
    gy = np.linspace(y0, y1, n)
    xx, yy = np.meshgrid(gx, gy)
    return gx, gy, np.column_stack([xx.ravel(), yy.ravel()])


def plot_densities(
    path: str | Path,
    kind: str,
    fitted: dict[str, BaseFlowDetector],
    X_train: np.ndarray,
    y_train: np.ndarray,
    aucs: dict[str, float],
    *,
    grid: int = 200,
    log_range: float = 10.0,
) -> Path:
    """Write one PNG with the learned density of each fitted model on the moons' box.

    Each panel shows ``log p(x)`` clipped to ``[max - log_range, max]`` (so both a sharp peak
    and the moons stay visible), the normal training rows (white dots) and the training
    anomalies (red crosses).

    Parameters
    ----------
    path : str or Path
        Output file (``.png``).
    kind : str
        Setting name, for the title.
    fitted : dict of str -> fitted detector
        Models to draw, in panel order.
    X_train, y_train : ndarrays
        Training rows and labels (1 = anomaly).
    aucs : dict of str -> float
        Test ROC AUC of each model (shown in the panel titles).
    grid : int, default=200
        Grid points per axis.
    log_range : float, default=10.0
        Nats of log-density shown below each panel's maximum.

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gx, gy, pts = _grid(grid)
    fig = Figure(figsize=(5.0 * len(fitted), 3.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(fitted), squeeze=False)[0]
    normal, anom = X_train[y_train == 0], X_train[y_train == 1]
    for ax, (name, det) in zip(axes, fitted.items(), strict=True):
        logp = det.score_samples(pts).reshape(grid, grid)
        top = float(logp.max())
        mesh = ax.pcolormesh(gx, gy, np.clip(logp, top - log_range, top), cmap="viridis", shading="auto")
        ax.scatter(normal[:, 0], normal[:, 1], s=2, c="white", alpha=0.5, linewidths=0, label="normal (train)")
        ax.scatter(anom[:, 0], anom[:, 1], s=9, facecolors="none", edgecolors="red", linewidths=0.6, alpha=0.8, label="anomaly (train)")
        ax.set_title(f"{name}  (test ROC AUC {aucs[name]:.3f})", fontsize=11)
        ax.set_xlim(gx[0], gx[-1])
        ax.set_ylim(gy[0], gy[-1])
        ax.set_aspect("equal")
        fig.colorbar(mesh, ax=ax, shrink=0.8, label="log density (clipped)")
    axes[0].legend(loc="lower left", fontsize=8, framealpha=0.8)
    eps = len(anom) / len(X_train)
    fig.suptitle(f"Two moons, {kind} anomalies (eps = {eps:.2f}, n = {len(X_train)}): learned log-densities", fontsize=12)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def run_two_moons(
    out_dir: str | Path | None,
    config: TwoMoonsConfig | None = None,
    *,
    settings: Sequence[str] = SETTINGS,
    models: Sequence[str] = tuple(MODELS),
    variants: Sequence[tuple[str, str, tuple[tuple[str, Any], ...]]] = (),
) -> pd.DataFrame:
    """Run the study; return one row per (setting, model, seed) and write the heat maps.

    Parameters
    ----------
    out_dir : str, Path or None
        Folder that receives ``two_moons_<setting>.png`` (first seed). None draws nothing.
    config : TwoMoonsConfig or None, default=None
        Study settings; None means ``TwoMoonsConfig()``.
    settings : sequence of {"uniform", "clustered"}, default=SETTINGS
        Anomaly kinds to run.
    models : sequence of str, default=all of MODELS
        Model names to compare.
    variants : sequence of (label, model, overrides)
        Further models, after ``models``: ``model`` (a name of :data:`MODELS`) with the
        constructor arguments ``overrides``, reported as ``label``
        (:func:`flowad_bench.methods.parse_variant` makes them from ``NAME:key=value`` specs).

    Returns
    -------
    DataFrame
        Columns ``setting``, ``model``, ``seed``, ``auc`` (test ROC AUC), ``train_auc``
        (ROC AUC of the training scores against the training labels) and ``fit_seconds``.
    """
    import time

    config = TwoMoonsConfig() if config is None else config
    unknown = [m for m in [*models, *(base for _, base, _ in variants)] if m not in MODELS]
    if unknown:
        raise InputError(f"models must be among {list(MODELS)}, got unknown {unknown}.")
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise InputError(f"settings must be among {list(SETTINGS)}, got unknown {bad}.")
    runs = [(name, MODELS[name], {}) for name in models] + [(label, MODELS[base], dict(ov)) for label, base, ov in variants]
    labels = [label for label, _, _ in runs]
    if len(set(labels)) != len(labels):
        raise InputError(f"every model and variant needs its own label, got {labels}.")
    rows: list[dict[str, Any]] = []
    for kind in settings:
        for seed in range(config.seeds):
            X_train, y_train, X_test, y_test = make_split(kind, seed, config)
            fitted: dict[str, BaseFlowDetector] = {}
            aucs: dict[str, float] = {}
            for name, cls, overrides in runs:
                det = cls(
                    **{
                        "contamination": config.contamination,
                        "epochs": config.epochs,
                        "device": "cpu",
                        "random_state": seed,
                        **config.model_params,
                        **overrides,
                    }
                )
                start = time.perf_counter()
                det.fit(X_train)
                elapsed = time.perf_counter() - start
                auc = float(roc_auc_score(y_test, det.decision_function(X_test)))
                train_auc = float(roc_auc_score(y_train, det.decision_scores_))
                rows.append(
                    {"setting": kind, "model": name, "seed": seed, "auc": auc, "train_auc": train_auc, "fit_seconds": elapsed}
                )
                fitted[name], aucs[name] = det, auc
            if out_dir is not None and seed == 0:
                plot_densities(Path(out_dir) / f"two_moons_{kind}.png", kind, fitted, X_train, y_train, aucs, grid=config.grid)
    return pd.DataFrame(rows)


def summarize(results: pd.DataFrame, column: str = "auc") -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; 0 for one seed) of ``column`` per setting and model.

    Returns
    -------
    DataFrame
        Index: model (in the order of ``results``: :data:`MODELS` order, then variants); columns:
        ``(setting, "mean")``, ``(setting, "std")``.
    """
    g = results.groupby(["setting", "model"], sort=False)[column]
    stats = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "n": g.size()})
    table = stats.unstack("setting")
    table.columns = table.columns.swaplevel(0, 1)
    order_m = list(results["model"].unique())
    order_s = [s for s in SETTINGS if s in results["setting"].unique()]
    return table.loc[order_m, [(s, c) for s in order_s for c in ("mean", "std", "n")]]


def to_markdown(summary: pd.DataFrame, digits: int = 3) -> str:
    """Format :func:`summarize`'s table as a markdown table of ``mean ± std`` cells."""
    settings = list(dict.fromkeys(s for s, _ in summary.columns))
    n = {s: int(summary[(s, "n")].max()) for s in settings}
    head = "| model | " + " | ".join(f"{s} (n={n[s]} seeds)" for s in settings) + " |"
    sep = "|---|" + "---|" * len(settings)
    lines = [head, sep]
    for model, row in summary.iterrows():
        cells = []
        for s in settings:
            mean, std = float(row[(s, "mean")]), float(row[(s, "std")])
            cells.append("n/a" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
