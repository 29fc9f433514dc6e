"""How flowad's RobustRealNVP defaults were chosen: a sweep over a few candidate settings.

Two sources of evidence, both re-runnable with ``flowad bench defaults``:

* the **two-moons study** (synthetic; no benchmark labels involved): uniform and clustered
  contamination, test AUC on fresh data (:mod:`flowad_bench.studies.two_moons`);
* a **development subset of ODDS** (small datasets, 2 seeds, the study's 60/40 protocol):
  a sanity check that a setting chosen on the synthetic study does not hurt real data. The
  defaults are global — nothing is chosen per dataset — but this check does read ODDS test
  labels, so it is reported as such and kept separate from the full benchmark table.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from flowad.exceptions import InputError
from flowad_bench.datasets import dataset_paths, load_dataset
from flowad_bench.runner import torch_threads

__all__ = ["CANDIDATES", "DEV_DATASETS", "run_defaults_sweep", "format_defaults"]

#: Candidate settings of RobustRealNVP (everything else at its default).
CANDIDATES: dict[str, dict[str, Any]] = {
    "relu, k=1": {"activation": "relu", "lipschitz_k": 1.0},
    "relu, k=2": {"activation": "relu", "lipschitz_k": 2.0},
    "relu, k=1, noise 0.1": {"activation": "relu", "lipschitz_k": 1.0, "noise_std": 0.1},
    "tanh, k=1": {"activation": "tanh", "lipschitz_k": 1.0},
    "tanh, k=2": {"activation": "tanh", "lipschitz_k": 2.0},
    "tanh, k=1, noise 0.1": {"activation": "tanh", "lipschitz_k": 1.0, "noise_std": 0.1},
    "tanh, k=1, 4 x (32, 32)": {"activation": "tanh", "lipschitz_k": 1.0, "n_couplings": 4, "hidden": (32, 32)},
    # Small architectures for scoring on devices (throughput: ``flowad bench throughput``).
    "tanh, k=1, 4 x (16, 16)": {"activation": "tanh", "lipschitz_k": 1.0, "n_couplings": 4, "hidden": (16, 16)},
    "tanh, k=1, 4 x (16,)": {"activation": "tanh", "lipschitz_k": 1.0, "n_couplings": 4, "hidden": (16,)},
}
#: Small ODDS datasets used as the development check.
DEV_DATASETS: tuple[str, ...] = ("cardio", "glass", "pima", "vowels", "letter", "ionosphere", "thyroid", "arrhythmia")


def run_defaults_sweep(
    odds_dir: str | Path | None,
    *,
    candidates: dict[str, dict[str, Any]] = CANDIDATES,
    datasets: Sequence[str] = DEV_DATASETS,
    odds_seeds: int = 2,
    moons_seeds: int = 3,
) -> pd.DataFrame:
    """Test AUC of every candidate on two moons and (if ``odds_dir``) the ODDS dev subset.

    Returns
    -------
    DataFrame
        One row per (source, dataset, seed, candidate) with ``auc`` and ``fit_seconds``.
    """
    from flowad import RobustRealNVP
    from flowad_bench.studies.two_moons import TwoMoonsConfig, make_split

    if odds_seeds < 1 or moons_seeds < 1:
        raise InputError(f"odds_seeds and moons_seeds must be >= 1, got {odds_seeds} and {moons_seeds}.")
    paths = [] if odds_dir is None else dataset_paths(odds_dir, datasets)  # a missing file fails here, not after the moons
    rows: list[dict[str, Any]] = []

    def run(source: str, dataset: str, seed: int, X_tr: np.ndarray, X_te: np.ndarray, y_te: np.ndarray, contamination: float) -> None:
        for name, params in candidates.items():
            t0 = time.perf_counter()
            det = RobustRealNVP(contamination=contamination, random_state=seed, device="cpu", **params).fit(X_tr)
            auc = roc_auc_score(y_te, det.decision_function(X_te))
            rows.append({"source": source, "dataset": dataset, "seed": seed, "candidate": name, "auc": auc, "fit_seconds": time.perf_counter() - t0})

    with torch_threads(1):
        config = TwoMoonsConfig()
        for kind in ("uniform", "clustered"):
            for seed in range(moons_seeds):
                X_tr, _, X_te, y_te = make_split(kind, seed, config)
                run("two moons", kind, seed, X_tr, X_te, y_te, config.contamination)
        for path in paths:
            ds = load_dataset(path)
            for seed in range(odds_seeds):
                X_tr, X_te, _, y_te = train_test_split(ds.X, ds.y, test_size=0.4, stratify=ds.y, random_state=seed)
                run("ODDS dev", ds.name, seed, X_tr, X_te, y_te, 0.1)
    return pd.DataFrame(rows)


def format_defaults(results: pd.DataFrame, command: str) -> str:
    """Markdown: mean test AUC per candidate and dataset, per source, with the source mean."""
    parts = [
        "# How RobustRealNVP's defaults were chosen",
        "",
        f"Command: `{command}`",
        "",
        "Test ROC AUC, mean over seeds (one thread, every other hyper-parameter at its default).",
    ]
    for source, frame in results.groupby("source", sort=False):
        table = frame.pivot_table(index="candidate", columns="dataset", values="auc", aggfunc="mean")
        table = table.reindex([c for c in CANDIDATES if c in table.index])
        table["mean"] = table.mean(axis=1)
        seconds = frame.groupby("candidate").fit_seconds.mean()
        table["fit s"] = seconds.reindex(table.index)
        parts += ["", f"## {source} ({frame.seed.nunique()} seeds)", "", "| candidate | " + " | ".join(map(str, table.columns)) + " |", "|---" * (len(table.columns) + 1) + "|"]
        parts += [f"| {idx} | " + " | ".join(f"{v:.3f}" if c != "fit s" else f"{v:.1f}" for c, v in row.items()) + " |" for idx, row in table.iterrows()]
    return "\n".join(parts) + "\n"
