"""The invariants every model holds, for every model in the case table: exactness
against Pyro's enumeration, monotone EM, a vanishing gradient at EM's fixed point,
additive statistics and recovery of the truth."""

from __future__ import annotations

import pytest
import torch
from emvi.inference import (
    fit_em,
    fit_vi,
    initialize,
    pyro_gradient,
    pyro_log_likelihood,
    pyro_map_assignments,
    pyro_posterior,
    pyro_posterior_gradient,
)
from emvi.models import REGISTRY
from emvi.models.families.base import Prepared
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_cases import CASES, MISSING, REGISTERED, make, observe

NAMES = sorted(CASES)


def random_setting(name: str, seed: int, n: int = 150):
    """A model, simulated data and random parameters (not the truth)."""
    model, truth = make(name)
    data = observe(name, model.simulate(truth, n=n, seed=seed).data, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    return model, data, model.check_params(model.random_params(data, gen))


def roundoff_scale(model, data, params) -> float:
    """Round-off of the natural-parameter E-step: it scales with the largest terms
    |T(x)| . |eta| (huge when a component collapsed to its variance floor)."""
    prepared = model.prepare(data, model.shift(data))
    prepared = getattr(prepared, "values", prepared)  # a grouped mixture's family rows
    if not isinstance(prepared, Prepared):  # missing entries: the centred (or masked) form
        joint = model.log_joint(data, params)
        return 1e-12 * float(joint.abs().amax(-1).sum()) + 1e-12 * abs(float(
            model.log_likelihood(data, params)))
    eta, log_norm = model.family.natural(params, prepared.shift)
    terms = eta.abs() @ prepared.statistics.abs() + log_norm.abs().unsqueeze(-1)
    return 1e-12 * float(terms.amax(-2).sum()) + 1e-12 * abs(float(model.log_likelihood(data,
                                                                                       params)))


def test_every_registered_model_has_a_case():
    assert set(REGISTRY) <= set(REGISTERED)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_likelihood_equals_pyro_enumeration(name, seed):
    model, data, params = random_setting(name, seed)
    hand = float(model.log_likelihood(data, params))
    pyro_value = pyro_log_likelihood(model, data, params)
    assert hand == pytest.approx(pyro_value, rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_batched_restarts_equal_pyro_restart_plate(name):
    model, data, _ = random_setting(name, 3)
    batch = initialize(model, data, method="random", seed=0, restarts=3)
    hand = model.log_likelihood(data, batch)
    assert hand.shape == (3,)
    assert float(hand.sum()) == pytest.approx(pyro_log_likelihood(model, data, batch), rel=1e-9)
    resp = model.e_step(data, batch)[0]
    torch.testing.assert_close(resp, pyro_posterior(model, data, batch), atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_responsibilities_and_map_equal_pyro(name):
    model, data, params = random_setting(name, 4)
    resp, _ = model.e_step(data, params)
    torch.testing.assert_close(resp, pyro_posterior(model, data, params), atol=1e-9, rtol=0)
    assert torch.equal(resp.argmax(-1), pyro_map_assignments(model, data, params))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(3, 80), noise=st.booleans())
def test_em_never_decreases_its_objective(name, seed, n, noise):
    model, data, params = random_setting(name, seed, n=n)
    if name in MISSING and hasattr(model.family, "reg_covar"):
        # reg_covar is a floor, not a term of the likelihood: with missing entries it feeds
        # back through the expected statistics (a collapsing component's unobserved entries
        # keep the floor's variance), so only the exact M-step (none) is monotone
        model.family.reg_covar = 0.0
    if noise:  # any data, not only data from the model: half from other random parameters
        gen = torch.Generator().manual_seed(seed + 2)
        other = model.check_params(model.random_params(data, gen))
        data = torch.cat([data[: n // 2], observe(name, model.simulate(
            other, n=n - n // 2, seed=seed).data, seed + 1)])
    for hard in (False, True):
        fit = fit_em(model, data, params, max_iter=30, tol=0.0, hard=hard)
        steps = torch.diff(fit.objective)
        roundoff = torch.tensor([roundoff_scale(model, data, p) for p in fit.param_trace[:-1]],
                                dtype=steps.dtype)
        for event in fit.events:  # relocating an empty cluster is a heuristic, not EM
            roundoff[event["iteration"]] = float("inf")
        assert bool((steps >= -roundoff).all()), (steps.min(), roundoff.min())


@pytest.mark.parametrize("name", NAMES)
def test_gradient_of_pyro_objective_vanishes_at_em_fixed_point(name):
    model, truth = make(name)
    if hasattr(model, "family") and hasattr(model.family, "reg_covar"):
        model.family.reg_covar = 0.0  # reg_covar moves EM's fixed point off the ML optimum
    data = observe(name, model.simulate(truth, n=400, seed=5).data, 5)
    init = initialize(model, data, method="kmeans++", seed=0)
    fit = fit_em(model, data, init, hard=False, tol=1e-13, max_iter=20_000)
    assert fit.converged
    # with priors (a grouped mixture's Dirichlet weights) EM is MAP-EM: the log posterior
    gradient = pyro_posterior_gradient if model.prior_sites() else pyro_gradient
    for param, grad in gradient(model, data, fit.params).items():
        assert float(grad.abs().max()) / data.shape[0] < 1e-6, param


@pytest.mark.parametrize("name", NAMES)
def test_chunked_statistics_equal_whole_data(name):
    model, data, params = random_setting(name, 6, n=203)
    whole = fit_em(model, data, params, max_iter=5, tol=0.0, hard=False)
    chunked = fit_em(model, data, params, max_iter=5, tol=0.0, hard=False, chunk_size=17)
    torch.testing.assert_close(chunked.objective, whole.objective, rtol=1e-12, atol=0)
    inner = 1e-9 if "concentration" in whole.params else 1e-10  # an inner Newton solve
    for key in whole.params:
        torch.testing.assert_close(chunked.params[key], whole.params[key], rtol=inner, atol=1e-12)
    torch.testing.assert_close(chunked.responsibilities, whole.responsibilities)


def standard_error_scale(model, truth, name: str) -> float:
    """``s`` such that a standard error of parameter ``name`` is about ``s / sqrt(n)``:
    per kind of parameter, from the true values (the smallest component sets the pace)."""
    smallest = float(truth["weights"].min())
    if "scales" in truth:
        sigma = float(truth["scales"].max())
    elif "scale_tril" in truth:
        tril = truth["scale_tril"]
        sigma = float(torch.linalg.svdvals(tril).max())
    else:
        sigma = 1.0
    per_component = 1 / smallest ** 0.5
    groups = getattr(model, "groups", 1)  # a grouped mixture: each group has n / groups rows
    if name == "weights":
        return 0.5 * groups ** 0.5
    if name == "concentration":  # its precision grows with the number of groups, not with n
        return float("inf")
    if name == "probs":
        return 0.5 * per_component
    if name in ("locs", "scales", "scale_tril", "coefs"):
        return sigma * per_component
    if name == "rates":
        rates = truth["rates"]
        poisson = model.family.name == "poisson"
        return float(rates.max().sqrt() if poisson else rates.max()) * per_component
    raise AssertionError(f"no standard-error scale for {name}")


@pytest.mark.parametrize("name", NAMES)
def test_both_paths_recover_truth_within_a_tolerance_shrinking_with_n(name):
    """Every free parameter within 6 standard errors (c / sqrt(n)) at n = 300 and 3000
    (with a fraction f of entries missing, about f of the information is lost: c grows
    by 1 / sqrt(1 - f))."""
    from emvi.inference import compare

    model, truth = make(name)
    lost = MISSING.get(name, 0.0)
    for n in (300, 3000):
        data = observe(name, model.simulate(truth, n=n, seed=7).data, 7)
        init = initialize(model, data, method="kmeans++", seed=0)
        em = fit_em(model, data, init, hard=False, tol=1e-10, max_iter=5000)
        vi = fit_vi(model, data, init, optimizer="lbfgs", steps=400, tol=1e-12)
        for fit in (em, vi):
            errors = compare(fit, truth=truth).truth_errors[fit.method]
            for param, error in errors.items():
                tolerance = 6 * standard_error_scale(model, truth, param) / (
                    n * (1 - lost)) ** 0.5
                assert error < tolerance, (fit.method, n, param, error, tolerance)


@pytest.mark.parametrize("name", ["gmm_full", "two_coins", "regression", "categorical"])
def test_vi_records_each_restarts_objective_from_the_program_itself(name):
    from emvi.inference.vi import restart_log_likelihoods

    model, data, _ = random_setting(name, 8)
    batch = initialize(model, data, method="random", seed=3, restarts=4)
    from_pyro = restart_log_likelihoods(model, data, batch)
    torch.testing.assert_close(from_pyro, model.log_likelihood(data, batch), rtol=1e-10, atol=0)
    assert float(from_pyro.sum()) == pytest.approx(pyro_log_likelihood(model, data, batch),
                                                   rel=1e-10)
