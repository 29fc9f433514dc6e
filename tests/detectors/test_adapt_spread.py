"""Adaptation rows with a stuck feature, or all identical, are refused (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from flowad import AdaFlow, InputError

X = np.random.default_rng(0).normal(size=(200, 3))


@pytest.fixture(scope="module")
def det() -> AdaFlow:
    return AdaFlow(epochs=2, random_state=0).fit(X)


@pytest.mark.parametrize("chunk_size", [None, 16])
def test_adapt_refuses_a_stuck_feature_and_identical_rows(det: AdaFlow, chunk_size: int | None) -> None:
    rng = np.random.default_rng(1)
    stuck = rng.normal(size=(100, 3))
    stuck[:, 1] = 0.5
    with pytest.raises(InputError, match=r"Cannot adapt domain 's': in its rows feature\(s\) \['column 1'\] never change"):
        det.adapt(stuck, domain="s", chunk_size=chunk_size)
    with pytest.raises(InputError, match="all rows are identical"):
        det.adapt(np.tile(stuck[:1], (50, 1)), domain="z", chunk_size=chunk_size)
    assert det.domains_ == ["default"]  # nothing half-adapted is left behind
    det.adapt(rng.normal(size=(100, 3)), domain="ok", chunk_size=chunk_size)
    assert np.isfinite(det.decision_function(rng.normal(size=(5, 3)), domain="ok")).all()
    det.remove_domain("ok")


def test_partial_adapt_checks_a_new_domain(det: AdaFlow) -> None:
    with pytest.raises(InputError, match="all rows are identical"):
        det.partial_adapt(np.ones((10, 3)), domain="p")
