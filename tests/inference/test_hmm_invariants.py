"""The every-model invariants on hidden Markov models (the HMM case table), on ragged
sequences: exactness against both Pyro programs, posteriors and Viterbi against Pyro's
enumeration, monotone EM, a vanishing gradient at EM's fixed point, additive statistics
over chunks of sequences and recovery of the truth as the total length grows.

The ``_missing`` cases run the same checks with 30% of the entries missing at random (whole
steps included); the slower ones run on a few of them."""

from __future__ import annotations

import copy

import pytest
import torch
from emvi.inference import (
    compare,
    fit_em,
    fit_vi,
    initialize,
    pyro_gradient,
    pyro_log_likelihood,
    pyro_map_assignments,
    pyro_posterior,
)
from emvi.models import Sequences
from emvi.models.families.missing import filled
from hypothesis import given, settings
from hypothesis import strategies as st
from model_cases import HMM_CASES, HMM_MISSING, make, observe_steps, parameter_distance

NAMES = sorted(HMM_CASES)
COMPLETE = [name for name in NAMES if name not in HMM_MISSING]
#: ragged, with a sequence of one step; the markov program loops over the longest
LENGTHS = [9, 1, 6, 4]


def program(model, kind: str):
    """The same model with the other Pyro program."""
    other = copy.copy(model)
    other.program_kind = kind
    return other


def ragged(name: str, seed: int, lengths=LENGTHS):
    """A model, simulated ragged sequences and random parameters (not the truth)."""
    model, truth = make(name)
    data = observe_steps(name, model.simulate(truth, lengths=lengths, seed=seed).data, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    return model, data, model.check_params(model.random_params(data, gen))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_log_likelihood_equals_both_pyro_programs(name, seed):
    model, data, params = ragged(name, seed)
    hand = float(model.log_likelihood(data, params))
    for kind in ("markov", "discrete_hmm"):
        assert hand == pytest.approx(pyro_log_likelihood(program(model, kind), data, params),
                                     rel=1e-9), kind


@pytest.mark.parametrize("name", NAMES)
def test_batched_restarts_equal_pyro_restart_plates(name):
    model, data, _ = ragged(name, 3)
    batch = initialize(model, data, method="random", seed=0, restarts=3)
    hand = model.log_likelihood(data, batch)
    assert hand.shape == (3,)
    for kind in ("markov", "discrete_hmm"):
        assert float(hand.sum()) == pytest.approx(
            pyro_log_likelihood(program(model, kind), data, batch), rel=1e-9), kind
    resp = model.e_step(data, batch)[0]
    assert resp.shape == (3, data.n_observations, model.k)
    torch.testing.assert_close(resp, pyro_posterior(model, data, batch), atol=1e-9, rtol=0)
    assert torch.equal(model.viterbi(data, batch), pyro_map_assignments(model, data, batch))
    # VI's per-restart objective: every restart from one trace of the DiscreteHMM program
    from emvi.inference.vi import restart_log_likelihoods

    torch.testing.assert_close(restart_log_likelihoods(model, data, batch), hand, rtol=1e-10,
                               atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_posteriors_and_viterbi_equal_pyro(name):
    model, data, params = ragged(name, 4)
    posterior = model.posterior(data, params)
    assert posterior.shape == (data.n_observations, model.k)
    torch.testing.assert_close(posterior, pyro_posterior(model, data, params), atol=1e-9, rtol=0)
    assert torch.equal(model.viterbi(data, params), pyro_map_assignments(model, data, params))


def roundoff_scale(model, data, params) -> float:
    """Round-off of the emission log densities, as for mixtures: it scales with the
    largest terms |T(x)| . |eta| (huge when a state collapsed to its variance floor)."""
    flat = filled(data.flat())  # missing entries at their column's mean: the same scale
    prepared = model.family.prepare(flat, model.family.shift(flat))
    eta, log_norm = model.family.natural(params, prepared.shift)
    terms = eta.abs() @ prepared.statistics.abs() + log_norm.abs().unsqueeze(-1)
    return 1e-12 * float(terms.amax(-2).sum()) + 1e-12 * abs(float(model.log_likelihood(data,
                                                                                       params)))


lengths_strategy = st.lists(st.integers(1, 20), min_size=1, max_size=4)


@pytest.mark.parametrize("name", COMPLETE)
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), lengths=lengths_strategy, noise=st.booleans())
def test_em_never_decreases_its_objective(name, seed, lengths, noise):
    check_monotone(name, seed, lengths, noise)


