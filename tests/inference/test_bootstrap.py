"""The bootstrap as a batch of restarts: weighted EM, alignment, agreement with the
observed information."""

from __future__ import annotations

import pytest
import torch
from emvi.inference import fit_em
from emvi.inference.bootstrap import bootstrap, resample_weights, summarize, weighted_em
from emvi.inference.compare import permute
from emvi.models import GaussianMixture, InputError, Params
from model_cases import make


@pytest.fixture(scope="module")
def well_identified():
    """A well-identified 1-D two-component mixture, n = 2,000, fitted by EM."""
    model = GaussianMixture(k=2, dim=1, covariance="spherical")
    truth = model.params(weights=[0.4, 0.6], locs=[[-3.0], [3.0]], scales=[1.0, 1.5])
    x = model.simulate(truth, n=2000, seed=0).data
    return model, x, fit_em(model, x, truth, tol=1e-12)


def ratios(fit, other) -> torch.Tensor:
    observed = fit.standard_errors()
    return torch.cat([(other[name] / observed[name]).reshape(-1) for name in observed])


def test_resample_weights_count_draws():
    weights = resample_weights(50, 7, torch.Generator().manual_seed(0))
    assert weights.shape == (7, 50) and bool((weights.sum(1) == 50).all())
    assert bool((weights == weights.round()).all()) and bool((weights >= 0).all())


@pytest.mark.parametrize("name", ["gmm_full", "two_coins", "regression_fixed_scales",
                                  "categorical"])
def test_weighted_em_equals_em_on_the_resampled_rows(name):
    """A resample is the data with integer weights: one batched weighted EM gives what B
    separate EMs give on the resampled rows (same start, same iterations)."""
    model, truth = make(name)
    x = model.simulate(truth, n=120, seed=1).data
    weights = resample_weights(len(x), 3, torch.Generator().manual_seed(2))
    batch, lls, _, _ = weighted_em(model, x, truth, weights, max_iter=25, tol=0.0)
    for b, row in enumerate(weights):
        rows = torch.repeat_interleave(torch.arange(len(x)), row.long())
        alone = fit_em(model, x[rows], truth, max_iter=25, tol=None)
        for key in alone.params:
            torch.testing.assert_close(batch[key][b], alone.params[key], rtol=1e-8, atol=1e-10)
        assert float(lls[b]) == pytest.approx(alone.log_likelihood, rel=1e-10)


def test_weighted_em_never_decreases_the_weighted_log_likelihood():
    model, truth = make("gmm_1d")
    x = model.simulate(truth, n=200, seed=3).data
    start = model.params(weights=[0.2, 0.3, 0.5], locs=[[0.0], [10.0], [20.0]],
                         scales=[4.0, 4.0, 4.0])
    weights = resample_weights(len(x), 4, torch.Generator().manual_seed(0))
    previous = None
    for steps in range(0, 30, 3):
        _, lls, _, _ = weighted_em(model, x, start, weights, max_iter=steps, tol=0.0)
        if previous is not None:
            assert bool((lls >= previous - 1e-9 * previous.abs()).all())
        previous = lls


def test_nonparametric_bootstrap_agrees_with_the_observed_information(well_identified):
    model, x, fit = well_identified
    se = fit.standard_errors(method="bootstrap", replicates=400, seed=0)
    assert se.method == "bootstrap (nonparametric, B=400)"
    r = ratios(fit, se)
    assert bool(((r > 0.85) & (r < 1.15)).all()), r


@pytest.mark.slow
def test_parametric_bootstrap_agrees_with_the_observed_information(well_identified):
    model, x, fit = well_identified
    se = fit.standard_errors(method="bootstrap", kind="parametric", replicates=400, seed=0)
    r = ratios(fit, se)
    assert bool(((r > 0.85) & (r < 1.15)).all()), r


def test_percentile_intervals_hold_the_estimate(well_identified):
    model, x, fit = well_identified
    lower, upper = fit.confidence_intervals(method="bootstrap", replicates=50, seed=1)
    for name in lower:
        assert bool((lower[name] <= fit.params[name]).all())
        assert bool((fit.params[name] <= upper[name]).all())
    result = fit.confidence_intervals(0.5, method="bootstrap", replicates=50, seed=1)
    assert result.method == "percentile"
    assert bool((result.upper["locs"] - result.lower["locs"] < upper["locs"] - lower["locs"])
                .all())


def test_refits_come_back_aligned_to_the_estimate():
    """Refits whose components come back in another order are relabelled to the estimate
    (else the spread would mix the two components)."""
    model = GaussianMixture(k=2, dim=1, covariance="spherical")
    estimate = model.params(weights=[0.3, 0.7], locs=[[-3.0], [3.0]], scales=[1.0, 2.0])
    gen = torch.Generator().manual_seed(0)
    refits = []
    for b in range(40):
        noisy = Params({k: v * (1 + 0.01 * torch.randn(v.shape, generator=gen,
                                                         dtype=torch.float64))
                        for k, v in estimate.items()})
        noisy["weights"] = noisy["weights"] / noisy["weights"].sum()
        refits.append(permute(model, noisy, [1, 0]) if b % 2 else noisy)
    lls = torch.zeros(40, dtype=torch.float64)
    result = summarize(model, estimate, Params.stack(refits), lls, torch.ones(40, dtype=bool),
                       "test")
    assert float(result.standard_errors["locs"].max()) < 0.1  # 1% of 3, not 3
    assert any("another order" in note for note in result.notes)
    assert bool((result.replicates["locs"][:, 0] < 0).all())


def test_bootstrap_standard_errors_of_derived_quantities(well_identified):
    model, x, fit = well_identified
    from emvi.inference.uncertainty import uncertainty

    result = uncertainty(fit, "bootstrap", replicates=30, seed=2)
    value, se = result.derived(lambda p: p["locs"][1, 0] - p["locs"][0, 0])
    assert float(value) == pytest.approx(float(fit.params["locs"][1, 0] - fit.params["locs"][0,
                                                                                            0]))
    assert 0 < float(se) < 0.2


def test_bad_options_are_named(well_identified):
    model, x, fit = well_identified
    with pytest.raises(InputError, match="kind"):
        bootstrap(model, x, fit.params, replicates=5, kind="jackknife")
    with pytest.raises(InputError, match="replicates"):
        bootstrap(model, x, fit.params, replicates=1)
    with pytest.raises(InputError, match="strategy"):
        bootstrap(model, x, fit.params, replicates=5, strategy="parallel")
    with pytest.raises(TypeError):
        fit.standard_errors(replicates=5)  # an option of the bootstrap only
