"""Precision far from the data mean, at the variance floor and near float64's limits.

The hand E-step must equal Pyro's log-likelihood within 1e-9 and the M-step must
give the covariances of an exact two-pass computation within 1e-8 whatever the
separation of the components in their own units, and no finite input may give NaN.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from emvi.inference import fit_em, fit_vi, initialize, pyro_log_likelihood, pyro_posterior
from emvi.inference.init import INIT_METHODS
from emvi.models import COVARIANCE_TYPES, GaussianMixture

sklearn_mixture = pytest.importorskip("sklearn.mixture")


def far_apart(separation: float, n: int = 300, seed: int = 0) -> torch.Tensor:
    """Two correlated blobs of unit scale, ``separation`` standard deviations apart."""
    gen = torch.Generator().manual_seed(seed)
    mix = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    noise = torch.randn(n, 2, generator=gen, dtype=torch.float64) @ mix.T
    noise[: n // 2] += torch.tensor([separation, -0.5 * separation], dtype=torch.float64)
    return noise


def covariances(model, params) -> np.ndarray:
    if model.family.cov_name == "scales":
        var = params["scales"].numpy() ** 2
        if model.family.covariance == "spherical":
            var = var[:, None] * np.ones(model.family.dim)
        return np.stack([np.diag(v) for v in var])
    tril = params["scale_tril"].numpy()
    cov = tril @ np.swapaxes(tril, -1, -2)
    return np.broadcast_to(cov, (model.k, *cov.shape[-2:])) if cov.ndim == 2 else cov


def log_gauss(x, mean, cov) -> np.ndarray:
    """``log N(x | mean, cov)`` from centred, whitened differences."""
    chol = np.linalg.cholesky(cov)
    white = np.linalg.solve(chol, (x - mean).T)
    return (-0.5 * (white**2).sum(0) - np.log(np.diag(chol)).sum()
            - 0.5 * len(mean) * np.log(2 * np.pi))


def reference_em(x: np.ndarray, weights, means, covs, covariance: str, reg: float,
                 iterations: int):
    """A textbook EM written independently: log densities from whitened differences, and
    covariances by two passes (differences from the *new* means)."""
    n, d = x.shape
    for _ in range(iterations):
        joint = np.stack([np.log(w) + log_gauss(x, m, c) for w, m, c in zip(weights, means,
                                                                            covs)], 1)
        joint -= joint.max(1, keepdims=True)
        resp = np.exp(joint)
        resp /= resp.sum(1, keepdims=True)
        counts = resp.sum(0) + 10 * np.finfo(float).eps
        weights = counts / counts.sum()
        means = (resp.T @ x) / counts[:, None]
        full = np.stack([((x - m).T * r) @ (x - m) / nk for m, r, nk in
                         zip(means, resp.T, counts)])
        if covariance == "full":
            covs = full
        elif covariance == "diag":
            covs = np.stack([np.diag(np.diag(c)) for c in full])
        elif covariance == "spherical":
            covs = np.stack([np.eye(d) * np.trace(c) / d for c in full])
        else:
            tied = (full * counts[:, None, None]).sum(0) / counts.sum()
            covs = np.stack([tied] * len(weights))
        covs = covs + reg * np.eye(d)
    return weights, means, covs


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
@pytest.mark.parametrize("separation", [1e5, 1e6])
def test_hand_log_likelihood_equals_pyro_far_from_the_mean(covariance, separation):
    model = GaussianMixture(k=2, dim=2, covariance=covariance)
    data = far_apart(separation)
    init = initialize(model, data, method="kmeans++", seed=0)
    params = fit_em(model, data, init, max_iter=3, tol=0.0).params  # not exactly the truth
    hand = float(model.log_likelihood(data, params))
    assert hand == pytest.approx(pyro_log_likelihood(model, data, params), rel=1e-9, abs=0)
    torch.testing.assert_close(model.e_step(data, params)[0],
                               pyro_posterior(model, data, params), atol=1e-9, rtol=0)


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
@pytest.mark.parametrize("separation", [1e5, 1e6])
def test_covariances_equal_an_exact_two_pass_em_far_from_the_mean(covariance, separation):
    model = GaussianMixture(k=2, dim=2, covariance=covariance)
    data = far_apart(separation, seed=1)
    init = initialize(model, data, method="kmeans++", seed=2)  # well-conditioned (tied too)
    ours = fit_em(model, data, init, max_iter=6, tol=0.0)
    weights, means, covs = reference_em(data.numpy(), init["weights"].numpy(),
                                        init["locs"].numpy(), covariances(model, init),
                                        covariance, model.family.reg_covar, 6)
    np.testing.assert_allclose(ours.params["weights"].numpy(), weights, rtol=1e-8)
    np.testing.assert_allclose(ours.params["locs"].numpy(), means, rtol=1e-12, atol=1e-8)
    np.testing.assert_allclose(covariances(model, ours.params), covs, rtol=1e-8, atol=0)


@pytest.mark.parametrize("separation", [1e5, 1e6])
def test_full_covariances_equal_sklearn_far_from_the_mean(separation):
    """scikit-learn forms full covariances by two passes too (its diag, spherical and tied
    use E[x^2] - mean^2 and lose digits here, so the exact reference above judges those)."""
    model = GaussianMixture(k=2, dim=2, covariance="full")
    data = far_apart(separation, seed=3)
    init = initialize(model, data, method="random_points", seed=1)
    ours = fit_em(model, data, init, max_iter=5, tol=0.0)
    anchor = sklearn_mixture.GaussianMixture(
        2, covariance_type="full", max_iter=5, tol=0.0, init_params="random_from_data",
        weights_init=init["weights"].numpy(), means_init=init["locs"].numpy(),
        precisions_init=np.linalg.inv(covariances(model, init)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anchor.fit(data.numpy())
    np.testing.assert_allclose(covariances(model, ours.params), anchor.covariances_, rtol=1e-8)


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_a_component_at_the_variance_floor_stays_exact(covariance):
    model = GaussianMixture(k=3, dim=2, covariance=covariance)
    gen = torch.Generator().manual_seed(0)
    blob = torch.randn(200, 2, generator=gen, dtype=torch.float64) * 3.0
    point = torch.tensor([[1234.5, -987.25]], dtype=torch.float64)
    data = torch.cat([blob, point.expand(4, 2), blob[:100] + 40.0])
    init = initialize(model, data, method="kmeans++", seed=0)
    fit = fit_em(model, data, init, max_iter=60)
    if covariance != "tied":
        assert any("collapsed" in note for note in fit.notes), fit.notes
    hand = float(model.log_likelihood(data, fit.params))
    assert hand == pytest.approx(pyro_log_likelihood(model, data, fit.params), rel=1e-9, abs=0)
    ref = reference_em(data.numpy(), init["weights"].numpy(), init["locs"].numpy(),
                       covariances(model, init), covariance, model.family.reg_covar, 4)
    four = fit_em(model, data, init, max_iter=4, tol=0.0)
    tiny = 1e-8 * model.family.reg_covar  # entries that are zero up to round-off
    np.testing.assert_allclose(covariances(model, four.params), ref[2], rtol=1e-8, atol=tiny)


def test_two_far_apart_clusters_are_not_called_collapsed():
    model = GaussianMixture(k=2, dim=1, covariance="diag")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 1, generator=gen, dtype=torch.float64)
    x[:200] += 1e7
    fit = fit_em(model, x, initialize(model, x, seed=0), max_iter=100)
    assert not any("collapsed" in note for note in fit.notes), fit.notes


def test_kmeans_fixed_scale_is_never_called_collapsed():
    from emvi.models import KMeans

    model = KMeans(k=2, dim=2, scale=1e-4)
    x = far_apart(50.0)
    fit = fit_em(model, x, initialize(model, x, seed=0))
    assert not any("collapsed" in note for note in fit.notes), fit.notes


def finite(fit) -> bool:
    values = [fit.objective, fit.responsibilities, *fit.params.values()]
    return all(not bool(torch.isnan(v).any()) for v in values) and not np.isnan(
        fit.log_likelihood)


@pytest.mark.parametrize("magnitude", [1e154, 1e200, 1e300])
@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_huge_finite_data_never_gives_nan(magnitude, covariance):
    """Squares of such data overflow; the fit works in standardised units and says nothing
    it does not know."""
    model = GaussianMixture(k=2, dim=2, covariance=covariance, reg_covar=0.0)  # unit-free
    data = far_apart(8.0, n=120) * magnitude / 8.0
    for method in INIT_METHODS:
        init = initialize(model, data, method=method, seed=0)
        assert all(bool(torch.isfinite(v).all()) for v in init.values()), method
    init = initialize(model, data, method="kmeans++", seed=0)
    em = fit_em(model, data, init, max_iter=50)
    assert finite(em) and em.converged
    assert np.isfinite(em.log_likelihood)
    small = fit_em(model, data / magnitude, {
        "weights": init["weights"], "locs": init["locs"] / magnitude,
        model.family.cov_name: init[model.family.cov_name] / magnitude}, max_iter=50)
    assert em.iterations == small.iterations  # the same fit in other units
    assert em.log_likelihood == pytest.approx(
        small.log_likelihood - 2 * data.shape[0] * np.log(magnitude), rel=1e-9)
    vi = fit_vi(model, data, init, steps=20)
    assert finite(vi)
