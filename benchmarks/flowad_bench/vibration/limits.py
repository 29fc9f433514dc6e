"""What limits the target-only Gaussian at small N on FEMTO, and what the source conditions can give it.

Issue 13 asks the adapted detector to beat the Gaussian of the N target snapshots by 0.01 AUROC
where N is smallest, with information the N snapshots lack. This study asks where such
information would have to go. The target-only Gaussian has three statistics — the mean, the
per-feature scales and the correlation matrix — each estimated from N snapshots; the study
replaces one at a time:

* by the **oracle** value, computed from all the target's healthy snapshots of the life window
  (the test normals included: a diagnostic of how much each statistic's estimation error costs,
  not a method);
* by what the **source conditions** offer without any target label: their pooled within-condition
  correlation (alone, or blended with the target's Ledoit–Wolf correlation), or a prior for the
  per-feature log-variances (the source conditions' profile across features, each centred, moved
  to the target's level; a James–Stein blend whose weight follows from the sampling variance of a
  log-variance from N rows, 2 / (N − 1), and the spread of the profile between the two source
  conditions);
* and by other target-only estimators of the same Gaussian: OAS shrinkage, factor analysis with
  the number of factors chosen by 5-fold held-out likelihood on the N snapshots.

The splits are the benchmark's (:func:`~flowad_bench.vibration.data.splits`: the same adaptation
and test rows for a seed); every estimator scores the same test rows, so differences are paired.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.covariance import OAS, LedoitWolf, ledoit_wolf
from sklearn.decomposition import FactorAnalysis
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

from flowad_bench.shift import target_gaussian_scores
from flowad_bench.vibration.config import CONDITIONS, HEALTHY
from flowad_bench.vibration.data import splits, window

__all__ = ["ESTIMATORS", "SourceStatistics", "correlation", "gaussian_limits", "limits_markdown", "scale_prior_weight"]

#: Blend weights of the target's own (Ledoit–Wolf) correlation against the sources' pooled one.
BLENDS = (0.25, 0.5, 0.75)
#: Factor counts tried by the cross-validated factor analysis.
FACTORS = (1, 2, 3, 5, 8)


def correlation(A: np.ndarray) -> np.ndarray:
    """Correlation matrix of the rows of ``A`` (constant columns get unit variance)."""
    sd = A.std(axis=0)
    Z = (A - A.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return (Z.T @ Z) / A.shape[0]


def _log_var(A: np.ndarray) -> np.ndarray:
    return np.log(A.var(axis=0, ddof=1) + 1e-300)


@dataclass(frozen=True)
class SourceStatistics:
    """What the source conditions offer a target: their pooled within-condition correlation, their
    centred log-variance profile and that profile's spread between conditions."""

    correlation: np.ndarray
    log_var_profile: np.ndarray
    profile_spread: float

    @classmethod
    def of(cls, parts: Sequence[np.ndarray]) -> SourceStatistics:
        """From the healthy snapshots of each source condition (at least two)."""
        if len(parts) < 2:
            raise ValueError("the profile spread needs at least two source conditions.")
        profiles = np.array([p - p.mean() for p in map(_log_var, parts)])
        # per-condition deviation from the common profile: var(p1 - p2) = 2 tau^2 for two conditions
        tau2 = float(np.mean(np.var(profiles - profiles.mean(axis=0), axis=0, ddof=1)))
        # the target's own deviation, plus the error of the mean of the sources' profiles
        spread = tau2 * (1.0 + 1.0 / len(parts))
        return cls(np.mean([correlation(p) for p in parts], axis=0), profiles.mean(axis=0), spread)


def scale_prior_weight(n: int, spread: float) -> float:
    """Weight of the target's own log-variances in the James–Stein blend with the source prior.

    A log sample variance from ``n`` Gaussian rows has sampling variance about ``2 / (n - 1)``;
    the prior is off by ``spread`` (its variance across features). The blend weighs each by the
    other's variance.
    """
    noise = 2.0 / (n - 1)
    return spread / (spread + noise)


