"""Missing entries (NaN): exact EM against a textbook implementation, the missing-data code
path against the complete-data one, chunks of both kinds, imputation and the checks.

The every-model invariants (Pyro's enumeration, monotone EM, the gradient at EM's fixed
point, chunked == whole, recovery) run on the missing-data cases of tests/model_cases.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from emvi.inference import fit_em, fit_vi, initialize
from emvi.models import (
    BernoulliMixture,
    CategoricalMixture,
    GaussianMixture,
    KMeans,
    PoissonMixture,
    TwoCoins,
)
from emvi.models.families import gaussian_missing as gm
from emvi.models.families.base import Prepared
from model_cases import forced_missing_path as forced
from model_cases import make, remove_entries
from scipy.stats import multivariate_normal

COVARIANCE = np.array([[2.0, 0.8, -0.5], [0.8, 1.5, 0.3], [-0.5, 0.3, 1.0]])
MEAN = np.array([5.0, -3.0, 100.0])  # far from 0: the standardisation is exercised


def gaussian_data(n: int = 150, seed: int = 0, fraction: float = 0.3) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal(MEAN, COVARIANCE, size=n)
    return remove_entries(torch.as_tensor(x), fraction, seed)


# -- a textbook EM for one multivariate normal with missing data (Little & Rubin, ch. 11) ---
def textbook_step(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray):
    """One EM step, row by row: conditional means of the missing entries, and their
    conditional covariances added to the second moments."""
    n, d = x.shape
    filled, extra = x.copy(), np.zeros((d, d))
    for i in range(n):
        o, m = ~np.isnan(x[i]), np.isnan(x[i])
        if m.any():
            regression = sigma[np.ix_(m, o)] @ np.linalg.inv(sigma[np.ix_(o, o)])
            filled[i, m] = mu[m] + regression @ (x[i, o] - mu[o])
            extra[np.ix_(m, m)] += sigma[np.ix_(m, m)] - regression @ sigma[np.ix_(o, m)]
    new_mu = filled.mean(0)
    centred = filled - new_mu
    return new_mu, (centred.T @ centred + extra) / n


def textbook_log_likelihood(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    total = 0.0
    for row in x:
        o = ~np.isnan(row)
        total += multivariate_normal(mu[o], sigma[np.ix_(o, o)]).logpdf(row[o])
    return total


def project(sigma: np.ndarray, covariance: str) -> np.ndarray:
    """The textbook M-step under a constrained covariance: its diagonal, or their mean."""
    if covariance == "diag":
        return np.diag(np.diag(sigma))
    if covariance == "spherical":
        return np.eye(len(sigma)) * np.diag(sigma).mean()
    return sigma


@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical"])
def test_one_gaussian_matches_a_textbook_em_with_missing_data(covariance):
    data = gaussian_data()
    x = data.numpy()
    model = GaussianMixture(k=1, dim=3, covariance=covariance, reg_covar=0.0)
    mu, sigma = np.array([4.0, -2.0, 99.0]), project(np.eye(3) * 2.0, covariance)
    start = {"weights": [1.0], "locs": [mu.tolist()]}
    if covariance in ("full", "tied"):
        start["covariances"] = [sigma.tolist()] if covariance == "full" else sigma.tolist()
    else:
        scales = np.sqrt(np.diag(sigma))
        start["scales"] = [scales.tolist()] if covariance == "diag" else [float(scales[0])]
    params = model.params(**start)
    assert float(model.log_likelihood(data, params)) == pytest.approx(
        textbook_log_likelihood(x, mu, sigma), rel=1e-12)
    fit = fit_em(model, data, params, max_iter=15, tol=None)
    for _ in range(15):
        mu, sigma = textbook_step(x, mu, sigma)
        sigma = project(sigma, covariance)
    ours = fit.params
    np.testing.assert_allclose(ours["locs"][0].numpy(), mu, rtol=0, atol=1e-10)
    if covariance in ("full", "tied"):
        tril = ours["scale_tril"] if covariance == "tied" else ours["scale_tril"][0]
        np.testing.assert_allclose((tril @ tril.T).numpy(), sigma, rtol=0, atol=1e-10)
    else:
        scales = ours["scales"][0].numpy()
        np.testing.assert_allclose(np.broadcast_to(scales ** 2, (3,)), np.diag(sigma),
                                   rtol=0, atol=1e-10)
    assert fit.log_likelihood == pytest.approx(textbook_log_likelihood(x, mu, sigma), rel=1e-12)


# -- the missing-data code path on complete data equals the complete-data path --------------
@pytest.mark.parametrize("name", ["gmm_full", "gmm_tied", "gmm_diag", "gmm_spherical",
                                  "bernoulli", "categorical", "poisson_vector"])
def test_missing_data_path_on_complete_data_equals_the_complete_path(name):
    model, truth = make(name)
    data = model.simulate(truth, n=300, seed=0).data
    params = model.check_params(model.random_params(data, torch.Generator().manual_seed(1)))
    complete, masked = model.prepare(data, model.shift(data)), forced(model.family, data,
                                                                       model.shift(data))
    assert isinstance(complete, Prepared) and not isinstance(masked, Prepared)
    joint, other = model.family.log_densities(complete, params), model.family.log_densities(
        masked, params)
    torch.testing.assert_close(other, joint, rtol=1e-12, atol=1e-12 * float(joint.abs().max()))
    resp = model.expect(complete, params).responsibilities.mT
    stats = model.family.accumulate(complete, resp, params)
    for key, value in model.family.accumulate(masked, resp, params).items():
        torch.testing.assert_close(value, stats[key], rtol=1e-12,
                                   atol=1e-12 * float(stats[key].abs().max()))


@pytest.mark.parametrize("name", ["gmm_full", "gmm_diag", "bernoulli", "categorical"])
def test_chunks_with_and_without_missing_entries_add_up(name):
    """The first chunk is complete (today's statistics), the others are not: one sum."""
    model, truth = make(name)
    data = model.simulate(truth, n=200, seed=3).data
    data = torch.cat([data[:50], remove_entries(data[50:], 0.3, 3)])
    params = model.check_params(model.random_params(data, torch.Generator().manual_seed(4)))
    assert isinstance(model.prepare(data[:50], model.shift(data)), Prepared)
    whole = fit_em(model, data, params, max_iter=8, tol=None)
    chunked = fit_em(model, data, params, max_iter=8, tol=None, chunk_size=50)
    torch.testing.assert_close(chunked.objective, whole.objective, rtol=1e-12, atol=0)
    for key in whole.params:
        torch.testing.assert_close(chunked.params[key], whole.params[key], rtol=1e-10,
                                   atol=1e-12)


# -- imputation -----------------------------------------------------------------------------
def conditional_mean(row: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    o, m = ~np.isnan(row), np.isnan(row)
    out = row.copy()
    out[m] = mu[m] + sigma[np.ix_(m, o)] @ np.linalg.solve(sigma[np.ix_(o, o)], row[o] - mu[o])
    return out


def test_imputation_is_the_posterior_weighted_conditional_expectation():
    model, truth = make("gmm_full")
    data = remove_entries(model.simulate(truth, n=60, seed=2).data, 0.4, 2)
    fit = fit_em(model, data, initialize(model, data, seed=0), max_iter=30)
    imputed = fit.impute(data)
    assert imputed.shape == data.shape and not bool(torch.isnan(imputed).any())
    seen = ~torch.isnan(data)
    assert torch.equal(imputed[seen], data[seen])  # observed entries exactly as given
    resp = fit.predict_proba(data).numpy()
    covs = (fit.params["scale_tril"] @ fit.params["scale_tril"].mT).numpy()
    locs = fit.params["locs"].numpy()
    expected = np.stack([sum(resp[i, j] * conditional_mean(row, locs[j], covs[j])
                             for j in range(model.k)) for i, row in enumerate(data.numpy())])
    np.testing.assert_allclose(imputed.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_multiple_imputations_are_draws_from_the_conditional_distribution():
    model = GaussianMixture(k=1, dim=3, covariance="full")
    params = model.params(weights=[1.0], locs=[MEAN.tolist()], covariances=[COVARIANCE.tolist()])
    row = torch.tensor([[6.0, math.nan, math.nan]], dtype=torch.float64)
    draws = model.impute(row, params, draws=20_000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (20_000, 1, 3) and bool((draws[:, 0, 0] == 6.0).all())
    missing = draws[:, 0, 1:].numpy()
    regression = COVARIANCE[1:, :1] / COVARIANCE[0, 0]
    mean = MEAN[1:] + regression[:, 0] * (6.0 - MEAN[0])
    cov = COVARIANCE[1:, 1:] - regression @ COVARIANCE[:1, 1:]
    np.testing.assert_allclose(missing.mean(0), mean, rtol=0,
                               atol=4 * float(np.sqrt(np.diag(cov).max() / 20_000)))
    np.testing.assert_allclose(np.cov(missing.T), cov, atol=0.05)
    fit_like = model.impute(row, params)
    np.testing.assert_allclose(fit_like[0, 1:].numpy(), mean, rtol=1e-12)


def test_draws_are_seeded_and_keep_observed_entries():
    model, truth = make("gmm_diag")
    data = remove_entries(model.simulate(truth, n=40, seed=1).data, 0.3, 1)
    fit = fit_em(model, data, initialize(model, data, seed=0), max_iter=20)
    a, b, c = fit.impute(data, draws=3, seed=5), fit.impute(data, draws=3, seed=5), fit.impute(
        data, draws=3, seed=6)
    assert a.shape == (3, *data.shape) and torch.equal(a, b) and not torch.equal(a, c)
    seen = ~torch.isnan(data)
    assert all(torch.equal(draw[seen], data[seen]) for draw in a)
    assert not torch.equal(a[0], a[1])  # each draw is its own


@pytest.mark.parametrize("name, support", [
    ("bernoulli_missing", {0.0, 1.0}), ("categorical_missing", {0.0, 1.0, 2.0}),
    ("poisson_vector_missing", None)])
def test_discrete_imputations(name, support):
    model, truth = make(name)
    data = remove_entries(model.simulate(truth, n=80, seed=0).data, 0.3, 0)
    fit = fit_em(model, data, initialize(model, data, seed=0), max_iter=20)
    hidden = torch.isnan(data)
    mean, draws = fit.impute(data), fit.impute(data, draws=2, seed=1)
    for values in (mean, *draws):
        assert torch.equal(values[~hidden], data[~hidden])
        assert not bool(torch.isnan(values).any())
    for draw in draws:  # draws lie in the support
        if support is None:
            assert bool((draw >= 0).all()) and bool((draw == draw.round()).all())
        else:
            assert set(draw.unique().tolist()) <= support
    resp = fit.predict_proba(data)
    if name == "bernoulli_missing":  # the expected value of a missing feature
        torch.testing.assert_close(mean[hidden], (resp @ fit.params["probs"])[hidden])
    if name == "poisson_vector_missing":
        torch.testing.assert_close(mean[hidden], (resp @ fit.params["rates"])[hidden])
    if name == "categorical_missing":  # a label: the most probable one
        probs = torch.einsum("nk,kfc->nfc", resp, fit.params["probs"])
        assert torch.equal(mean[hidden], probs.argmax(-1).to(mean.dtype)[hidden])


def test_predict_and_score_rows_with_missing_entries():
    model = GaussianMixture(k=1, dim=3, covariance="full")
    params = model.params(weights=[1.0], locs=[MEAN.tolist()], covariances=[COVARIANCE.tolist()])
    data = gaussian_data(n=50, seed=4, fraction=0.4)
    fit = fit_em(model, data, params, max_iter=1)
    expected = [multivariate_normal(fit.params["locs"][0].numpy()[o], (
        fit.params["scale_tril"][0] @ fit.params["scale_tril"][0].T).numpy()[np.ix_(o, o)])
        .logpdf(row[o]) for row in data.numpy() for o in [~np.isnan(row)]]
    np.testing.assert_allclose(fit.score_samples(data).numpy(), expected, rtol=1e-12)
    one = torch.tensor([[math.nan, -3.0, math.nan]], dtype=torch.float64)  # a lone row
    assert fit.predict(one).tolist() == [0] and fit.impute(one).shape == (1, 3)


def test_complete_data_and_models_without_missing_values_impute_nothing():
    model, truth = make("gmm_full")
    data = model.simulate(truth, n=30, seed=0).data
    fit = fit_em(model, data, initialize(model, data, seed=0), max_iter=5)
    assert torch.equal(fit.impute(data), data)
    assert torch.equal(fit.impute(data, draws=2, seed=0), torch.stack([data, data]))
    coins = TwoCoins(k=2, tosses=10)
    heads = torch.tensor([3.0, 8.0, 4.0, 9.0])
    coins_fit = fit_em(coins, heads, coins.params(weights=[0.5, 0.5], probs=[0.8, 0.3]))
    assert torch.equal(coins_fit.impute(heads), heads.unsqueeze(-1).squeeze(-1))
    with pytest.raises(ValueError, match="draws: expected an integer >= 1"):
        fit.impute(data, draws=0)


# -- checks -------------------------------------------------------------------------------
def test_masked_arrays_are_missing_entries():
    model, truth = make("gmm_full")
    data = model.simulate(truth, n=40, seed=0).data.numpy()
    mask = np.zeros_like(data, dtype=bool)
    mask[3, 1] = mask[7, 0] = True
    masked = np.ma.masked_array(data, mask=mask)
    explicit = data.copy()
    explicit[mask] = np.nan
    params = model.check_params(truth)
    assert float(model.log_likelihood(masked, params)) == float(
        model.log_likelihood(explicit, params))


def test_a_column_never_observed_is_refused_for_fitting_not_for_prediction():
    model, truth = make("gmm_full")
    data = model.simulate(truth, n=40, seed=0).data
    init = initialize(model, data, seed=0)
    hollow = data.index_fill(1, torch.tensor([0]), math.nan)
    for call in (lambda: fit_em(model, hollow, init), lambda: fit_vi(model, hollow, init),
                 lambda: initialize(model, hollow)):
        with pytest.raises(ValueError, match="data: every entry of column 0 is missing"):
            call()
    assert model.e_step(hollow[:3], init)[0].shape == (3, 3)  # prediction needs no column


@pytest.mark.parametrize("build", [lambda: GaussianMixture(k=2, dim=1), lambda: PoissonMixture(
    k=2), lambda: KMeans(k=2, dim=1)])
def test_missing_in_one_coordinate_observations_is_a_row_with_nothing(build):
    model = build()
    with pytest.raises(ValueError, match=r"data: every entry is missing \(NaN\) in row 2"):
        initialize(model, [1.0, 2.0, math.nan, 4.0, 5.0])


def test_families_that_declare_missing_values():
    declared = {type(m.family).__name__ for m in (GaussianMixture(), BernoulliMixture(),
                                                   CategoricalMixture(), PoissonMixture(dim=2))
                if m.family.supports_missing}
    assert declared == {"Gaussian", "Bernoulli", "Categorical", "Poisson"}
    assert not TwoCoins().family.supports_missing


def test_vector_poisson_has_a_rate_per_count_and_scalar_poisson_is_unchanged():
    assert PoissonMixture(k=3).specs["rates"].shape == (3,)
    assert PoissonMixture(k=3, dim=1).describe() == "poisson_mixture(k=3, poisson)"
    assert PoissonMixture(k=3, dim=4).specs["rates"].shape == (3, 4)
    model = PoissonMixture(k=2, dim=2)
    params = model.params(weights=[0.5, 0.5], rates=[[1.0, 10.0], [5.0, 2.0]])
    data = torch.tensor([[0.0, 12.0], [math.nan, 3.0], [6.0, math.nan]], dtype=torch.float64)
    by_hand = torch.logsumexp(torch.stack([
        math.log(0.5) + torch.where(torch.isnan(data), 0.0, torch.distributions.Poisson(
            params["rates"][j]).log_prob(data.nan_to_num())).sum(-1) for j in range(2)]), 0)
    torch.testing.assert_close(model.log_likelihood(data, params), by_hand.sum(), rtol=1e-12,
                               atol=0)


def test_far_collapsed_components_take_the_centred_form_and_stay_exact():
    """A component far from the data's mean in its own units makes the natural form's
    round-off too large for the patterns that observe its coordinates: those rows use
    centred differences, still equal to Pyro's enumeration."""
    from emvi.inference import pyro_log_likelihood, pyro_posterior

    model = GaussianMixture(k=2, dim=3, covariance="full", reg_covar=0.0)
    truth = model.params(weights=[0.5, 0.5], locs=[[0.0, 0.0, 0.0], [1e4, -2e4, 5e3]],
                         covariances=[np.eye(3).tolist(), (1e-6 * np.eye(3)).tolist()])
    data = remove_entries(model.simulate(truth, n=200, seed=0).data, 0.3, 0)
    prepared = model.prepare(data, model.shift(data))
    standard = model.family._to_standard(truth, prepared.shift)
    cov = standard["scale_tril"] @ standard["scale_tril"].mT
    assert not bool(gm.embedded(prepared, standard["locs"], cov).natural.all())
    assert float(model.log_likelihood(data, truth)) == pytest.approx(
        pyro_log_likelihood(model, data, truth), rel=1e-12)
    torch.testing.assert_close(model.e_step(data, truth)[0], pyro_posterior(model, data, truth),
                               atol=1e-12, rtol=0)
    fit = fit_em(model, data, truth, max_iter=5, tol=None)
    assert bool((torch.diff(fit.objective) > -1e-9 * abs(float(fit.objective[0]))).all())


def test_the_nan_masked_normal_takes_any_broadcasting():
    """Observations that vary where the parameters do (an HMM's emissions, per-row means)
    take the per-observation path; it equals the grouped one and the observed-block
    density by hand."""
    gen = torch.Generator().manual_seed(0)
    tril = torch.linalg.cholesky(torch.as_tensor(COVARIANCE)).expand(2, 1, 3, 3)
    loc = torch.randn(2, 1, 3, generator=gen, dtype=torch.float64)
    value = remove_entries(torch.randn(40, 3, generator=gen, dtype=torch.float64), 0.4, 0)
    normal = gm.MissingMultivariateNormal(loc, scale_tril=tril)
    safe, seen = value.nan_to_num(), ~torch.isnan(value)
    grouped, each = normal._grouped(safe, seen), normal._each(safe, seen)
    torch.testing.assert_close(each, grouped, rtol=1e-12, atol=0)
    rows = torch.randn(40, 3, generator=gen, dtype=torch.float64)  # a mean per row
    per_row = gm.MissingMultivariateNormal(rows, scale_tril=tril[0, 0]).log_prob(value)
    by_hand = [multivariate_normal(rows[i].numpy()[o], COVARIANCE[np.ix_(o, o)]).logpdf(
        value[i].numpy()[o]) for i in range(40) for o in [seen[i].numpy()]]
    np.testing.assert_allclose(per_row.numpy(), by_hand, rtol=1e-12)
