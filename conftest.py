"""Shared fixtures: seeded RNGs that never leak into the global state, and dtype selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--dtype", default="float64", choices=["float32", "float64"], help="dtype of the bijection contract tests")


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Each test runs with torch seeded to 0 inside fork_rng, restoring the global state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@pytest.fixture
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return getattr(torch, request.config.getoption("--dtype"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace: dict) -> None:
    doctest_namespace["np"] = np
    doctest_namespace["torch"] = torch
