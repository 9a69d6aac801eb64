"""Priors: MAP-EM beside the same program's MAP by TraceEnum_ELBO with an AutoDelta guide."""

from __future__ import annotations

import pytest
import torch
from emvi.inference.compare import alignment, permute
from emvi.inference.enumeration import pyro_log_posterior, pyro_posterior_gradient

import emvi

GAUSS = {"weights": {"concentration": 2.0}, "locs": {"mean": [0.0, 1.0], "strength": 0.1}}
SCALE = {"full": {"covariances": {"scale": 0.5, "df": 5.0}},
         "tied": {"covariances": {"scale": [0.5, 0.8], "df": 4.0}},
         "diag": {"variances": {"shape": 2.0, "rate": 0.5}},
         "spherical": {"variances": {"shape": 3.0, "rate": 1.0}}}


def gaussian(covariance):
    return emvi.GaussianMixture(k=2, dim=2, covariance=covariance,
                                prior={**GAUSS, **SCALE[covariance]})


CASES = {
    **{f"gmm_{c}": (lambda c=c: gaussian(c)) for c in SCALE},
    "bernoulli": lambda: emvi.BernoulliMixture(k=2, dim=5, prior={
        "weights": {"concentration": 3.0}, "probs": {"a": 2.0, "b": 3.0}}),
    "categorical": lambda: emvi.CategoricalMixture(k=2, categories=3, dim=4, prior={
        "probs": {"concentration": 1.5}}),
    "poisson": lambda: emvi.PoissonMixture(k=2, prior={"rates": {"shape": 2.0, "rate": 0.1}}),
    "exponential": lambda: emvi.ExponentialMixture(k=2, prior={"rates": {"shape": 3.0,
                                                                        "rate": 1.0}}),
    "two_coins": lambda: emvi.TwoCoins(k=2, prior={"probs": {"a": 2.0, "b": 2.0},
                                                  "weights": {"concentration": 2.0}}),
    "regression": lambda: emvi.RegressionMixture(k=2, features=1, reg_covar=0.0, prior={
        "coefs": {"mean": 0.0, "sd": 2.0}}),
}
TRUTH = {
    "gmm": {"weights": [0.4, 0.6], "locs": [[0.0, 0.0], [5.0, 4.0]]},
    "bernoulli": {"weights": [0.4, 0.6], "probs": [[0.9, 0.8, 0.9, 0.1, 0.2],
                                                   [0.1, 0.2, 0.2, 0.8, 0.9]]},
    "categorical": {"weights": [0.4, 0.6],
                    "probs": [[[0.8, 0.1, 0.1]] * 4, [[0.1, 0.2, 0.7]] * 4]},
    "poisson": {"weights": [0.4, 0.6], "rates": [2.0, 15.0]},
    "exponential": {"weights": [0.4, 0.6], "rates": [5.0, 0.3]},
    "two_coins": {"weights": [0.4, 0.6], "probs": [0.8, 0.2]},
    "regression": {"weights": [0.5, 0.5], "coefs": [[1.0, 2.0], [-2.0, -1.0]],
                   "scales": [0.5, 0.8]},
}


def setting(name, n=400, seed=0):
    model = CASES[name]()
    key = "gmm" if name.startswith("gmm") else name
    truth = dict(TRUTH[key])
    if key == "gmm":
        cov = model.family.covariance
        truth.update({"scales": [1.0, 0.7]} if cov == "spherical" else
                     {"scales": [[1.0, 0.7], [0.6, 1.2]]} if cov == "diag" else
                     {"covariances": [[1.0, 0.3], [0.3, 0.8]]} if cov == "tied" else
                     {"covariances": [[[1.0, 0.3], [0.3, 0.8]], [[0.7, -0.2], [-0.2, 1.1]]]})
    plain = type(model)(**{k: v for k, v in model._construction[1].items() if k != "prior"})
    data = plain.simulate(plain.params(**truth), n=n, seed=seed).data
    return model, data


