"""Bad input gets a clear error that names the problem (and never a NaN score)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowad import InputError, RealNVP
from flowad._validation import check_X

FAST = {"n_couplings": 1, "hidden": (8,), "epochs": 2}


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([[1.0, np.nan], [2.0, 3.0]]), r"1 NaN and 0 infinite value\(s\), first at row 0, column 1"),
        (np.array([[1.0, 2.0], [np.inf, 3.0], [-np.inf, 1.0]]), r"0 NaN and 2 infinite"),
        (np.arange(5.0), r"must be 2-D .* got 1-D shape \(5,\).*reshape\(-1, 1\)"),
        (np.zeros((2, 2, 2)), "got 3-D"),
        (np.empty((0, 3)), r"X is empty; at least 2 sample"),
        (np.ones((1, 3)), r"X has 1 sample\(s\); at least 2"),
        (np.empty((5, 0)), r"0 feature\(s\) \(shape=\(5, 0\)\) while a minimum of 1 is required"),
        (np.array([["a", "b"], ["c", "d"]]), "must be numeric"),
        (pd.DataFrame({"x": [1.0, 2.0, 3.0], "city": ["a", "b", "c"]}), r"non-numeric columns \['city'\]"),
        (np.array([[1 + 1j, 2], [3, 4]]), "Complex data not supported"),
        (np.array([["1.5", "x"], ["2", "3"]], dtype=object), r"could not be converted to float"),
        ([[1.0, 2.0], [3.0]], "could not be read"),
        (None, "X is None"),
    ],
)
def test_fit_rejects_bad_input_with_a_clear_message(X: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        RealNVP(**FAST).fit(X)


def test_input_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        check_X(np.array([np.nan]).reshape(1, 1))


def test_scoring_checks_feature_count_and_finiteness() -> None:
    rng = np.random.default_rng(0)
    det = RealNVP(**FAST, random_state=0).fit(rng.normal(size=(30, 3)))
    with pytest.raises(InputError, match="X has 2 features, but RealNVP is expecting 3 features as input"):
        det.score_samples(rng.normal(size=(4, 2)))
    with pytest.raises(InputError, match="NaN"):
        det.decision_function(np.array([[0.0, np.nan, 0.0]]))
    assert det.score_samples(np.zeros((1, 3))).shape == (1,)  # one row is fine at scoring time


def test_input_is_not_modified() -> None:
    X = np.random.default_rng(0).normal(size=(30, 2))
    before = X.copy()
    RealNVP(**FAST, random_state=0).fit(X).score_samples(X)
    np.testing.assert_array_equal(X, before)


def test_object_array_of_numbers_is_accepted() -> None:
    X = np.random.default_rng(0).normal(size=(30, 2))
    det = RealNVP(**FAST, random_state=0).fit(X.astype(object))
    np.testing.assert_array_equal(det.score_samples(X.astype(object)), det.score_samples(X))


def test_integer_and_bool_input_are_accepted() -> None:
    X = np.random.default_rng(0).integers(0, 10, size=(40, 3))
    det = RealNVP(**FAST, random_state=0).fit(X)
    assert np.isfinite(det.score_samples(X)).all()