@pytest.mark.parametrize("name", sorted(HMM_MISSING))
@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 10_000), lengths=lengths_strategy, noise=st.booleans())
def test_em_never_decreases_its_objective_with_missing_entries(name, seed, lengths, noise):
    check_monotone(name, seed, lengths, noise)


def check_monotone(name, seed, lengths, noise):
    model, data, params = ragged(name, seed, lengths)
    if sum(lengths) < model.k:
        return
    if noise:  # any data: add sequences from other random parameters
        gen = torch.Generator().manual_seed(seed + 2)
        other = model.check_params(model.random_params(data, gen))
        extra = model.simulate(other, lengths=lengths, seed=seed + 3).data
        data = model.check_data(data.to_list() + extra.to_list())
    for hard in (False, True):
        fit = fit_em(model, data, params, max_iter=20, tol=0.0, hard=hard)
        steps = torch.diff(fit.objective)
        roundoff = torch.tensor([roundoff_scale(model, data, p) for p in fit.param_trace[:-1]],
                                dtype=steps.dtype)
        assert bool((steps >= -roundoff).all()), (hard, steps.min())


@pytest.mark.parametrize("name", COMPLETE + ["hmm_gaussian_full_missing",
                                             "hmm_poisson_missing"])
def test_gradient_of_pyro_objective_vanishes_at_em_fixed_point(name):
    model, truth = make(name)
    if hasattr(model.family, "reg_covar"):
        model.family.reg_covar = 0.0  # reg_covar moves EM's fixed point off the ML optimum
    data = observe_steps(name, model.simulate(truth, lengths=[100] * 4, seed=5).data, 5)
    init = initialize(model, data, method="kmeans++", seed=0)
    fit = fit_em(model, data, init, tol=1e-14, max_iter=20_000)
    assert fit.converged
    fast = program(model, "discrete_hmm")  # the same objective, vectorised over time
    for param, grad in pyro_gradient(fast, data, fit.params).items():
        assert float(grad.abs().max()) / data.n_observations < 1e-6, param


