"""Parity with scikit-learn's GaussianMixture: same start, same iterations, same numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from emvi.inference import fit_em, initialize
from emvi.models import COVARIANCE_TYPES, GaussianMixture

sklearn_mixture = pytest.importorskip("sklearn.mixture")


def covariances(model, params) -> np.ndarray:
    """Our parameters in scikit-learn's ``covariances_`` convention."""
    if model.family.cov_name == "scales":
        return params["scales"].numpy() ** 2
    tril = params["scale_tril"].numpy()
    return tril @ np.swapaxes(tril, -1, -2)


def precisions(model, params) -> np.ndarray:
    cov = covariances(model, params)
    return 1.0 / cov if model.family.cov_name == "scales" else np.linalg.inv(cov)


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [0.0, 6.0, -4.0]])
    labels = torch.randint(3, (600,), generator=gen)
    mix = torch.randn(3, 3, 3, generator=gen) * 0.5 + torch.eye(3)
    noise = torch.randn(600, 3, generator=gen).unsqueeze(-2) @ mix[labels]
    return (centres[labels] + noise.squeeze(-2) + 100.0).to(torch.float64)


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_em_matches_sklearn_iteration_for_iteration(covariance, data):
    model = GaussianMixture(k=3, dim=3, covariance=covariance)
    init = initialize(model, data, method="random_points", seed=4)
    iterations = 7
    ours = fit_em(model, data, init, max_iter=iterations, tol=0.0)
    anchor = sklearn_mixture.GaussianMixture(
        3, covariance_type=covariance, max_iter=iterations, tol=0.0,
        init_params="random_from_data", weights_init=init["weights"].numpy(),
        means_init=init["locs"].numpy(), precisions_init=precisions(model, init))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 never "converges"
        anchor.fit(data.numpy())
    assert anchor.n_iter_ == iterations and ours.iterations == iterations
    np.testing.assert_allclose(ours.params["weights"].numpy(), anchor.weights_, rtol=1e-8)
    np.testing.assert_allclose(ours.params["locs"].numpy(), anchor.means_, rtol=1e-8)
    np.testing.assert_allclose(covariances(model, ours.params), anchor.covariances_,
                               rtol=1e-8, atol=1e-10)
    n = data.shape[0]
    assert ours.log_likelihood / n == pytest.approx(anchor.score(data.numpy()), rel=1e-10)
    # scikit-learn's conveniences give the same answers on new data
    fresh = data[:50] + 0.3
    np.testing.assert_allclose(ours.score_samples(fresh).numpy(),
                               anchor.score_samples(fresh.numpy()), rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(fresh).numpy(),
                               anchor.predict_proba(fresh.numpy()), atol=1e-9)
    assert np.array_equal(ours.predict(fresh).numpy(), anchor.predict(fresh.numpy()))
    assert ours.bic(data) == pytest.approx(anchor.bic(data.numpy()), rel=1e-10)
    assert ours.aic(data) == pytest.approx(anchor.aic(data.numpy()), rel=1e-10)


def test_sample_runs_the_fitted_program(data):
    model = GaussianMixture(k=3, dim=3)
    fit = fit_em(model, data, initialize(model, data, seed=0), max_iter=50)
    sample, labels = fit.sample(2000, seed=1)
    assert sample.shape == (2000, 3) and labels.shape == (2000,)
    assert torch.allclose(sample.mean(0), data.mean(0), atol=0.3)
