"""The seed article's three worked examples, reproduced and then matched by TraceEnum_ELBO."""

from __future__ import annotations

import torch
from emvi.inference import compare, fit_em, fit_vi, initialize
from emvi.models import GaussianMixture, KMeans, TwoCoins


def assert_same_optimum(em, vi, truth):
    result = compare(em, vi, truth=truth)
    assert result.relative_gap < 1e-6, result.table()
    worst = max(result.parameter_errors[(em.method, vi.method)].values())
    assert worst < 1e-4, result.table()
    return result


def test_two_coins_from_the_seed_start():
    # true biases 0.6 and 0.2, 10 tosses, 500 trials, a fair pick, start (0.8, 0.7)
    model = TwoCoins(k=2, tosses=10, weights=[0.5, 0.5])
    truth = model.params(probs=[0.6, 0.2])
    data = model.simulate(truth, n=500, seed=0).data
    init = model.params(probs=[0.8, 0.7])
    em = fit_em(model, data, init, tol=1e-12, max_iter=10_000)
    assert em.converged
    assert torch.allclose(em.params["probs"], truth["probs"], atol=0.03), em.params
    vi = fit_vi(model, data, init, optimizer="lbfgs", steps=500, tol=1e-13)
    assert_same_optimum(em, vi, truth)


def test_kmeans_on_three_unit_variance_blobs():
    model = KMeans(k=3, dim=2)
    truth = model.params(locs=[[-6.0, -4.0], [0.0, 6.0], [7.0, -2.0]])
    sim = model.simulate(truth, n=600, seed=0, assignments="balanced")  # 200 points each
    init = initialize(model, sim.data, method="random_points", seed=1)
    lloyd = fit_em(model, sim.data, init)  # hard EM: Lloyd's algorithm
    assert lloyd.method == "hard-em" and lloyd.converged
    result = compare(lloyd, truth=truth, truth_assignments=sim.assignments)
    assert max(result.truth_errors["hard-em"].values()) < 0.3, result.table()
    assert result.ari[("hard-em", "truth")] > 0.99
    vi = fit_vi(model, sim.data, init, optimizer="lbfgs", steps=500, tol=1e-13)
    assert_same_optimum(lloyd, vi, truth)


def test_one_dimensional_mixture_from_kmeans_plus_plus():
    # (-10, 3), (30, 7), (3, 5) with 1,000 points each
    model = GaussianMixture(k=3, dim=1, covariance="spherical")
    truth = model.params(weights=[1 / 3] * 3, locs=[-10.0, 30.0, 3.0], scales=[3.0, 7.0, 5.0])
    data = model.simulate(truth, n=3000, seed=0, assignments="balanced").data
    init = initialize(model, data, method="kmeans++", seed=1)
    em = fit_em(model, data, init, tol=1e-13, max_iter=10_000)
    errors = compare(em, truth=truth).truth_errors["em"]
    assert errors["locs"] < 0.5 and errors["scales"] < 0.5, errors
    vi = fit_vi(model, data, init, optimizer="lbfgs", steps=1000, tol=1e-14)
    assert_same_optimum(em, vi, truth)
