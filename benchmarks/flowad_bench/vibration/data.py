"""The data of the vibration benchmark: snapshot features, life windows and the per-target splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flowad.exceptions import InputError
from flowad.features.vibration import femto_features
from flowad_bench.vibration.config import CONDITIONS

__all__ = ["Split", "load_features", "splits", "window"]


def load_features(data: str | Path, cache: str | Path | None = None, *, progress: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """The FEMTO index and its snapshot features (:func:`~flowad.features.vibration.femto_features`).

    Parameters
    ----------
    data : path
        The ``femto_pronostia`` folder (with ``index.csv``).
    cache : path or None
        A ``.npz`` file caching the features (written on first use).
    progress : bool, default=False

    Raises
    ------
    InputError
        If the folder or its index is missing, or the index lacks one of :data:`CONDITIONS`.
    """
    frame, X = femto_features(data, cache, progress=progress)
    conditions = set(frame["condition"].astype(str))
    if not set(CONDITIONS) <= conditions:
        raise InputError(f"{data}: index.csv must list conditions {list(CONDITIONS)}, has {sorted(conditions)}.")
    return frame, X


def window(frame: pd.DataFrame, bounds: tuple[float, float]) -> np.ndarray:
    """Mask of the rows whose life fraction lies in ``[bounds[0], bounds[1])``."""
    lf = frame["life_fraction"].to_numpy(dtype=float)
    return (lf >= bounds[0]) & (lf < bounds[1])


@dataclass
class Split:
    """Row indices of one target's adaptation set and test set, and the test labels."""

    adapt: np.ndarray
    test: np.ndarray
    y: np.ndarray


def splits(
    frame: pd.DataFrame, target: str, seed: int, n_adapt: Sequence[int], normal: tuple[float, float], positive: np.ndarray
) -> dict[int, Split]:
    """Nested adaptation sets and the matching test sets of one target and seed.

    The target's healthy rows in the life window ``normal`` are shuffled (seeded by ``seed``
    and the target); the first N adapt, the others are the test normals (label 0); the rows of
    the mask ``positive`` are the test positives (label 1).

    Raises
    ------
    InputError
        If N is not below the number of normal rows.
    """
    cond = frame["condition"].to_numpy() == target
    pool = np.flatnonzero(cond & (frame["label"].to_numpy() == 0) & window(frame, normal))
    pos = np.flatnonzero(cond & positive)
    rng = np.random.default_rng([seed, CONDITIONS.index(target) if target in CONDITIONS else 99])
    order = rng.permutation(pool)
    out = {}
    for n in n_adapt:
        if n >= pool.size:
            raise InputError(f"N={n} adaptation snapshots asked, but target {target} has only {pool.size} in {normal}.")
        test = np.concatenate([np.sort(order[n:]), pos])
        y = np.concatenate([np.zeros(pool.size - n, dtype=int), np.ones(pos.size, dtype=int)])
        out[n] = Split(adapt=np.sort(order[:n]), test=test, y=y)
    return out
