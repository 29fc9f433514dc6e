"""The main job (``flowad demo``): what flowad is for, on data that ships with the package.

Two parts, each next to the baseline a user would try first, reported whatever the outcome:

1. **Contaminated training** (:func:`contaminated_training`). RealNVP, TrimRealNVP and
   RobustRealNVP (and Isolation Forest) are fitted on training data with anomalies mixed in:
   two moons with a tight *cluster* of anomalies (``flowad.datasets.synthetic.two_moons``),
   and the shipped ODDS thyroid data with planted contamination (training anomalies copied
   with a small jitter up to a fraction ``thyroid_contamination`` of the training rows).
   Scored by ROC AUC on a clean held-out test set.
2. **Domain shift** (:func:`domain_shift`). Several "sites" are made from one dataset by a
   fixed per-site affine map (per-feature gain and offset, the way sensor calibrations
   differ between sites) plus a little noise. An :class:`~flowad.AdaFlow` is fitted on the
   source sites; a new site is then adapted with :meth:`~flowad.AdaFlow.adapt` on a few of its
   normal rows (forward passes only, timed). Compared on the new site's test rows: the
   unadapted detector (a source site's statistics), the adapted one, and the baselines fitted
   on the same adaptation rows (a Ledoit-Wolf Gaussian, i.e. Mahalanobis distance, and
   Isolation Forest).

:func:`run_demo` runs both, writes ``results.md`` (one table per part, the command at the top),
PNG pictures (log-density maps, score histograms, ROC curves) and the fitted RobustRealNVP and
AdaFlow model files, and returns the results. Everything is seeded by ``DemoConfig.seed``.
matplotlib (the ``plots`` extra) is needed only to draw.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from flowad.datasets import load_example
from flowad.datasets.synthetic import moons_box, two_moons
from flowad.detectors import AdaFlow, RealNVP, RobustRealNVP, TrimRealNVP
from flowad.exceptions import FlowadError, InputError

__all__ = [
    "DemoConfig",
    "ContaminationResult",
    "ShiftResult",
    "DemoResult",
    "contaminated_training",
    "domain_shift",
    "adapt_timed",
    "site_map",
    "run_demo",
    "require_matplotlib",
    "MissingExtraError",
    "verdict",
]

#: Flow detectors of part 1, in table order.
FLOWS = {"RealNVP": RealNVP, "TrimRealNVP": TrimRealNVP, "RobustRealNVP": RobustRealNVP}
# Seed offsets so that training, test and site draws never share a stream.
_TEST_NORMAL, _TEST_ANOMALY, _SITE = 10_000, 20_000, 30_000


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo (defaults: about two minutes on a 2-core CPU).

    Attributes
    ----------
    seed : int
        Seed of every draw and every model.
    epochs : int
        Training epochs of the part-1 flows.
    n_train, contamination : int, float
        Two-moons training rows and their fraction of clustered anomalies (also the
        detectors' ``contamination``, so the trimmed flows trim that fraction).
    n_test_normal, n_test_anomalies : int
        Clean two-moons test set.
    thyroid : bool
        Also run part 1 on thyroid with planted contamination.
    thyroid_contamination : float
        Fraction of the thyroid training rows that are (planted) anomalies.
    shift_datasets : sequence of {"two_moons", "thyroid"}
        Datasets of part 2.
    n_sites : int
        Source sites AdaFlow is fitted on (the new site is one more).
    rows_per_site : int
        Normal rows per two-moons site (thyroid's normal rows are split evenly instead).
    n_adapt : int
        Normal rows of the new site given to ``adapt`` and to the baselines (the headline).
    adapt_sizes : sequence of int
        Further adaptation sizes reported in a second table.
    ada_epochs : int
        Training epochs of AdaFlow.
    ada_couplings : dict
        AdaFlow ``n_couplings`` per part-2 dataset (couplings give the moons their shape).
    grid : int
        Grid points per axis of the density maps.
    threads : int
        torch threads while the demo runs (restored afterwards). The models are small: one
        thread is as fast as several on an idle machine and much faster on a busy one.
    """

    seed: int = 0
    epochs: int = 100
    n_train: int = 1000
    contamination: float = 0.05
    n_test_normal: int = 1000
    n_test_anomalies: int = 100
    thyroid: bool = True
    thyroid_contamination: float = 0.10
    shift_datasets: tuple[str, ...] = ("two_moons", "thyroid")
    n_sites: int = 4
    rows_per_site: int = 500
    n_adapt: int = 50
    adapt_sizes: tuple[int, ...] = (30, 200)
    ada_epochs: int = 100
    ada_couplings: dict[str, int] = dataclasses.field(default_factory=lambda: {"two_moons": 4, "thyroid": 0})
    grid: int = 150
    threads: int = 1

    @classmethod
    def quick(cls, **overrides: Any) -> DemoConfig:
        """Seconds-long settings for tests: tiny data, 2 epochs, a coarse grid."""
        base: dict[str, Any] = {
            "epochs": 2,
            "n_train": 200,
            "n_test_normal": 100,
            "n_test_anomalies": 20,
            "rows_per_site": 120,
            "n_adapt": 40,
            "adapt_sizes": (30,),
            "ada_epochs": 2,
            "grid": 30,
        }
        base.update(overrides)
        return cls(**base)

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "an int >= 1"),
            ("ada_epochs", self.ada_epochs >= 1, "an int >= 1"),
            ("contamination", 0.0 < self.contamination < 0.5, "a float in (0, 0.5)"),
            ("thyroid_contamination", 0.0 < self.thyroid_contamination < 0.5, "a float in (0, 0.5)"),
            ("n_sites", self.n_sites >= 1, "an int >= 1"),
            ("n_adapt", self.n_adapt >= 2, "an int >= 2"),
            ("grid", self.grid >= 10, "an int >= 10"),
            ("threads", self.threads >= 1, "an int >= 1"),
            ("shift_datasets", set(self.shift_datasets) <= {"two_moons", "thyroid"}, 'a subset of ("two_moons", "thyroid")'),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(f"{name} must be {expected}, got {getattr(self, name)!r}.")


