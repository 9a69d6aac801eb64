"""Numerical edge cases: each has a regression test, and none may produce NaN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from emvi.inference import fit_em, fit_vi, initialize
from emvi.models import COVARIANCE_TYPES, GaussianMixture, KMeans, PoissonMixture, TwoCoins


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
    init = initialize(model, x, seed=0)
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
    init = initialize(model, x, method="kmeans++", seed=0)
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
    init = model.params(locs=[[0.0, 0.0], [6.0, 6.0], [-500.0, -500.0]])  # centre 2 is empty
    fit = fit_em(model, x, init)
    assert [e["component"] for e in fit.events] == [2]
    assert fit.events[0]["iteration"] == 0
    centres = init["locs"][:2]
    farthest = int(torch.cdist(x, centres).amin(1).argmax())  # from its own centre
    nearest = int(torch.cdist(x, init["locs"][2:]).argmin())  # to the empty centre
    assert farthest != nearest  # the test tells the two rules apart
    torch.testing.assert_close(fit.param_trace[1]["locs"][2], x[farthest], rtol=0, atol=1e-9)
    assert len(torch.unique(fit.assignments)) == 3  # every cluster has points again
    assert finite(fit)


@pytest.mark.parametrize("build", [lambda: KMeans(k=4, dim=2),
                                   lambda: GaussianMixture(k=3, dim=2, covariance="diag")])
def test_hard_em_in_chunks_equals_hard_em_on_all_data(build):
    model = build()
    x = blobs(203)
    locs = [[0.0, 0.0], [6.0, 6.0], [3.0, 3.0], [-400.0, 9.0]][: model.k]  # one empty (k=4)
    init = initialize(model, x, seed=0)
    init["locs"] = torch.tensor(locs, dtype=torch.float64)
    whole = fit_em(model, x, init, hard=True, max_iter=20, tol=None)
    chunked = fit_em(model, x, init, hard=True, max_iter=20, tol=None, chunk_size=17)
    assert whole.events == chunked.events
    torch.testing.assert_close(chunked.objective, whole.objective, rtol=1e-12, atol=0)
    for key in whole.params:
        torch.testing.assert_close(chunked.params[key], whole.params[key], rtol=1e-10, atol=1e-12)
    assert torch.equal(chunked.assignments, whole.assignments)


@pytest.mark.parametrize("build", [lambda: KMeans(k=3, dim=2), lambda: GaussianMixture(k=3, dim=2),
                                   lambda: GaussianMixture(k=2, dim=2, covariance="spherical")])
def test_all_points_identical(build):
    model = build()
    same = torch.full((40, 2), 3.0, dtype=torch.float64)
    init = initialize(model, same, seed=0)
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
    init = initialize(model, data, seed=0)
    em = fit_em(model, data, init)
    vi = fit_vi(model, data, init, optimizer="lbfgs", steps=100)
    assert finite(em) and finite(vi)
    assert em.iterations <= 2  # one component: the first M-step is the maximum
    assert vi.log_likelihood == pytest.approx(em.log_likelihood, rel=1e-6)


def test_float32_data_is_promoted_with_a_note():
    model = GaussianMixture(k=2, dim=2)
    x32 = blobs().float()
    x64 = x32.to(torch.float64)  # the same values, exactly
    init = initialize(model, x64, seed=0)
    for fit, path in ((fit_em(model, x32, init), fit_em), (fit_vi(model, x32, init, steps=5),
                                                           fit_vi)):
        assert fit.params["locs"].dtype == torch.float64
        assert any("float32" in note for note in fit.notes)
        reference = path(model, x64, init) if path is fit_em else path(model, x64, init, steps=5)
        assert fit.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-13)
    # computing in float32 would not agree to that precision: the comparison can tell
    params32 = {k: v.float() for k, v in init.items()}
    joint32 = torch.stack([torch.distributions.MultivariateNormal(
        params32["locs"][j], scale_tril=params32["scale_tril"][j]).log_prob(x32)
        + params32["weights"][j].log() for j in range(2)], -1)
    ll32 = float(torch.logsumexp(joint32, -1).sum())
    ll64 = float(model.log_likelihood(x64, init))
    assert abs(ll32 - ll64) > 1e-9 * abs(ll64)


def test_all_zero_counts():
    model = PoissonMixture(k=2)
    zeros = torch.zeros(30, dtype=torch.float64)
    init = initialize(model, zeros, seed=0)
    assert finite(fit_em(model, zeros, init)) and finite(fit_vi(model, zeros, init, steps=20))


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_reg_covar_zero_on_repeated_points_gives_no_nan(covariance):
    """Without a floor a component on repeated points has variance exactly 0; float64's
    resolution near the mean floors it instead (and the note says so)."""
    model = GaussianMixture(k=2, dim=2, covariance=covariance, reg_covar=0.0)
    x = torch.cat([torch.full((30, 2), 3.0, dtype=torch.float64), blobs(60) + 20])
    for method in ("kmeans++", "kmeans", "random_points", "random"):
        init = initialize(model, x, method=method, seed=1)
        scale = init[model.family.cov_name]
        assert bool(torch.isfinite(scale).all()), method
        em = fit_em(model, x, init, max_iter=30)
        assert finite(em), (method, em.notes)
        vi = fit_vi(model, x, init, steps=20)
        assert finite(vi), (method, vi.notes)
    same = torch.full((40, 2), 3.0, dtype=torch.float64)
    fit = fit_em(model, same, initialize(model, same, seed=0), max_iter=10)
    assert finite(fit)


def test_every_init_lies_inside_the_support_on_identical_rows():
    from emvi.models import CategoricalMixture

    model = CategoricalMixture(k=3, categories=4, dim=2)
    rows = torch.tensor([[1.0, 2.0]] * 25, dtype=torch.float64)
    for method in ("random", "random_points", "kmeans++", "kmeans", "random_params"):
        init = initialize(model, rows, method=method, seed=0)
        probs = init["probs"]
        assert bool((probs >= 0).all()), method
        torch.testing.assert_close(probs.sum(-1), torch.ones(3, 2, dtype=torch.float64))
        assert finite(fit_em(model, rows, init, max_iter=5))


def test_a_generic_m_step_stays_inside_the_support_when_the_likelihood_is_unbounded():
    """A Gamma mixture on identical points: the shape can grow without bound; the M-step
    stops at a finite value with an expected log-likelihood no lower than its start's."""
    import pyro
    import pyro.distributions as dist
    from emvi.models import ParamSpec, PyroModel
    from emvi.models.families import pick
    from torch.distributions import constraints

    class GammaMixture(PyroModel):
        def __init__(self, k=2):
            super().__init__(k, {"weights": ParamSpec((k,), constraints.simplex),
                                 "concentration": ParamSpec((k,), constraints.positive),
                                 "rate": ParamSpec((k,), constraints.positive)})

        def program(self, params, data=None, n=None):
            with pyro.plate("data", data.shape[0] if data is not None else n):
                z = pyro.sample("assignment", dist.Categorical(params["weights"]))
                pyro.sample("obs", dist.Gamma(pick(params["concentration"], z),
                                              pick(params["rate"], z)), obs=data)

    model = GammaMixture()
    same = torch.full((30,), 2.5, dtype=torch.float64)
    for method in ("kmeans++", "random", "random_params"):
        init = initialize(model, same, method=method, seed=0)
        for name, value in init.items():
            assert bool(torch.isfinite(value).all()), (method, name, value)
            assert bool(model.specs[name].constraint.check(value).all()), (method, name)


def test_chunked_em_builds_no_n_by_k_responsibilities_until_asked():
    model = GaussianMixture(k=4, dim=2, covariance="diag")
    x = blobs(1000)
    init = initialize(model, x, seed=0)
    chunked = fit_em(model, x, init, chunk_size=64, max_iter=10, record_params=False)
    assert chunked._responsibilities is None  # memory stayed at the data plus one chunk
    whole = fit_em(model, x, init, max_iter=10)
    torch.testing.assert_close(chunked.responsibilities, whole.responsibilities)
    assert torch.equal(chunked.assignments, whole.assignments)