def _mahalanobis(C: np.ndarray, T: np.ndarray) -> np.ndarray:
    return np.einsum("ij,jk,ik->i", T, np.linalg.inv(C), T)


def _standardized(Xa: np.ndarray, Xt: np.ndarray, mu: np.ndarray | None = None, sd: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    mu = Xa.mean(axis=0) if mu is None else mu
    sd = Xa.std(axis=0, ddof=1) if sd is None else sd
    sd = np.where(sd > 0, sd, 1.0)
    return (Xa - mu) / sd, (Xt - mu) / sd


def _gaussian(Xa: np.ndarray, Xt: np.ndarray, *, mu=None, sd=None, corr_rows=None) -> np.ndarray:
    A, T = _standardized(Xa, Xt, mu, sd)
    if corr_rows is not None:
        A = _standardized(corr_rows, corr_rows[:1], mu, sd)[0]
    return LedoitWolf(assume_centered=True).fit(A).mahalanobis(T)


def _blend(a: float) -> Callable[..., np.ndarray]:
    def score(Xa: np.ndarray, Xt: np.ndarray, pool: np.ndarray, src: SourceStatistics) -> np.ndarray:
        A, T = _standardized(Xa, Xt)
        C = a * ledoit_wolf(A, assume_centered=True)[0] + (1.0 - a) * src.correlation
        return _mahalanobis(C + 1e-6 * np.eye(C.shape[0]), T)

    return score


def _scale_prior(Xa: np.ndarray, Xt: np.ndarray, pool: np.ndarray, src: SourceStatistics) -> np.ndarray:
    own = _log_var(Xa)
    w = scale_prior_weight(Xa.shape[0], src.profile_spread)
    level = float(np.mean(own - src.log_var_profile))
    return _gaussian(Xa, Xt, sd=np.exp(0.5 * (w * own + (1.0 - w) * (src.log_var_profile + level))))


def _target_oas(Xa: np.ndarray, Xt: np.ndarray, pool: np.ndarray, src: SourceStatistics) -> np.ndarray:
    A, T = _standardized(Xa, Xt)
    return OAS(assume_centered=True).fit(A).mahalanobis(T)


def _factor_cv(Xa: np.ndarray, Xt: np.ndarray, pool: np.ndarray, src: SourceStatistics) -> np.ndarray:
    A, T = _standardized(Xa, Xt)
    folds = KFold(min(5, A.shape[0]), shuffle=True, random_state=0)
    best = max(
        (sum(FactorAnalysis(k, random_state=0).fit(A[tr]).score_samples(A[te]).sum() for tr, te in folds.split(A)), k)
        for k in FACTORS
        if k < A.shape[0] - A.shape[0] // 5
    )
    return -FactorAnalysis(best[1], random_state=0).fit(A).score_samples(T)


#: Estimator name -> score function ``(adapt rows, test rows, target's healthy pool, source statistics)``.
ESTIMATORS: dict[str, Callable[..., np.ndarray]] = {
    "target_gaussian": lambda Xa, Xt, pool, src: target_gaussian_scores(Xa, Xt),
    "oracle_mean": lambda Xa, Xt, pool, src: _gaussian(Xa, Xt, mu=pool.mean(axis=0)),
    "oracle_scales": lambda Xa, Xt, pool, src: _gaussian(Xa, Xt, sd=pool.std(axis=0, ddof=1)),
    "oracle_correlation": lambda Xa, Xt, pool, src: _gaussian(Xa, Xt, corr_rows=pool),
    "oracle_all": lambda Xa, Xt, pool, src: _gaussian(Xa, Xt, mu=pool.mean(axis=0), sd=pool.std(axis=0, ddof=1), corr_rows=pool),
    "source_correlation": _blend(0.0),
    **{f"blend_{a}": _blend(a) for a in BLENDS},
    "source_scale_prior": _scale_prior,
    "target_oas": _target_oas,
    "target_factor_cv": _factor_cv,
}


def gaussian_limits(frame: pd.DataFrame, X: np.ndarray, seeds: Sequence[int], n_adapt: Sequence[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AUROC of every estimator of :data:`ESTIMATORS` on the late-life experiment of the benchmark.

    Returns
    -------
    results : DataFrame
        One row per target × seed × N × estimator (``auroc``).
    distances : DataFrame
        Per target: RMS difference of the correlation entries between the target's healthy pool
        and the sources' pooled correlation, and between the two source conditions.
    """
    cond = frame["condition"].to_numpy()
    label = frame["label"].to_numpy()
    healthy = (label == 0) & window(frame, HEALTHY)
    rows, dist = [], []
    for target in CONDITIONS:
        parts = [X[healthy & (cond == c)] for c in CONDITIONS if c != target]
        src = SourceStatistics.of(parts)
        pool = X[healthy & (cond == target)]
        d = X.shape[1]
        dist.append({
            "target": target,
            "target_vs_sources": float(np.linalg.norm(correlation(pool) - src.correlation) / d),
            "source_vs_source": float(np.linalg.norm(correlation(parts[0]) - correlation(parts[1])) / d),
            "profile_spread": src.profile_spread,
        })
        for seed in seeds:
            for n, split in splits(frame, target, seed, n_adapt, HEALTHY, (cond == target) & (label == 1)).items():
                Xa, Xt = X[split.adapt], X[split.test]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # factor analysis / Ledoit-Wolf on a handful of rows
                    for name, fn in ESTIMATORS.items():
                        s = fn(Xa, Xt, pool, src)
                        if not np.isfinite(s).all():
                            raise FloatingPointError(f"{name} gave non-finite scores (target {target}, seed {seed}, N={n}).")
                        rows.append({"target": target, "seed": seed, "n_adapt": n, "estimator": name,
                                     "auroc": float(roc_auc_score(split.y, s))})
    return pd.DataFrame(rows), pd.DataFrame(dist)


def limits_markdown(results: pd.DataFrame, distances: pd.DataFrame, command: str) -> str:
    """The report: mean AUROC (over seeds of the mean over targets) per estimator and N, each
    estimator's difference from the target-only Gaussian, and the correlation distances."""
    per_seed = results.groupby(["estimator", "n_adapt", "seed"]).auroc.mean()
    table = per_seed.groupby(["estimator", "n_adapt"]).mean().unstack("n_adapt")
    table = table.reindex([e for e in ESTIMATORS if e in table.index])
    base = table.loc["target_gaussian"]
    lines = [
        "# What limits the target-only Gaussian at small N (FEMTO, healthy vs late life)",
        "",
        f"Command: `{command}`",
        "",
        "Mean AUROC over seeds of the mean over the 3 held-out conditions; in brackets the difference "
        "from `target_gaussian` (the benchmark's target-only Gaussian). `oracle_*` rows take one "
        "statistic from all the target's healthy snapshots, test normals included: diagnostics, not methods.",
        "",
        "| estimator | " + " | ".join(f"N = {n}" for n in table.columns) + " |",
        "|---|" + "---|" * len(table.columns),
    ]
    for name, row in table.iterrows():
        cells = [f"{v:.3f}" if name == "target_gaussian" else f"{v:.3f} ({v - base[n]:+.3f})" for n, v in row.items()]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Correlation distances (RMS over the entries of the 70 × 70 correlation matrix; "
        "`profile_spread`: variance of a condition's centred log-variance profile around the sources' mean profile, "
        "plus that mean's error):",
        "",
        "| held-out condition | target vs sources | source vs source | profile spread |",
        "|---|---|---|---|",
        *(f"| {r.target} | {r.target_vs_sources:.3f} | {r.source_vs_source:.3f} | {r.profile_spread:.3f} |" for r in distances.itertuples()),
        "",
    ]
    return "\n".join(lines)
