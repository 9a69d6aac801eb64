"""Convergence that does not depend on the data's units, and what a batch of restarts reports."""

from __future__ import annotations

import math

import pytest
import torch
from emvi.inference import fit_em, fit_vi, initialize
from emvi.inference.em import best_restart
from emvi.models import GaussianMixture, KMeans


def heights(n=600, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    x[: n // 3] = x[: n // 3] * 3 - 10
    x[n // 3: 2 * n // 3] = x[n // 3: 2 * n // 3] * 7 + 30
    x[2 * n // 3:] = x[2 * n // 3:] * 5 + 3
    return x


@pytest.mark.parametrize("hard", [False, True])
def test_rescaling_the_data_leaves_the_iteration_count_unchanged(hard):
    model = GaussianMixture(k=3, dim=1, covariance="spherical", reg_covar=0.0)
    x = heights()
    init = model.params(weights=[0.2, 0.3, 0.5], locs=[-5.0, 10.0, 20.0], scales=[2.0, 4.0, 6.0])
    counts = set()
    for unit in (1e-3, 1.0, 1e3, 1e6):  # kilometres, metres, millimetres, micrometres
        scaled = {"weights": init["weights"], "locs": init["locs"] * unit,
                  "scales": init["scales"] * unit}
        fit = fit_em(model, x * unit, scaled, tol=1e-9, max_iter=5000, hard=hard)
        assert fit.converged
        counts.add(fit.iterations)
    assert len(counts) == 1, counts


def test_vi_stops_on_the_same_unit_free_rule():
    model = GaussianMixture(k=3, dim=1, covariance="spherical", reg_covar=0.0)
    x = heights()
    init = initialize(model, x, seed=0)
    fit = fit_vi(model, x, init, tol=1e-6, steps=500)
    assert fit.converged
    change = abs(float(fit.objective[-2] - fit.objective[-3])) / len(x)
    assert change <= 1e-6  # the step that stopped it: per observation, absolute


def test_best_restart_is_the_highest_objective_and_never_nan():
    assert best_restart(torch.tensor([-5.0, -1.0, -3.0])) == 1
    assert best_restart(torch.tensor([math.nan, -7.0, -9.0])) == 1
    assert best_restart(torch.tensor([-7.0, math.nan, -2.0])) == 2
    assert best_restart(torch.tensor([-math.inf, -1e300], dtype=torch.float64)) == 1


def restarts_setting():
    model = GaussianMixture(k=3, dim=1, covariance="spherical")
    x = heights()
    good = fit_em(model, x, initialize(model, x, seed=0), tol=1e-12, max_iter=5000).params
    far = model.params(weights=[0.1, 0.1, 0.8], locs=[-30.0, 60.0, 61.0], scales=[1.0, 1.0, 1.0])
    return model, x, good, far


def test_restarts_report_every_objective_and_keep_the_best():
    model, x, good, far = restarts_setting()
    from emvi.models import Params

    batch = Params.stack([far, good, far])
    fit = fit_em(model, x, batch, tol=1e-10, max_iter=3000)
    assert fit.restart_objectives.shape == (3,) and fit.restart_log_likelihoods.shape == (3,)
    assert fit.best_restart == int(fit.restart_objectives.argmax())
    assert fit.best_restart == 1  # the start at the optimum
    assert fit.log_likelihood == pytest.approx(float(model.log_likelihood(x, fit.params)),
                                               rel=1e-12)
    # each restart is what it would be alone: the converged one stopped and did not move
    alone = fit_em(model, x, good, tol=1e-10, max_iter=3000)
    assert fit.iterations == alone.iterations
    assert fit.converged == alone.converged
    for key in fit.params:
        torch.testing.assert_close(fit.params[key], alone.params[key], rtol=1e-13, atol=0)
    slow = fit_em(model, x, far, tol=1e-10, max_iter=3000)
    assert float(fit.restart_log_likelihoods[0]) == pytest.approx(slow.log_likelihood, rel=1e-12)
    assert slow.iterations > fit.iterations  # the slow restart ran on after the best stopped


def test_hard_em_keeps_the_lowest_inertia_and_reports_marginals_beside_it():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(300, 2, generator=gen, dtype=torch.float64)
    x[:100] += 4
    model = KMeans(k=4, dim=2)
    batch = initialize(model, x, method="random_points", seed=5, restarts=8)
    fit = fit_em(model, x, batch)
    assert fit.method == "hard-em"
    inertia = -2 * fit.restart_objectives  # the classification objective is -inertia/2 + c
    assert fit.best_restart == int(inertia.argmin())
    assert torch.isfinite(fit.restart_log_likelihoods).all()
    assert fit.log_likelihood == pytest.approx(float(model.log_likelihood(x, fit.params)),
                                               rel=1e-12)


def test_the_best_restarts_convergence_is_reported_with_a_note():
    model, x, good, far = restarts_setting()
    fit = fit_em(model, x, far, tol=1e-12, max_iter=3)
    assert not fit.converged
    assert any("not converged" in note and "max_iter=3" in note for note in fit.notes)
    vi = fit_vi(model, x, far, steps=2, tol=1e-12)
    assert not vi.converged and any("not converged" in note for note in vi.notes)
