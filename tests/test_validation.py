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


# ---------------------------------------------------------------------------- issue 14 cases
def test_dataframe_bool_columns_are_0_and_1_like_numpy_bool_arrays() -> None:
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=(40, 2)), rng.random(40) > 0.5]
    df = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "flag": X[:, 2].astype(bool)})
    np.testing.assert_array_equal(check_X(df), check_X(np.c_[X[:, :2], X[:, 2].astype(bool)]))
    det = RealNVP(**FAST, random_state=0).fit(df)
    np.testing.assert_allclose(det.score_samples(df), det.score_samples(df.astype({"flag": float})))
    assert check_X(np.array([[True, False], [False, True]])).dtype == np.float64


def test_a_stray_text_cell_in_a_dataframe_is_named_by_column_row_and_value() -> None:
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["1.5", "oops", "2"]})
    with pytest.raises(InputError, match=r"non-numeric columns \['b'\]: column 'b' holds 'oops' at row 1"):
        check_X(df)
    numbers_as_text = pd.DataFrame({"a": [1.0, 2.0], "b": ["1.5", "2"]})
    np.testing.assert_array_equal(check_X(numbers_as_text), [[1.0, 1.5], [2.0, 2.0]])  # as numpy does for object arrays
    with pytest.raises(InputError, match="1 NaN"):  # a missing cell is missing, not text
        check_X(pd.DataFrame({"a": [1.0, 2.0], "b": ["1.5", None]}))


def test_sparse_input_says_sparse_and_how_to_densify() -> None:
    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.csr_matrix(np.eye(4))
    with pytest.raises(InputError, match=r"X is a scipy sparse csr_matrix of shape \(4, 4\).*X\.toarray\(\)"):
        RealNVP(**FAST).fit(X)
    torch = pytest.importorskip("torch")
    with pytest.raises(InputError, match=r"sparse torch tensor.*to_dense\(\)"):
        check_X(torch.eye(3).to_sparse())


def test_adaptation_rows_with_a_stuck_feature_or_all_identical_are_refused() -> None:
    from flowad._validation import check_adaptation_rows

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    check_adaptation_rows(X, domain="ok")
    stuck = X.copy()
    stuck[:, 1] = 0.5
    with pytest.raises(InputError, match=r"Cannot adapt domain 'd': in its rows feature\(s\) \['b'\] never change"):
        check_adaptation_rows(stuck, domain="d", names=["a", "b", "c"])
    check_adaptation_rows(stuck, domain="d", ignore=np.array([False, True, False]))  # left out of the model anyway
    with pytest.raises(InputError, match="all rows are identical"):
        check_adaptation_rows(np.tile(X[:1], (20, 1)), domain="z")
    tiny = X * 1e-30  # relative test: tiny values that vary are not stuck
    check_adaptation_rows(tiny, domain="tiny")
    near = 1e6 + X * 1e-3
    check_adaptation_rows(near, domain="near")
