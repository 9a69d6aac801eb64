"""Numerical edge cases: each has a regression test, and none may produce NaN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference import fit_em, fit_vi
from models import COVARIANCE_TYPES, GaussianMixture, KMeans, PoissonMixture, TwoCoins


def blobs(n=120, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    x[: n // 2] += 6
    return x


def finite(fit) -> bool:
    return (bool(torch.isfinite(fit.objective).all()) and np.isfinite(fit.log_likelihood)
            and all(bool(torch.isfinite(v).all()) for v in fit.params.values())
            and bool(torch.isfinite(fit.responsibilities).all()))


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_point_far_from_every_component(covariance):
    model = GaussianMixture(k=2, dim=2, covariance=covariance)
    x = blobs()
    init = model.initialize(x, seed=0)
    far = torch.cat([x, torch.tensor([[1e6, -1e6]], dtype=torch.float64)])
    assert np.isfinite(float(model.log_likelihood(far, init)))
    for fit in (fit_em(model, far, init, max_iter=100),
                fit_vi(model, far, init, optimizer="lbfgs", steps=50)):
        assert finite(fit), fit.method
        assert torch.allclose(fit.responsibilities.sum(-1), torch.ones(len(far),
                                                                       dtype=torch.float64))


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_component_collapsing_onto_one_point_is_floored_and_reported(covariance):
    model = GaussianMixture(k=3, dim=2, covariance=covariance)
    x = torch.cat([blobs(), torch.tensor([[40.0, 40.0]], dtype=torch.float64)])
    init = model.initialize(x, method="kmeans++", seed=0)
    em = fit_em(model, x, init, max_iter=300)
    assert finite(em)
    if covariance != "tied":  # one component owns the lone point: variance at the floor
        assert any("collapsed" in note and "reg_covar" in note for note in em.notes), em.notes
    vi = fit_vi(model, x, init, optimizer="lbfgs", steps=300)
    assert finite(vi)  # VI has no floor: it may stop early, but reports finite parameters


def test_vi_stops_at_a_non_finite_objective_and_says_so():
    model = GaussianMixture(k=2, dim=1, covariance="spherical")
    x = torch.cat([torch.randn(100, 1, dtype=torch.float64), torch.full((1, 1), 20.0,
                                                                        dtype=torch.float64)])
    init = model.params(weights=[0.5, 0.5], locs=[0.0, 20.0], scales=[1.0, 0.5])
    fit = fit_vi(model, x, init, optimizer="lbfgs", steps=3000)
    assert finite(fit)
    assert not fit.converged or fit.notes


def test_empty_cluster_in_kmeans_moves_to_the_farthest_point():
    model = KMeans(k=3, dim=2)
    x = blobs()
    init = model.params(locs=[[0.0, 0.0], [0.1, 0.0], [500.0, 500.0]])  # one centre far away
    fit = fit_em(model, x, init)
    assert [e["component"] for e in fit.events] == [2]
    assert fit.events[0]["iteration"] == 0
    assert len(torch.unique(fit.assignments)) == 3  # every cluster has points again
    assert finite(fit)


@pytest.mark.parametrize("build", [lambda: KMeans(k=3, dim=2), lambda: GaussianMixture(k=3, dim=2),
                                   lambda: GaussianMixture(k=2, dim=2, covariance="spherical")])
def test_all_points_identical(build):
    model = build()
    same = torch.full((40, 2), 3.0, dtype=torch.float64)
    init = model.initialize(same, seed=0)
    for fit in (fit_em(model, same, init, max_iter=50),
                fit_vi(model, same, init, optimizer="lbfgs", steps=50),
                fit_vi(model, same, init, optimizer="adam", steps=50)):
        assert finite(fit), (fit.method, fit.notes)
        assert torch.allclose(fit.params["locs"].mean(0), torch.full((2,), 3.0,
                                                                      dtype=torch.float64))


@pytest.mark.parametrize("build", [lambda: GaussianMixture(k=1, dim=2),
                                   lambda: TwoCoins(k=1), lambda: PoissonMixture(k=1),
                                   lambda: KMeans(k=1, dim=2)])
def test_one_component(build):
    model = build()
    data = model.simulate(model.check_params(model.random_params(
        blobs() if model.specs.get("locs") else torch.arange(10.0), torch.Generator()
        .manual_seed(0))), n=200, seed=0).data
    init = model.initialize(data, seed=0)
    em = fit_em(model, data, init)
    vi = fit_vi(model, data, init, optimizer="lbfgs", steps=100)
    assert finite(em) and finite(vi)
    assert em.iterations <= 2  # one component: the first M-step is the maximum
    assert vi.log_likelihood == pytest.approx(em.log_likelihood, rel=1e-6)


def test_float32_data_is_promoted_with_a_note():
    model = GaussianMixture(k=2, dim=2)
    x32 = blobs().float()
    init = model.initialize(x32, seed=0)
    for fit in (fit_em(model, x32, init), fit_vi(model, x32, init, steps=5)):
        assert fit.params["locs"].dtype == torch.float64
        assert any("float32" in note for note in fit.notes)
    same = fit_em(model, x32.double(), init)
    assert fit_em(model, x32, init).log_likelihood == same.log_likelihood  # same numbers


def test_all_zero_counts():
    model = PoissonMixture(k=2)
    zeros = torch.zeros(30, dtype=torch.float64)
    init = model.initialize(zeros, seed=0)
    assert finite(fit_em(model, zeros, init)) and finite(fit_vi(model, zeros, init, steps=20))