# --------------------------------------------------------------------------------- results
@dataclasses.dataclass
class ContaminationResult:
    """Part 1 on one dataset: rows ``(method, roc_auc, ap, fit_seconds)`` and what to draw."""

    dataset: str
    description: str
    rows: list[tuple[str, float, float, float]]
    models: dict[str, Any]
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    scores: dict[str, np.ndarray]

    def winner(self) -> str:
        return verdict(self.rows)


@dataclasses.dataclass
class ShiftResult:
    """Part 2 on one dataset.

    ``rows`` are ``(method, roc_auc, ap, seconds)`` at ``n_adapt`` rows (seconds: adaptation or
    baseline fit); ``by_size`` maps each adaptation size to ``{method: roc_auc}``;
    ``unadapted`` maps every source site to the unadapted AUC on the new site.
    """

    dataset: str
    description: str
    n_adapt: int
    rows: list[tuple[str, float, float, float]]
    by_size: dict[int, dict[str, float]]
    unadapted: dict[str, float]
    adapt_seconds: float
    score_seconds: float
    model: AdaFlow
    X_adapt: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_source: np.ndarray
    scores: dict[str, np.ndarray]
    thresholds: dict[str, float]

    def winner(self) -> str:
        return verdict(self.rows)


@dataclasses.dataclass
class DemoResult:
    """Everything :func:`run_demo` computed and wrote."""

    config: DemoConfig
    command: str
    contamination: list[ContaminationResult]
    shift: list[ShiftResult]
    files: list[Path]
    seconds: float

    def summary(self) -> list[str]:
        """Plain-language lines: who won each part."""
        lines = []
        for r in self.contamination:
            lines.append(f"Contaminated training, {r.dataset}: {r.winner()}; test ROC AUC {_aucs(r.rows)}.")
        for s in self.shift:
            lines.append(
                f"Domain shift, {s.dataset} (new site, {s.n_adapt} adaptation rows): {s.winner()}; ROC AUC "
                f"{_aucs(s.rows)}. AdaFlow.adapt took {1000 * s.adapt_seconds:.1f} ms."
            )
        return lines


