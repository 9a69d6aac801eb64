"""A grouped (hierarchical) mixture: EM with per-group weights and an empirical-Bayes
concentration beside VI with the weights as sample sites (AutoDelta) on nested plates."""

from __future__ import annotations

import pytest
import torch
from emvi.inference.compare import alignment, permute
from emvi.inference.enumeration import (
    pyro_log_likelihood,
    pyro_log_posterior,
    pyro_posterior,
    pyro_posterior_gradient,
)
from emvi.inference.pooling import pooling_summary
from emvi.models.grouped import dirichlet_concentration

import emvi

WEIGHTS = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8],
           [0.5, 0.4, 0.1], [0.2, 0.6, 0.2]]


def setting(n=600, seed=0, reg_covar=1e-6):
    model = emvi.GroupedGaussianMixture(k=3, groups=6, dim=1, covariance="spherical",
                                        reg_covar=reg_covar)
    truth = model.params(weights=WEIGHTS, concentration=[2.0, 2.0, 2.0],
                         locs=[[-5.0], [0.0], [5.0]], scales=[1.0, 1.2, 0.8])
    return model, truth, model.simulate(truth, n=n, seed=seed).data


def test_hand_log_likelihood_and_posterior_equal_the_program():
    model, truth, data = setting()
    gen = torch.Generator().manual_seed(4)
    params = model.check_params(model.random_params(data, gen))
    assert float(model.log_likelihood(data, params)) == pytest.approx(
        pyro_log_likelihood(model, data, params), rel=1e-9)
    hand = float(model.log_likelihood(data, params) + model.log_prior(params))
    assert hand == pytest.approx(pyro_log_posterior(model, data, params), rel=1e-9)
    torch.testing.assert_close(model.e_step(data, params)[0],
                               pyro_posterior(model, data, params), atol=1e-9, rtol=0)


def test_em_and_autodelta_vi_reach_the_same_joint_mode():
    model, truth, data = setting()
    init = emvi.initialize(model, data, seed=0)
    em = emvi.fit_em(model, data, init, tol=1e-14, max_iter=20_000)
    assert bool((torch.diff(em.objective) >= -1e-9).all())  # monotone in the joint density
    vi = emvi.fit_vi(model, data, init, steps=3000, tol=1e-15)
    assert vi.method == "vi-map-lbfgs"
    assert float(vi.objective[-1]) == pytest.approx(float(em.objective[-1]), rel=1e-6)
    aligned = permute(model, vi.params, alignment(model, em.params, vi.params))
    for key in em.params:
        torch.testing.assert_close(aligned[key], em.params[key], atol=1e-4, rtol=0)


def test_the_joint_gradient_vanishes_at_ems_fixed_point():
    model, truth, data = setting(reg_covar=0.0)
    fit = emvi.fit_em(model, data, emvi.initialize(model, data, seed=0), tol=1e-14,
                      max_iter=50_000)
    for name, grad in pyro_posterior_gradient(model, data, fit.params).items():
        assert float(grad.abs().max()) / data.shape[0] < 1e-6, name


def test_the_concentration_step_finds_the_dirichlet_maximum_likelihood():
    gen = torch.Generator().manual_seed(0)
    truth = torch.tensor([3.0, 6.0, 2.0], dtype=torch.float64)
    samples = torch.distributions.Dirichlet(truth).sample((4000,))
    estimate = dirichlet_concentration(samples, torch.full((3,), 1.5, dtype=torch.float64))
    torch.testing.assert_close(estimate, truth, rtol=0.08, atol=0)
    del gen


def test_pooling_recovers_the_shared_components_better_than_each_group_alone():
    wins = 0
    for seed in range(3):
        model, truth, data = setting(n=240, seed=seed)
        fit = emvi.fit_em(model, data, emvi.initialize(model, data, seed=0), max_iter=500)
        summary = pooling_summary(model, data, fit.params, truth, max_iter=300, tol=1e-6)
        pooled = max(summary["pooled"].values())
        alone = [max(errs.values()) for errs in summary["alone"].values() if errs]
        wins += pooled < sum(alone) / len(alone)
    assert wins == 3


@pytest.mark.parametrize("call, words", [
    (lambda: emvi.GroupedGaussianMixture(k=2, groups=1), "groups: expected an integer >= 2"),
    (lambda: emvi.GroupedGaussianMixture(k=2, groups=3).initialize if False else
     emvi.initialize(emvi.GroupedGaussianMixture(k=2, groups=3), [[0, 1.0], [3, 2.0]]),
     "data[:, 0]: expected group indices in 0..2"),
    (lambda: emvi.GroupedGaussianMixture(k=2, groups=3, fixed={"concentration": [0.5, 2.0]}),
     "fixed.concentration"),
])
def test_bad_grouped_input_is_refused(call, words):
    with pytest.raises((ValueError, TypeError), match=words.replace("[", r"\[").replace(
            "]", r"\]")):
        call()