@pytest.mark.parametrize("name", NAMES)
def test_chunked_statistics_equal_whole_data(name):
    model, data, params = ragged(name, 6, lengths=[30, 7, 22, 15, 1, 40, 12])
    whole = fit_em(model, data, params, max_iter=5, tol=0.0)
    chunked = fit_em(model, data, params, max_iter=5, tol=0.0, chunk_size=2)
    torch.testing.assert_close(chunked.objective, whole.objective, rtol=1e-12, atol=0)
    for key in whole.params:
        torch.testing.assert_close(chunked.params[key], whole.params[key], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(chunked.responsibilities, whole.responsibilities)


def stationary(transition: torch.Tensor) -> torch.Tensor:
    """The stationary distribution of a transition matrix: ``(k,)``."""
    values, vectors = torch.linalg.eig(transition.T)
    v = vectors[:, torch.argmin((values - 1).abs())].real
    return v / v.sum()


def standard_error_scale(model, truth, name: str, sequences: int, steps: int) -> float:
    """``c / sqrt(size)``, about one standard error of parameter ``name``: ``size`` is the
    number of sequences for ``initial`` (one draw each), the total length for the rest,
    each state weighted by its stationary probability."""
    smallest = float(stationary(truth["transition"]).min())
    per_state = 1 / (smallest * steps) ** 0.5
    if name == "initial":
        return 0.5 / sequences ** 0.5
    if name in ("transition", "probs"):
        return 0.5 * per_state
    if name in ("locs", "scales", "scale_tril"):
        if "scales" in truth:
            sigma = float(truth["scales"].max())
        else:
            sigma = float(torch.linalg.svdvals(truth["scale_tril"]).max())
        return sigma * per_state
    if name == "rates":
        rates = truth["rates"]
        poisson = model.family.name == "poisson"
        return float(rates.max().sqrt() if poisson else rates.max()) * per_state
    raise AssertionError(f"no standard-error scale for {name}")


@pytest.mark.parametrize("name", COMPLETE)
def test_em_recovers_truth_within_a_tolerance_shrinking_with_length(name):
    """Every free parameter within 6 standard errors at 8 x 100 and 32 x 250 steps."""
    model, truth = make(name)
    for sequences, length in ((8, 100), (32, 250)):
        data = model.simulate(truth, lengths=[length] * sequences, seed=7).data
        init = initialize(model, data, method="kmeans++", seed=0, restarts=3)
        fit = fit_em(model, data, init, tol=1e-10, max_iter=5000)
        errors = compare(fit, truth=truth).truth_errors[fit.method]
        for param, error in errors.items():
            tolerance = 6 * standard_error_scale(model, truth, param, sequences,
                                                 sequences * length)
            assert error < tolerance, (sequences, length, param, error, tolerance)


@pytest.mark.parametrize("name", ["hmm_gaussian_spherical", "hmm_casino", "hmm_poisson"])
def test_vi_with_discrete_hmm_reaches_em_and_recovers_truth(name):
    model, truth = make(name)
    sequences, length = 16, 150
    data = model.simulate(truth, lengths=[length] * sequences, seed=8).data
    init = initialize(model, data, method="kmeans++", seed=0, restarts=2)
    em = fit_em(model, data, init, tol=1e-12, max_iter=5000)
    vi = fit_vi(program(model, "discrete_hmm"), data, init.select(em.best_restart, model.specs),
                steps=300, tol=1e-12)
    assert vi.log_likelihood == pytest.approx(em.log_likelihood, rel=1e-8)
    errors = compare(vi, truth=truth).truth_errors[vi.method]
    for param, error in errors.items():
        tolerance = 6 * standard_error_scale(model, truth, param, sequences, sequences * length)
        assert error < tolerance, (param, error, tolerance)


def test_sequences_of_one_step_are_a_mixture_with_initial_as_weights():
    """With every sequence one step long, the HMM is the mixture of its emissions."""
    from emvi import GaussianMixture

    model, truth = make("hmm_gaussian_spherical")
    data = model.simulate(truth, lengths=[1] * 50, seed=9).data
    mixture = GaussianMixture(k=3, dim=1, covariance="spherical")
    rows = data.flat()
    values = {"weights": truth["initial"], "locs": truth["locs"], "scales": truth["scales"]}
    assert float(model.log_likelihood(data, truth)) == pytest.approx(
        float(mixture.log_likelihood(rows, values)), rel=1e-12)
    assert isinstance(data, Sequences) and data.max_length == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hmm_gaussian_full_missing", "hmm_gaussian_spherical_missing"])
def test_recovery_with_missing_entries_is_within_a_small_factor_of_complete_data(name):
    """30% of the entries missing completely at random (a scalar step: all of it): the
    parameter error over four seeds is within 1.6 times the complete-data fit's."""
    model, truth = make(name)
    errors = {"complete": 0.0, "missing": 0.0}
    for seed in range(4):
        complete = model.simulate(truth, lengths=[100] * 16, seed=seed).data
        for label, data in (("complete", complete), ("missing", observe_steps(name, complete,
                                                                             seed))):
            init = initialize(model, data, method="kmeans++", seed=0, restarts=2)
            fit = fit_em(model, data, init, tol=1e-10, max_iter=2000)
            errors[label] += parameter_distance(model, truth, fit.params)
    assert errors["missing"] < 1.6 * errors["complete"], errors