#: ROC AUC differences below this are reported as ties (one seed; see the results.md note).
TIE = 0.01


def verdict(rows: Sequence[tuple[str, float, float, float]]) -> str:
    """``"X wins"``, or ``"X and Y tie"`` when the runner-up is within :data:`TIE` ROC AUC."""
    ranked = sorted(rows, key=lambda r: -r[1])
    tied = [m for m, auc, _, _ in ranked if ranked[0][1] - auc < TIE]
    if len(tied) == 1:
        return f"{tied[0]} wins"
    return f"{', '.join(tied[:-1])} and {tied[-1]} tie (within {TIE} ROC AUC; {tied[0]} highest)"


def _aucs(rows: Sequence[tuple[str, float, float, float]]) -> str:
    return ", ".join(f"{m} {auc:.3f}" for m, auc, _, _ in sorted(rows, key=lambda r: -r[1]))


# --------------------------------------------------------------------------------- helpers
class MissingExtraError(FlowadError, ImportError):
    """An optional dependency (an extra of the flowad package) is not installed."""


def require_matplotlib() -> Any:
    """Import matplotlib's object-oriented API, or say how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError(
            'The demo draws its pictures with matplotlib, which is not installed: pip install "flowad[plots]"'
        ) from exc
    return Figure


def _auc_ap(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def _moons_anomalies(kind: str, n: int, seed: int) -> np.ndarray:
    """``n`` fresh anomalies of ``kind`` from the two-moons generator."""
    X, y = two_moons(n + 1, contamination=n / (n + 1), anomalies=kind, random_state=seed)
    return X[y == 1]


def _iforest_scores(X_fit: np.ndarray, X: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    forest = IsolationForest(random_state=seed).fit(X_fit)
    return -forest.score_samples(X), time.perf_counter() - t0


# --------------------------------------------------------------------------------- part 1
def _fit_flows(
    dataset: str, description: str, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
    contamination: float, config: DemoConfig, progress: Callable[[str], None],
) -> ContaminationResult:
    rows, models, scores = [], {}, {}
    for name, cls in FLOWS.items():
        t0 = time.perf_counter()
        det = cls(contamination=contamination, epochs=config.epochs, device="cpu", random_state=config.seed).fit(X_train)
        fit_s = time.perf_counter() - t0
        scores[name] = det.decision_function(X_test)
        models[name] = det
        rows.append((name, *_auc_ap(y_test, scores[name]), fit_s))
        progress(f"  {dataset:<10} {name:<16} ROC AUC {rows[-1][1]:.3f}   fit {fit_s:5.1f} s")
    scores["IsolationForest"], fit_s = _iforest_scores(X_train, X_test, config.seed)
    rows.append(("IsolationForest", *_auc_ap(y_test, scores["IsolationForest"]), fit_s))
    progress(f"  {dataset:<10} {'IsolationForest':<16} ROC AUC {rows[-1][1]:.3f}   fit {fit_s:5.1f} s")
    return ContaminationResult(dataset, description, rows, models, X_train, y_train, X_test, y_test, scores)


def contaminated_training(config: DemoConfig, progress: Callable[[str], None] = lambda _: None) -> list[ContaminationResult]:
    """Part 1: flows fitted on contaminated training data, scored on a clean test set."""
    seed, eps = config.seed, config.contamination
    X_train, y_train = two_moons(config.n_train, contamination=eps, anomalies="clustered", random_state=seed)
    X_norm, _ = two_moons(config.n_test_normal, contamination=0.0, random_state=seed + _TEST_NORMAL)
    X_anom = _moons_anomalies("clustered", config.n_test_anomalies, seed + _TEST_ANOMALY)
    X_test = np.vstack([X_norm, X_anom])
    y_test = np.r_[np.zeros(len(X_norm), dtype=np.int64), np.ones(len(X_anom), dtype=np.int64)]
    desc = (
        f"two moons (flowad.datasets.synthetic.two_moons, seed {seed}): {config.n_train} training rows of which "
        f"{int(y_train.sum())} ({eps:.0%}) are a tight cluster of anomalies at (1.6, 1.0); clean test set of "
        f"{len(X_norm)} fresh normal rows and {len(X_anom)} fresh anomalies of the same cluster"
    )
    results = [_fit_flows("two_moons", desc, X_train, y_train, X_test, y_test, eps, config, progress)]
    if config.thyroid:
        X, y = load_example("thyroid")
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.4, stratify=y, random_state=seed)
        rng = np.random.default_rng(seed)
        normal, anomalies = X_tr[y_tr == 0], X_tr[y_tr == 1]
        eps_t = config.thyroid_contamination
        k = int(round(eps_t * len(normal) / (1 - eps_t)))
        planted = anomalies[rng.integers(0, len(anomalies), k)]
        planted = planted + 0.01 * X.std(axis=0) * rng.standard_normal(planted.shape)
        X_p = np.vstack([normal, planted])
        y_p = np.r_[np.zeros(len(normal), dtype=np.int64), np.ones(k, dtype=np.int64)]
        desc = (
            f"ODDS thyroid (shipped): 60/40 stratified split (seed {seed}); the training split's {len(normal)} normal rows "
            f"plus {k} planted anomalies ({eps_t:.0%} of the training rows: its {len(anomalies)} anomalies drawn with "
            f"replacement, jittered by 1 % of each feature's std); the untouched 40 % split as test set "
            f"({int((y_te == 0).sum())} normal, {int(y_te.sum())} anomalies)"
        )
        results.append(_fit_flows("thyroid", desc, X_p, y_p, X_te, y_te, eps_t, config, progress))
    return results


# --------------------------------------------------------------------------------- part 2
def site_map(k: int, n_features: int, feature_std: np.ndarray, seed: int) -> Callable[[np.ndarray, int], np.ndarray]:
    """The fixed affine map of site ``k``: per-feature gain in ``[e^-0.7, e^0.7]``, offset in
    ``[-2, 2]`` feature standard deviations, plus Gaussian noise of 5 % of each feature's std."""
    rng = np.random.default_rng([seed, _SITE, k])
    gain = np.exp(rng.uniform(-0.7, 0.7, n_features))
    offset = rng.uniform(-2.0, 2.0, n_features) * feature_std

    def apply(X: np.ndarray, noise_seed: int) -> np.ndarray:
        noise = 0.05 * feature_std * np.random.default_rng([seed, _SITE, k, noise_seed]).standard_normal(X.shape)
        return X * gain + offset + noise

    return apply


