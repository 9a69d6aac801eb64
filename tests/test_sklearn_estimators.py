"""scikit-learn's own estimator checks on emvi.sklearn's estimators.

Every check scikit-learn yields for these estimators runs and passes: none is expected to
fail (``EXPECTED_FAILED`` is empty, and strict: a check listed there that passes fails) and
none may skip itself (a ``SkipTest`` from a check is turned into a failure).
scikit-learn skips its array-API check unless ``SCIPY_ARRAY_API`` is set; it is set for
the checks, so that one runs too (on NumPy: these estimators claim no other namespace).
"""

from __future__ import annotations

import unittest

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks  # scikit-learn >= 1.6

from emvi.sklearn import GaussianMixture, KMeans, MixtureEstimator

ESTIMATORS = [
    GaussianMixture(),
    GaussianMixture(covariance_type="diag", n_init=2, method="vi"),
    KMeans(),
    MixtureEstimator(),
]

#: estimator class name -> {check name: why it cannot apply}; none so far
EXPECTED_FAILED: dict[str, dict[str, str]] = {}


def expected_failed(estimator) -> dict[str, str]:
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed, xfail_strict=True)
def test_scikit_learn_estimator_checks(estimator, check, monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")  # else scikit-learn skips check_array_api_input
    try:
        check(estimator)
    except unittest.SkipTest as skip:
        pytest.fail(f"a check skipped itself ({skip}); every check must run or be listed in "
                    "EXPECTED_FAILED with the reason")
