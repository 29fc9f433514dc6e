"""Small real datasets that ship inside the package (see ``data/README.md`` for sources)."""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["EXAMPLES", "load_example"]

#: Names of the shipped example datasets.
EXAMPLES: tuple[str, ...] = ("thyroid", "cardio")


def load_example(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Load a shipped ODDS dataset.

    Parameters
    ----------
    name : {"thyroid", "cardio"}
        Dataset name.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), int64
        1 = anomaly, 0 = normal.

    Examples
    --------
    >>> X, y = load_example("thyroid")
    >>> X.shape, int(y.sum())
    ((3772, 6), 93)
    """
    if name not in EXAMPLES:
        raise ValueError(f"Unknown example dataset {name!r}; shipped: {list(EXAMPLES)}.")
    with resources.files("flowad.datasets").joinpath(f"data/{name}.npz").open("rb") as fh:
        data = np.load(fh)
        return np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"], dtype=np.int64)
