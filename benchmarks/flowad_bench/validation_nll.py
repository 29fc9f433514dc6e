"""Label-free evidence on RobustRealNVP's default epochs and Lipschitz bound.

For each dataset, only the feature matrix ``X`` is read (:func:`flowad_bench.datasets.load_features`);
no label is read, so none can steer a split, a fit or a score. The rows are split at random
(seeded, not stratified) into a 60 % training part — the size of the ODDS protocol's training
split, anomalies included — and a 40 % rest that is not used; the training part is split again
at random 80 / 20. RobustRealNVP is fitted on the 80 % with each setting of :data:`SETTINGS`
(everything else at its defaults, ``random_state=seed``), and the run records the
:data:`TRIM`-trimmed mean negative log-likelihood of the held-out 20 % (lower = better density
fit; the trimming drops the rows of lowest density, the likeliest anomalies, as the trimmed
training loss does; :func:`flowad.training.trimmed_mean`) and of the 80 % it was fitted on.

:func:`run_validation_nll` writes ``validation_nll.csv`` (one row per dataset × setting,
resumable) and ``table.md`` (the held-out table, best setting per dataset in bold) to its
output folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from flowad.exceptions import InputError, NonFiniteError
from flowad.training import trimmed_mean
from flowad_bench.datasets import dataset_paths, load_features
from flowad_bench.protocol import TEST_SIZE
from flowad_bench.record import output_folder
from flowad_bench.report import markdown_head
from flowad_bench.runner import RunSummary, run_tasks

__all__ = [
    "DATASETS",
    "SETTINGS",
    "TRIM",
    "VALIDATION_FRACTION",
    "FIELDS",
    "NllTask",
    "label_free_split",
    "run_nll_task",
    "run_validation_nll",
    "validation_markdown",
]

#: ODDS datasets of the check (the defaults sweep's development subset).
DATASETS: tuple[str, ...] = ("glass", "ionosphere", "arrhythmia", "pima", "vowels", "letter", "cardio", "thyroid")
#: RobustRealNVP settings compared (the rest at the defaults; the table marks the default, read from the class).
SETTINGS: tuple[dict[str, float], ...] = (
    {"epochs": 25},
    {"epochs": 50},
    {"epochs": 100},
    {"epochs": 200},
    {"epochs": 100, "lipschitz_k": 2.0},
    {"epochs": 100, "lipschitz_k": 4.0},
)
#: Fraction of the highest negative log-likelihoods left out of the trimmed mean.
TRIM = 0.1
#: Fraction of the training part held out for the validation NLL.
VALIDATION_FRACTION = 0.2
#: Columns of ``validation_nll.csv`` (``task_id`` is appended by the runner).
FIELDS = (
    "dataset",
    "epochs",
    "lipschitz_k",
    "n_fit",
    "n_val",
    "n_features",
    "val_trimmed_nll",
    "train_trimmed_nll",
    "fit_seconds",
    "seed",
)


@dataclass(frozen=True)
class NllTask:
    """One fit: a dataset file, a setting (``epochs``, ``lipschitz_k``) and a seed."""

    dataset: str
    path: str
    epochs: int
    lipschitz_k: float
    seed: int = 0

    @property
    def task_id(self) -> str:
        """``dataset|e<epochs>|k<lipschitz_k>|seed``."""
        return f"{self.dataset}|e{self.epochs}|k{self.lipschitz_k:g}|{self.seed}"


def label_free_split(n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices to fit on and to validate on, drawn without labels.

    A seeded random (not stratified) ``1 - TEST_SIZE`` training part of ``range(n_rows)``, then
    a seeded random :data:`VALIDATION_FRACTION` of that part held out. Both sorted.
    """
    train_part, _ = train_test_split(np.arange(n_rows), test_size=TEST_SIZE, random_state=seed)
    fit_idx, val_idx = train_test_split(train_part, test_size=VALIDATION_FRACTION, random_state=seed)
    return np.sort(fit_idx), np.sort(val_idx)


def _trimmed(scores: np.ndarray) -> float:
    return float(trimmed_mean(torch.as_tensor(scores), TRIM))


def run_nll_task(task: NllTask) -> dict[str, Any]:
    """Fit RobustRealNVP for one :class:`NllTask`; return its row (NaN where a score is not finite)."""
    from flowad import RobustRealNVP

    X = load_features(task.path)
    fit_idx, val_idx = label_free_split(X.shape[0], task.seed)
    det = RobustRealNVP(epochs=task.epochs, lipschitz_k=task.lipschitz_k, random_state=task.seed, device="cpu")
    t0 = time.perf_counter()
    det.fit(X[fit_idx])
    seconds = time.perf_counter() - t0
    try:
        val = _trimmed(det.decision_function(X[val_idx]))
    except NonFiniteError:  # a held-out row far outside the fitted density
        val = float("nan")
    return {
        "dataset": task.dataset,
        "epochs": task.epochs,
        "lipschitz_k": task.lipschitz_k,
        "n_fit": int(fit_idx.size),
        "n_val": int(val_idx.size),
        "n_features": int(X.shape[1]),
        "val_trimmed_nll": val,
        "train_trimmed_nll": _trimmed(det.decision_scores_),
        "fit_seconds": seconds,
        "seed": task.seed,
    }


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    if abs(value) >= 1e5:
        return f"{value:.1e}"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"


