"""Tiny detectors for the benchmark tests (importable by worker processes)."""

from __future__ import annotations

import numpy as np


class RandomScorer:
    """Scores at random (seeded): AUC should be about 0.5."""

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def get_params(self, deep: bool = False) -> dict:
        return {"random_state": self.random_state}

    def fit(self, X: np.ndarray, y: None = None) -> RandomScorer:
        self.fit_X_ = np.array(X, copy=True)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.random_state).random(X.shape[0])


class FirstFeatureScorer:
    """Scores with the first feature: perfect on data whose anomalies have a large first feature."""

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: None = None) -> FirstFeatureScorer:
        self.fit_X_ = np.array(X, copy=True)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        self.score_X_ = np.array(X, copy=True)
        return np.asarray(X)[:, 0].astype(float)