def _site_data(dataset: str, config: DemoConfig) -> tuple[list[np.ndarray], np.ndarray, str]:
    """Normal rows of each site (sources first, the new site last) and the new site's anomalies."""
    seed, K = config.seed, config.n_sites
    if dataset == "two_moons":
        n_new = config.n_test_normal + max((config.n_adapt, *config.adapt_sizes))
        base = [two_moons(config.rows_per_site, contamination=0.0, random_state=seed + _SITE + k)[0] for k in range(K)]
        base.append(two_moons(n_new, contamination=0.0, random_state=seed + _SITE + K)[0])
        anomalies = _moons_anomalies("uniform", config.n_test_anomalies, seed + _SITE + K + 1)
        what = (
            f"two moons: {K} source sites of {config.rows_per_site} normal rows each; the new site has fresh normal rows "
            f"and {len(anomalies)} anomalies uniform over the box around the moons (some land on the moons)"
        )
    else:
        X, y = load_example("thyroid")
        normal = X[y == 0][np.random.default_rng(seed).permutation(int((y == 0).sum()))]
        base = list(np.array_split(normal, K + 1))
        anomalies = X[y == 1]
        what = (
            f"ODDS thyroid (shipped): its {len(normal)} normal rows split evenly into {K} source sites and the new site; "
            f"the new site's test set adds all {len(anomalies)} anomalies"
        )
    std = np.vstack(base).std(axis=0)
    maps = [site_map(k, std.size, std, seed) for k in range(K + 1)]
    sites = [maps[k](Xk, 0) for k, Xk in enumerate(base)]
    what += (
        "; every site is the base data through its own fixed affine map (per-feature gain e^U(-0.7, 0.7), offset "
        "U(-2, 2) feature stds) plus Gaussian noise of 0.05 feature stds"
    )
    return sites, maps[K](anomalies, 1), what