def _label(epochs: int, k: float) -> str:
    return f"e{epochs} k{k:g}"


def _default_setting() -> tuple[int, float]:
    """RobustRealNVP's default ``(epochs, lipschitz_k)``, read from the class."""
    from flowad import RobustRealNVP

    det = RobustRealNVP()
    return int(det.epochs), float(det.lipschitz_k)


def validation_markdown(frame: pd.DataFrame, *, command: str = "", notes: Sequence[str] = ()) -> str:
    """Held-out trimmed NLL per dataset (rows) and setting (columns); the lowest per row in bold."""
    default = _default_setting()
    parts = markdown_head("Held-out trimmed NLL of RobustRealNVP settings (no label read)", command)
    parts += [
        f"{TRIM:.0%}-trimmed mean negative log-likelihood of a held-out {VALIDATION_FRACTION:.0%} of a random "
        f"{1 - TEST_SIZE:.0%} training part (lower = better); column `e<epochs> k<lipschitz_k>`, the default "
        f"`{_label(*default)}`. Rows: dataset (rows fitted, features).",
        "",
    ]
    if frame.empty:
        parts += ["No results yet.", ""]
    else:
        order = [(int(s["epochs"]), float(s.get("lipschitz_k", default[1]))) for s in SETTINGS]
        columns = [c for c in order if ((frame["epochs"] == c[0]) & (frame["lipschitz_k"] == c[1])).any()]
        header = [f"**{_label(*c)}**" if c == default else _label(*c) for c in columns]
        parts += ["| dataset (n_fit, d) | " + " | ".join(header) + " |", "|---" * (len(columns) + 1) + "|"]
        for name, rows in frame.groupby("dataset", sort=False):
            by = {(int(r.epochs), float(r.lipschitz_k)): float(r.val_trimmed_nll) for r in rows.itertuples()}
            values = [by.get(c, np.nan) for c in columns]
            best = np.nanmin(values) if np.isfinite(values).any() else np.nan
            cells = [f"**{_fmt(v)}**" if v == best else _fmt(v) for v in values]
            parts.append(f"| {name} ({int(rows.n_fit.iloc[0])}, {int(rows.n_features.iloc[0])}) | " + " | ".join(cells) + " |")
        parts.append("")
    if notes:
        parts += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(parts)


def run_validation_nll(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    datasets: Sequence[str] = DATASETS,
    seed: int = 0,
    jobs: int = 1,
    progress: bool = True,
    command: str = "",
) -> tuple[RunSummary, Path]:
    """Fit every setting of :data:`SETTINGS` on every dataset; write the CSV and ``table.md``.

    Parameters
    ----------
    data : path-like
        Folder of ODDS-style ``.npz`` files (only their array ``X`` is read).
    out : path-like
        Output folder; an existing ``validation_nll.csv`` there is resumed.
    datasets : sequence of str, default=DATASETS
        File stems.
    seed : int, default=0
        Seed of the split and of every model.
    jobs, progress : as in :func:`flowad_bench.runner.run_tasks`.
    command : str
        Command line written at the top of ``table.md``.

    Returns
    -------
    summary : RunSummary
    table : Path
        The written ``table.md``.

    Raises
    ------
    InputError
        If the folder or a dataset file is missing, or ``datasets`` is empty.
    """
    if not datasets:
        raise InputError("give at least one dataset.")
    paths = dataset_paths(data, datasets)
    default_k = _default_setting()[1]
    tasks = [
        NllTask(p.stem, str(p), int(s["epochs"]), float(s.get("lipschitz_k", default_k)), seed)
        for p in paths
        for s in SETTINGS
    ]
    folder = output_folder(out)
    csv_path = folder / "validation_nll.csv"
    summary = run_tasks(tasks, run_nll_task, csv_path, jobs=jobs, fields=FIELDS, progress=progress, desc="validation-nll")
    frame = pd.read_csv(csv_path) if csv_path.exists() else pd.DataFrame()
    if not frame.empty:
        frame = frame[frame["task_id"].isin({t.task_id for t in tasks})]
    notes = [f"Task {tid} failed: {err}" for tid, err in summary.failures]
    if len(frame) < len(tasks):
        notes.append(f"PARTIAL: {len(tasks) - len(frame)} of {len(tasks)} fits have no result yet.")
    nan = frame[frame["val_trimmed_nll"].isna()] if not frame.empty else frame
    notes += [f"{r.dataset} {_label(r.epochs, r.lipschitz_k)}: a held-out score was not finite (–)." for r in nan.itertuples()]
    table = folder / "table.md"
    table.write_text(validation_markdown(frame, command=command, notes=notes))
    return summary, table
