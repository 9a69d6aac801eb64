"""Dirichlet priors on an HMM's initial and transition rows (and the family's own priors):
MAP Baum-Welch beside the same program's MAP by TraceEnum_ELBO (AutoDelta)."""

from __future__ import annotations

import pytest
import torch
from emvi.inference import pyro_log_posterior, pyro_posterior_gradient

from emvi import GaussianHMM, fit_em, fit_vi, initialize

PRIOR = {"initial": {"concentration": 2.0}, "transition": {"concentration": 3.0},
         "variances": {"shape": 2.0, "rate": 1.0}}


def setting():
    model = GaussianHMM(k=2, dim=1, covariance="diag", prior=PRIOR)
    truth = model.params(initial=[0.6, 0.4], transition=[[0.9, 0.1], [0.2, 0.8]],
                         locs=[[-2.0], [2.0]], scales=[[1.0], [0.7]])
    data = model.simulate(truth, lengths=[50, 40, 30], seed=0).data
    return model, data, initialize(model, data, seed=0)


def test_map_baum_welch_is_the_programs_map():
    model, data, init = setting()
    em = fit_em(model, data, init, tol=1e-13, max_iter=3000)
    assert em.converged
    assert bool((torch.diff(em.objective) >= -1e-9).all())  # monotone in the log posterior
    assert float(em.objective[-1]) == pytest.approx(pyro_log_posterior(model, data, em.params),
                                                    rel=1e-10)
    for name, grad in pyro_posterior_gradient(model, data, em.params).items():
        assert float(grad.abs().max()) < 1e-4, name
    vi = fit_vi(model, data, init, posterior="map", steps=300, tol=1e-13)
    assert float(vi.objective[-1]) == pytest.approx(float(em.objective[-1]), rel=1e-6)
    for name in ("initial", "transition", "locs", "scales"):
        torch.testing.assert_close(vi.params[name], em.params[name], atol=1e-4, rtol=0)


def test_the_transition_prior_pulls_rows_towards_uniform():
    model, data, init = setting()
    plain = GaussianHMM(k=2, dim=1, covariance="diag")
    ml = fit_em(plain, data, init, tol=1e-12, max_iter=3000).params["transition"]
    strong = GaussianHMM(k=2, dim=1, covariance="diag",
                         prior={"transition": {"concentration": 200.0}})
    shrunk = fit_em(strong, data, init, tol=1e-12, max_iter=3000).params["transition"]
    assert bool(((shrunk - 0.5).abs() < (ml - 0.5).abs()).all())


@pytest.mark.parametrize("prior,words", [
    ({"transition": {"concentration": 0.5}}, "prior.transition.concentration"),
    ({"emission": {"concentration": 2.0}}, "prior.emission"),
])
def test_bad_hmm_priors_are_refused_naming_the_key(prior, words):
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        GaussianHMM(k=2, prior=prior)


def test_a_fixed_transition_takes_no_prior():
    with pytest.raises(ValueError, match="transition is fixed"):
        GaussianHMM(k=2, fixed={"transition": [[0.9, 0.1], [0.2, 0.8]]},
                    prior={"transition": {"concentration": 2.0}})