def adapt_timed(det: AdaFlow, X: np.ndarray, domain: str) -> float:
    """``det.adapt(X, domain=domain)`` (forward passes only); return its wall-clock seconds."""
    t0 = time.perf_counter()
    det.adapt(X, domain=domain)
    return time.perf_counter() - t0


def domain_shift(config: DemoConfig, progress: Callable[[str], None] = lambda _: None) -> list[ShiftResult]:
    """Part 2: AdaFlow fitted on source sites, adapted to a new site by forward passes only."""
    results = []
    for dataset in config.shift_datasets:
        sites, anomalies, what = _site_data(dataset, config)
        sources, new = sites[:-1], sites[-1]
        names = [f"site-{k + 1}" for k in range(len(sources))]
        X_src = np.vstack(sources)
        domains = np.repeat(names, [len(s) for s in sources])
        t0 = time.perf_counter()
        det = AdaFlow(
            n_couplings=config.ada_couplings.get(dataset, 0), epochs=config.ada_epochs, device="cpu", random_state=config.seed
        ).fit(X_src, domains=domains)
        progress(f"  {dataset:<10} AdaFlow fitted on {len(names)} source sites ({len(X_src)} rows) in {time.perf_counter() - t0:.1f} s")
        n_max = max((config.n_adapt, *config.adapt_sizes))
        if len(new) - n_max < 10:
            raise InputError(f"The new site of {dataset} has {len(new)} normal rows; adaptation sizes up to {n_max} leave too few to test.")
        X_test = np.vstack([new[n_max:], anomalies])
        y_test = np.r_[np.zeros(len(new) - n_max, dtype=np.int64), np.ones(len(anomalies), dtype=np.int64)]
        unadapted = {name: float(roc_auc_score(y_test, det.decision_function(X_test, domain=name))) for name in names}
        by_size: dict[int, dict[str, float]] = {}
        headline: dict[str, Any] = {}
        for n in sorted({config.n_adapt, *config.adapt_sizes}):
            X_adapt = new[:n]
            adapt_s = adapt_timed(det, X_adapt, "new-site")
            t0 = time.perf_counter()
            s_ada = det.decision_function(X_test, domain="new-site")
            score_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            gauss = LedoitWolf().fit(X_adapt)
            s_gauss, gauss_s = gauss.mahalanobis(X_test), time.perf_counter() - t0
            s_forest, forest_s = _iforest_scores(X_adapt, X_test, config.seed)
            by_size[n] = {
                "AdaFlow adapted": float(roc_auc_score(y_test, s_ada)),
                "Gaussian (Ledoit-Wolf)": float(roc_auc_score(y_test, s_gauss)),
                "IsolationForest": float(roc_auc_score(y_test, s_forest)),
            }
            if n == config.n_adapt:
                headline = {
                    "adapt_s": adapt_s, "score_s": score_s, "X_adapt": X_adapt, "threshold": det.thresholds_["new-site"],
                    "scores": {"AdaFlow adapted": s_ada, "Gaussian (Ledoit-Wolf)": s_gauss, "IsolationForest": s_forest},
                    "seconds": {"AdaFlow adapted": adapt_s, "Gaussian (Ledoit-Wolf)": gauss_s, "IsolationForest": forest_s},
                }
        # Leave the model adapted with the headline rows (the model file holds that state).
        det.adapt(headline["X_adapt"], domain="new-site")
        before = names[0]
        scores = {f"AdaFlow before adapt ({before})": det.decision_function(X_test, domain=before), **headline["scores"]}
        seconds = {f"AdaFlow before adapt ({before})": float("nan"), **headline["seconds"]}
        rows = [(m, *_auc_ap(y_test, s), seconds[m]) for m, s in scores.items()]
        for m, auc, _, sec in rows:
            took = "" if np.isnan(sec) else f"   {1000 * sec:7.1f} ms"
            progress(f"  {dataset:<10} {m:<34} ROC AUC {auc:.3f}{took}")
        results.append(
            ShiftResult(
                dataset=dataset, description=what, n_adapt=config.n_adapt, rows=rows, by_size=by_size, unadapted=unadapted,
                adapt_seconds=headline["adapt_s"], score_seconds=headline["score_s"], model=det,
                X_adapt=headline["X_adapt"], X_test=X_test, y_test=y_test, X_source=X_src, scores=scores,
                thresholds={f"AdaFlow before adapt ({before})": det.thresholds_[before], "AdaFlow adapted": headline["threshold"]},
            )
        )
    return results


