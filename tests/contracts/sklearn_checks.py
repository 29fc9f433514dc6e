"""scikit-learn's generic estimator checks that apply to flowad detectors.

sklearn's outlier-detector checks assume +-1 labels (flowad follows PyOD: 0/1), so the full
``check_estimator`` does not apply; these generic ones do, and every detector runs them.
"""

from __future__ import annotations

import warnings

from sklearn.base import BaseEstimator
from sklearn.utils import estimator_checks as ec

GENERIC_CHECKS: tuple[str, ...] = (
    "check_get_params_invariance", "check_set_params", "check_parameters_default_constructible",
    "check_no_attributes_set_in_init", "check_estimators_dtypes", "check_fit_score_takes_y",
    "check_estimators_fit_returns_self", "check_estimators_empty_data_messages", "check_estimators_nan_inf",
    "check_dont_overwrite_parameters", "check_n_features_in", "check_fit2d_1sample", "check_fit2d_1feature",
    "check_fit1d", "check_estimators_overwrite_params", "check_estimator_repr", "check_fit_check_is_fitted",
    "check_n_features_in_after_fitting", "check_estimators_unfitted", "check_dict_unchanged",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_fit_idempotent",
    "check_estimators_pickle", "check_readonly_memmap_input", "check_f_contiguous_array_estimator",
    "check_complex_data", "check_dtype_object", "check_mixin_order",
)  # fmt: skip


def run_generic_checks(estimator: BaseEstimator) -> None:
    """Run every check of :data:`GENERIC_CHECKS` on ``estimator`` (raises on the first failure)."""
    for name in GENERIC_CHECKS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(ec, name)(type(estimator).__name__, estimator)