@pytest.mark.parametrize("name", sorted(CASES))
def test_map_em_reaches_the_autodelta_map(name):
    model, data = setting(name)
    init = emvi.initialize(model, data, method="kmeans++", seed=0)
    em = emvi.fit_em(model, data, init, tol=1e-14, max_iter=20_000)
    vi = emvi.fit_vi(model, data, init, tol=1e-15, steps=3000)
    assert vi.method == "vi-map-lbfgs"
    log_posterior = float(em.objective[-1])
    assert log_posterior == pytest.approx(pyro_log_posterior(model, data, em.params), rel=1e-9)
    assert float(vi.objective[-1]) == pytest.approx(log_posterior, rel=1e-6)
    aligned = permute(model, vi.params, alignment(model, em.params, vi.params))
    for key in em.params:
        torch.testing.assert_close(aligned[key], em.params[key], atol=1e-4, rtol=0)
    assert em.log_likelihood == pytest.approx(vi.log_likelihood, rel=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_map_em_is_monotone_in_the_log_posterior(name):
    model, data = setting(name, n=120, seed=3)
    gen = torch.Generator().manual_seed(1)
    start = model.check_params(model.random_params(data, gen))
    for hard in (False, True):
        fit = emvi.fit_em(model, data, start, max_iter=40, tol=None, hard=hard)
        steps = torch.diff(fit.objective)
        scale = 1e-10 * fit.objective.abs().max()
        events = {e["iteration"] for e in fit.events}
        assert all(float(s) >= -scale for i, s in enumerate(steps) if i not in events), (
            hard, steps.min())


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_log_posteriors_gradient_vanishes_at_map_ems_fixed_point(name):
    model, data = setting(name)
    fit = emvi.fit_em(model, data, emvi.initialize(model, data, seed=0), tol=1e-14,
                      max_iter=50_000)
    assert fit.converged
    for param, grad in pyro_posterior_gradient(model, data, fit.params).items():
        assert float(grad.abs().max()) / data.shape[0] < 1e-6, param


def test_a_prior_cures_the_collapse_of_maximum_likelihood():
    gen = torch.Generator().manual_seed(0)
    data = torch.cat([torch.randn(200, 2, generator=gen, dtype=torch.float64),
                      torch.tensor([[9.0, 9.0]], dtype=torch.float64)])
    start = emvi.GaussianMixture(k=2, dim=2).params(
        weights=[0.9, 0.1], locs=[[0.0, 0.0], [9.0, 9.0]],
        covariances=[[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.0], [0.0, 0.5]]])
    ml = emvi.GaussianMixture(k=2, dim=2, reg_covar=1e-10)
    fit = emvi.fit_em(ml, data, start, max_iter=200)
    assert any("collapsed" in note for note in fit.notes)  # the lone point takes a component
    cured = emvi.GaussianMixture(k=2, dim=2, prior={"covariances": {"scale": 0.5, "df": 4.0}})
    fit = emvi.fit_em(cured, data, start, max_iter=200)
    assert not any("collapsed" in note for note in fit.notes), fit.notes
    smallest = torch.linalg.svdvals(fit.params["scale_tril"]).min() ** 2
    assert float(smallest) > 0.05  # bounded away from zero by the prior's scale
    vi = emvi.fit_vi(cured, data, start, steps=500)
    assert float(vi.objective[-1]) == pytest.approx(float(fit.objective[-1]), rel=1e-6)


@pytest.mark.parametrize("prior, words", [
    ({"weights": {"concentration": -1.0}}, "prior.weights.concentration: expected values >= 1"),
    ({"weights": {"concentration": 0.5}}, "the mode lies on the boundary"),
    ({"rates": {"shape": 2.0}}, "prior.rates: this model has no prior on 'rates'"),
    ({"weights": {"alpha": 2.0}}, "prior.weights.alpha: unknown hyperparameter"),
    ({"weights": 2.0}, "prior.weights: expected a table"),
])
def test_bad_priors_are_refused_naming_the_key(prior, words):
    with pytest.raises((ValueError, TypeError), match=words.replace("(", r"\(")):
        emvi.GaussianMixture(k=2, dim=1, prior=prior)


def test_a_prior_on_a_fixed_parameter_is_refused():
    with pytest.raises(ValueError, match="prior.weights: weights is fixed"):
        emvi.TwoCoins(k=2, weights=[0.5, 0.5], prior={"weights": {"concentration": 2.0}})
    with pytest.raises(ValueError, match="prior.covariances: scale_tril is fixed"):
        emvi.GaussianMixture(k=1, dim=1, fixed={"covariances": [[[1.0]]]},
                             prior={"covariances": {"scale": 1.0}})


def test_posterior_kinds_are_checked():
    model = emvi.GaussianMixture(k=2, dim=1)
    data = torch.randn(30, 1, dtype=torch.float64)
    init = emvi.initialize(model, data, seed=0)
    with pytest.raises(ValueError, match="posterior: 'map' needs priors"):
        emvi.fit_vi(model, data, init, posterior="map")
    with_prior = emvi.GaussianMixture(k=2, dim=1, prior={"weights": {"concentration": 2.0}})
    with pytest.raises(ValueError, match="use optimizer='adam'"):
        emvi.fit_vi(with_prior, data, init, posterior="normal")