# --------------------------------------------------------------------------------- pictures
def _density_panel(fig: Any, ax: Any, det: Any, box: tuple[tuple[float, float], tuple[float, float]], grid: int,
                   log_range: float = 10.0, domain: str | None = None) -> None:
    (x0, x1), (y0, y1) = box
    gx, gy = np.linspace(x0, x1, grid), np.linspace(y0, y1, grid)
    pts = np.column_stack([a.ravel() for a in np.meshgrid(gx, gy)])
    logp = (det.score_samples(pts) if domain is None else det.score_samples(pts, domain=domain)).reshape(grid, grid)
    top = float(logp.max())
    mesh = ax.pcolormesh(gx, gy, np.clip(logp, top - log_range, top), cmap="viridis", shading="auto")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    fig.colorbar(mesh, ax=ax, shrink=0.75, label=f"log density (top {log_range:g} nats)")


def plot_contamination(path: Path, result: ContaminationResult, grid: int) -> Path:
    """Log-density maps of the three flows on two moons, training rows and anomalies on top, and the ROC curves."""
    from flowad.viz import plot_roc

    Figure = require_matplotlib()
    fig = Figure(figsize=(19, 4.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(FLOWS) + 1, gridspec_kw={"width_ratios": [1.25] * len(FLOWS) + [1]})
    normal, anom = result.X_train[result.y_train == 0], result.X_train[result.y_train == 1]
    aucs = {m: a for m, a, _, _ in result.rows}
    for ax, (name, det) in zip(axes, result.models.items(), strict=False):
        _density_panel(fig, ax, det, moons_box(), grid)
        ax.scatter(normal[:, 0], normal[:, 1], s=2, c="white", alpha=0.5, linewidths=0, label="normal (train)")
        ax.scatter(anom[:, 0], anom[:, 1], s=14, facecolors="none", edgecolors="red", linewidths=0.8, label="anomaly (train)")
        ax.set_title(f"{name}: test ROC AUC {aucs[name]:.3f}", fontsize=11)
    axes[0].legend(loc="lower left", fontsize=8, framealpha=0.8)
    plot_roc(axes[-1], result.y_test, result.scores, title="ROC on the clean test set")
    fig.suptitle(
        f"Contaminated training: two moons with {len(anom)} clustered anomalies among {len(result.X_train)} training rows "
        f"(red). A bright spot on the red cluster = the flow learned the anomalies as normal.",
        fontsize=11,
    )
    fig.savefig(path)
    return path


def plot_contamination_roc(path: Path, result: ContaminationResult) -> Path:
    """ROC curves and RobustRealNVP's test score histogram for a dataset without a 2-D picture."""
    from flowad.viz import plot_roc, plot_score_histogram

    Figure = require_matplotlib()
    fig = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    ax_roc, ax_hist = fig.subplots(1, 2)
    plot_roc(ax_roc, result.y_test, result.scores, title=f"{result.dataset}: ROC on the test split")
    robust = result.models["RobustRealNVP"]
    plot_score_histogram(ax_hist, result.scores["RobustRealNVP"], result.y_test, robust.threshold_,
                         title=f"{result.dataset}: RobustRealNVP test scores")
    fig.suptitle(f"Contaminated training on {result.dataset} (planted anomalies)", fontsize=11)
    fig.savefig(path)
    return path


def plot_shift(path: Path, result: ShiftResult, grid: int) -> Path:
    """Before/after adaptation: score histograms, ROC curves and, for 2-D data, density maps."""
    from flowad.viz import plot_roc, plot_score_histogram

    Figure = require_matplotlib()
    two_d = result.X_test.shape[1] == 2
    before = next(m for m in result.scores if m.startswith("AdaFlow before"))
    site = before[before.index("(") + 1 : -1]
    fig = Figure(figsize=(17, 9.0 if two_d else 4.4), dpi=100, layout="constrained")
    axes = fig.subplots(2 if two_d else 1, 3, squeeze=False)
    y = result.y_test
    for ax, m, title in (
        (axes[-1, 0], before, f"not adapted ({site}'s statistics)"),
        (axes[-1, 1], "AdaFlow adapted", f"adapted on {result.n_adapt} rows in {1000 * result.adapt_seconds:.1f} ms"),
    ):
        auc = roc_auc_score(y, result.scores[m])
        plot_score_histogram(ax, result.scores[m], y, result.thresholds[m], title=f"AdaFlow {title}\nnew-site test scores, ROC AUC {auc:.3f}")
    plot_roc(axes[-1, 2], y, result.scores, title=f"new site, {result.n_adapt} adaptation rows")
    if two_d:
        lo = np.minimum(result.X_test.min(axis=0), result.X_source.min(axis=0))
        hi = np.maximum(result.X_test.max(axis=0), result.X_source.max(axis=0))
        pad = 0.05 * (hi - lo)
        box = ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))
        normal, anom = result.X_test[y == 0], result.X_test[y == 1]
        for ax, domain, title in ((axes[0, 0], site, f"before: {site}'s statistics"), (axes[0, 1], "new-site", "after adapt")):
            _density_panel(fig, ax, result.model, box, grid, domain=domain)
            ax.scatter(normal[:, 0], normal[:, 1], s=2, c="white", alpha=0.5, linewidths=0, label="new site, normal (test)")
            ax.scatter(anom[:, 0], anom[:, 1], s=10, facecolors="none", edgecolors="red", linewidths=0.7, label="new site, anomaly (test)")
            ax.set_title(f"AdaFlow log-density, {title}", fontsize=11)
        axes[0, 0].legend(loc="lower left", fontsize=8, framealpha=0.8)
        ax = axes[0, 2]
        ax.scatter(result.X_source[:, 0], result.X_source[:, 1], s=2, c="tab:grey", alpha=0.4, linewidths=0, label="source sites (train)")
        ax.scatter(normal[:, 0], normal[:, 1], s=2, c="tab:blue", alpha=0.5, linewidths=0, label="new site, normal (test)")
        ax.scatter(result.X_adapt[:, 0], result.X_adapt[:, 1], s=14, c="black", marker="x", linewidths=0.8,
                   label=f"new site, {result.n_adapt} adaptation rows")
        ax.set(xlim=box[0], ylim=box[1], title="the sites (fixed gain and offset per site)")
        ax.set_aspect("equal")
        ax.legend(loc="lower left", fontsize=8, framealpha=0.8)
    fig.suptitle(f"Domain shift on {result.dataset}: AdaFlow fitted on {len(result.unadapted)} source sites, "
                 f"adapted to a new site by forward passes only", fontsize=11)
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------------- report
def _table(rows: Sequence[tuple[str, float, float, float]], time_label: str, unit: float) -> list[str]:
    out = [f"| method | ROC AUC | AP | {time_label} |", "|---|---|---|---|"]
    out += [f"| {m} | {auc:.3f} | {ap:.3f} | {'-' if np.isnan(sec) else f'{sec * unit:.1f}'} |" for m, auc, ap, sec in rows]
    return out


