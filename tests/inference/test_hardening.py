"""Small defects that gave wrong answers quietly: each has a test that would catch it again."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from emvi.inference import adjusted_rand_index, compare, fit_em, initialize
from emvi.inference.init import sample_proportional
from emvi.models import GaussianMixture, KMeans, Params, TwoCoins
from emvi.models.families.gaussian import _cholesky
from hypothesis import given, settings
from hypothesis import strategies as st

sklearn_metrics = pytest.importorskip("sklearn.metrics")
sklearn_cluster = pytest.importorskip("sklearn.cluster")


def test_proportional_sampling_works_beyond_two_to_the_24_points():
    n = 2**24 + 5  # torch.multinomial refuses more categories than 2^24
    weights = torch.zeros(n, dtype=torch.float64)
    weights[-1], weights[7] = 3.0, 1.0
    draws = sample_proportional(weights, 4000, torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {7, n - 1}
    assert abs(float((draws == n - 1).double().mean()) - 0.75) < 0.03


def test_kmeans_keeps_its_fixed_values_in_float64():
    model = KMeans(k=3, dim=2, scale=0.1)
    assert model.fixed["scales"].dtype == torch.float64
    assert float(model.fixed["scales"][0]) == 0.1  # not 0.10000000149 (float32)
    assert float(model.fixed["weights"][0]) == 1 / 3


def test_cholesky_jitter_touches_only_the_matrix_that_needs_it():
    good = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)
    bad = torch.tensor([[1.0, 1.0], [1.0, 1.0 - 1e-17]], dtype=torch.float64)  # not PD
    factors = _cholesky(torch.stack([good, bad, good]))
    exact = torch.linalg.cholesky(good)
    assert torch.equal(factors[0], exact) and torch.equal(factors[2], exact)
    assert bool(torch.isfinite(factors[1]).all()) and bool((factors[1].diagonal() > 0).all())


@settings(max_examples=60)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=40), st.data())
def test_adjusted_rand_index_equals_scikit_learn(a, data):
    b = data.draw(st.lists(st.integers(0, 5), min_size=len(a), max_size=len(a)))
    expected = sklearn_metrics.adjusted_rand_score(a, b)
    assert adjusted_rand_index(a, b) == pytest.approx(expected, abs=1e-12)


def test_adjusted_rand_index_of_one_point_is_one():
    assert adjusted_rand_index([3], [0]) == 1.0 == sklearn_metrics.adjusted_rand_score([3], [0])


@pytest.mark.parametrize("d, k", [(2, 3), (5, 4)])
def test_kmeans_matches_scikit_learn_from_the_same_start(d, k):
    gen = torch.Generator().manual_seed(d)
    centres = torch.randn(k, d, generator=gen, dtype=torch.float64) * 4
    x = centres[torch.randint(k, (500,), generator=gen)] + torch.randn(500, d, generator=gen,
                                                                        dtype=torch.float64)
    model = KMeans(k=k, dim=d)
    start = x[torch.randperm(500, generator=gen)[:k]]
    iterations = 6
    ours = fit_em(model, x, model.params(locs=start), max_iter=iterations, tol=None)
    anchor = sklearn_cluster.KMeans(k, init=start.numpy(), n_init=1, max_iter=iterations,
                                    tol=0.0, algorithm="lloyd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anchor.fit(x.numpy())
    if anchor.n_iter_ == iterations:  # scikit-learn stops early once labels stop changing
        np.testing.assert_allclose(ours.params["locs"].numpy(), anchor.cluster_centers_,
                                   rtol=1e-10, atol=1e-10)
    converged = fit_em(model, x, model.params(locs=start), max_iter=300, tol=0.0)
    full = sklearn_cluster.KMeans(k, init=start.numpy(), n_init=1, max_iter=300, tol=0.0,
                                  algorithm="lloyd").fit(x.numpy())
    np.testing.assert_allclose(converged.params["locs"].numpy(), full.cluster_centers_,
                               rtol=1e-10, atol=1e-10)
    assert np.array_equal(converged.assignments.numpy(), full.labels_)
    inertia = float(((x - converged.params["locs"][converged.assignments]) ** 2).sum())
    assert inertia == pytest.approx(full.inertia_, rel=1e-10)


def test_comparison_table_keeps_wide_numbers_apart():
    model = GaussianMixture(k=2, dim=1, covariance="spherical")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 1, generator=gen, dtype=torch.float64) * 30
    x[:2000] += 400
    fit = fit_em(model, x, initialize(model, x, seed=0))
    table = compare(fit, fit, names=["first", "second"]).table()
    row = next(line for line in table.splitlines() if line.startswith("log-likelihood"))
    assert len(row.split()) == 3, row  # label and two numbers, not run together


def test_compare_refuses_what_cannot_be_compared():
    coins = TwoCoins(k=2)
    x = coins.simulate(coins.params(weights=[0.5, 0.5], probs=[0.7, 0.2]), n=50).data
    a = fit_em(coins, x, coins.params(weights=[0.5, 0.5], probs=[0.8, 0.3]), max_iter=3)
    other = TwoCoins(k=3)
    b = fit_em(other, x, other.params(weights=[0.3, 0.3, 0.4], probs=[0.8, 0.5, 0.3]),
               max_iter=3)
    with pytest.raises(ValueError, match="fits: expected fits of one model"):
        compare(a, b)
    with pytest.raises(ValueError, match="truth_assignments: expected 50 labels"):
        compare(a, a, names=["x", "y"], truth_assignments=[0, 1])
    with pytest.raises(ValueError, match="names: expected one label per fit"):
        compare(a, a, names=["only one"])
    with pytest.raises(TypeError, match="fits: expected Fit results"):
        compare(a, Params())
