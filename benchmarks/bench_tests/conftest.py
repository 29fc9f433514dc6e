"""Synthetic datasets and fake methods for the benchmark tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flowad_bench import methods as bench_methods
from flowad_bench.methods import Method


def make_dataset(rng: np.random.Generator, n: int = 200, d: int = 3, rate: float = 0.1, shift: float = 6.0):
    """Gaussian normals; anomalies shifted by ``shift`` along every feature (first feature largest)."""
    n_anom = max(2, int(round(rate * n)))
    X = rng.normal(size=(n, d))
    y = np.zeros(n, dtype=np.int64)
    y[:n_anom] = 1
    X[:n_anom] += shift
    X[:, 0] += 10.0 * y  # anomalies strictly above normals on the first feature
    order = rng.permutation(n)
    return X[order], y[order]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Folder of three tiny synthetic .npz datasets of different sizes."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "data"
    folder.mkdir()
    for name, n, d in [("alpha", 120, 3), ("beta", 160, 4), ("gamma", 200, 3), ("delta", 400, 6)]:
        X, y = make_dataset(rng, n=n, d=d)
        np.savez(folder / f"{name}.npz", X=X, y=y)
    return folder


@pytest.fixture
def fake_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fake scorers as methods 'Random' (standardized) and 'FirstFeature' (raw)."""
    seeded = lambda n, s, q: {"random_state": s}  # noqa: E731
    monkeypatch.setitem(
        bench_methods.METHODS, "Random", Method("Random", "test", "bench_tests._fakes", "RandomScorer", True, seeded)
    )
    monkeypatch.setitem(
        bench_methods.METHODS,
        "FirstFeature",
        Method("FirstFeature", "test", "bench_tests._fakes", "FirstFeatureScorer", False, seeded),
    )