def to_markdown(result: DemoResult) -> str:
    """The ``results.md`` text: the command, one table per part and dataset, the winners."""
    c = result.config
    lines = [
        "# flowad demo",
        "",
        f"Command: `{result.command}`",
        "",
        f"Config: `{_config_json(c)}`",
        "",
        f"Every number below was computed by that command (seed {c.seed}, run time {result.seconds:.0f} s); "
        "nothing is typed by hand. Higher ROC AUC / AP is better. One seed: ROC AUC differences below "
        f"{TIE} are called ties, and a few hundredths can move with `--seed` (the repository's five-seed "
        "two-moons study is in results/two_moons).",
        "",
        "## 1. Contaminated training",
        "",
        "Each detector is fitted on training data with anomalies mixed in (labels unused) and scored on a clean "
        "held-out test set. The trimmed flows leave the stated contamination out of the loss: TrimRealNVP "
        "the least likely rows of every minibatch, RobustRealNVP the least likely training rows, chosen once per epoch.",
    ]
    for r in result.contamination:
        lines += ["", f"### {r.dataset}", "", r.description + ".", ""]
        lines += _table(r.rows, "fit s", 1.0)
        lines += ["", f"Verdict: **{r.winner()}**."]
        pic = "contamination_two_moons.png" if r.X_train.shape[1] == 2 else f"contamination_{r.dataset}.png"
        lines += ["", f"Picture: `{pic}`."]
    lines += [
        "",
        "## 2. Domain shift",
        "",
        "AdaFlow is fitted on the source sites; `AdaFlow.adapt` then computes the new site's batch-norm statistics from "
        "a few of its normal rows by forward passes only (no gradient, no weight change). The baselines a user would "
        "try first are fitted on the same adaptation rows. 'ms' is the adaptation time (AdaFlow) or the fit "
        "time (baselines), in milliseconds.",
    ]
    for s in result.shift:
        lines += ["", f"### {s.dataset}", "", s.description + ".", ""]
        lines += _table(s.rows, "ms", 1000.0)
        unad = ", ".join(f"{k} {v:.3f}" for k, v in s.unadapted.items())
        lines += [
            "",
            f"Verdict at {s.n_adapt} adaptation rows: **{s.winner()}**. AdaFlow.adapt: {1000 * s.adapt_seconds:.1f} ms "
            f"(one scoring pass over the {len(s.X_test)} test rows: {1000 * s.score_seconds:.1f} ms).",
            "",
            f"Not adapted, with each source site's statistics: {unad}.",
            "",
            "ROC AUC by number of adaptation rows:",
            "",
            "| rows | " + " | ".join(next(iter(s.by_size.values()))) + " |",
            "|---|" + "---|" * len(next(iter(s.by_size.values()))),
        ]
        lines += [f"| {n} | " + " | ".join(f"{v:.3f}" for v in aucs.values()) + " |" for n, aucs in s.by_size.items()]
        lines += ["", f"Picture: `shift_{s.dataset}.png`."]
    lines += ["", "## Summary", ""] + [f"- {line}" for line in result.summary()]
    return "\n".join(lines) + "\n"


def _config_json(config: DemoConfig) -> str:
    import json

    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def run_demo(
    out: str | Path,
    config: DemoConfig | None = None,
    *,
    command: str = "flowad demo",
    progress: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Run both parts; write ``results.md``, the PNGs and the model files into ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder (created).
    config : DemoConfig or None
        Settings; None means ``DemoConfig()``.
    command : str
        The command line written at the top of ``results.md``.
    progress : callable
        Receives one line per fitted model.

    Returns
    -------
    DemoResult
    """
    config = DemoConfig() if config is None else config
    require_matplotlib()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        progress("Part 1: contaminated training")
        part1 = contaminated_training(config, progress)
        progress("Part 2: domain shift")
        part2 = domain_shift(config, progress)
    finally:
        torch.set_num_threads(threads)
    files: list[Path] = []
    for r in part1:
        if r.X_train.shape[1] == 2:
            files.append(plot_contamination(out / f"contamination_{r.dataset}.png", r, config.grid))
        else:
            files.append(plot_contamination_roc(out / f"contamination_{r.dataset}.png", r))
        r.models["RobustRealNVP"].save(out / f"robust_realnvp_{r.dataset}.flowad")
        files.append(out / f"robust_realnvp_{r.dataset}.flowad")
    for s in part2:
        files.append(plot_shift(out / f"shift_{s.dataset}.png", s, config.grid))
        s.model.save(out / f"adaflow_{s.dataset}.flowad")
        files.append(out / f"adaflow_{s.dataset}.flowad")
    result = DemoResult(config, command, part1, part2, [], time.perf_counter() - t0)
    (out / "results.md").write_text(to_markdown(result))
    result.files = [out / "results.md", *[Path(f) for f in files]]
    return result
