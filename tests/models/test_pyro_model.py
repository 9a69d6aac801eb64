"""Generic EM for a model that supplies only its Pyro program."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from emvi.inference import fit_em, fit_vi, initialize, pyro_log_likelihood, pyro_posterior
from emvi.inference.compare import parameter_errors
from emvi.models import ParamSpec, PoissonMixture, PyroModel
from emvi.models.families import pick
from emvi.models.pyro_model import SOLVE_ITERATIONS
from torch.distributions import constraints


class ProgramPoisson(PyroModel):
    """The Poisson mixture again, but only as a program: no closed-form pieces."""

    def __init__(self, k=3):
        super().__init__(k, {"weights": ParamSpec((k,), constraints.simplex),
                             "rates": ParamSpec((k,), constraints.positive)})

    def program(self, params, data=None, n=None):
        n = data.shape[0] if data is not None else n
        with pyro.plate("data", n):
            z = pyro.sample("assignment", dist.Categorical(params["weights"]),
                            infer={"enumerate": "parallel"})
            pyro.sample("obs", dist.Poisson(pick(params["rates"], z)), obs=data)


@pytest.fixture(scope="module")
def setting():
    closed = PoissonMixture(k=3)
    truth = closed.params(weights=[0.3, 0.3, 0.4], rates=[1.0, 8.0, 25.0])
    data = closed.simulate(truth, n=600, seed=0).data
    return closed, ProgramPoisson(k=3), truth, data


def test_generic_e_step_equals_closed_form(setting):
    closed, generic, truth, data = setting
    params = closed.params(weights=[0.2, 0.5, 0.3], rates=[2.0, 5.0, 20.0])
    r1, ll1 = closed.e_step(data, params)
    r2, ll2 = generic.e_step(data, params)
    torch.testing.assert_close(r2, r1, atol=1e-12, rtol=0)
    assert float(ll2) == pytest.approx(float(ll1), rel=1e-12)
    assert float(ll2) == pytest.approx(pyro_log_likelihood(generic, data, params), rel=1e-9)
    torch.testing.assert_close(r2, pyro_posterior(generic, data, params), atol=1e-9, rtol=0)


def test_generic_em_reaches_the_closed_form_optimum(setting):
    closed, generic, truth, data = setting
    init = initialize(closed, data, method="kmeans++", seed=0)
    exact = fit_em(closed, data, init, tol=1e-12, max_iter=5000)
    numeric = fit_em(generic, data, init, tol=1e-12, max_iter=5000)
    assert exact.m_step == "closed-form" and numeric.m_step == "generic"
    assert numeric.log_likelihood == pytest.approx(exact.log_likelihood, rel=1e-6)
    torch.testing.assert_close(numeric.params["rates"], exact.params["rates"], atol=1e-3,
                               rtol=1e-4)
    steps = torch.diff(numeric.objective)
    assert bool((steps >= -1e-8 * numeric.objective[:-1].abs()).all())  # still monotone
    vi = fit_vi(generic, data, init, optimizer="lbfgs", steps=300, tol=1e-12)
    assert vi.log_likelihood == pytest.approx(exact.log_likelihood, rel=1e-6)


def test_generic_model_initialises_restarts_and_simulates(setting):
    _, generic, truth, _ = setting
    data = generic.simulate(truth, n=300, seed=1).data
    assert data.shape == (300,)
    batch = initialize(generic, data, method="kmeans++", seed=0, restarts=3)
    assert batch["rates"].shape == (3, 3)
    fit = fit_em(generic, data, batch, tol=1e-8, max_iter=500)
    assert fit.restart_log_likelihoods.shape == (3,)
    with pytest.raises(ValueError, match="chunk_size: this model's M-step is generic"):
        fit_em(generic, data, batch, chunk_size=10)
    # a program written for one parameter set: VI fits the restarts one after another
    vi = fit_vi(generic, data, batch, steps=60)
    assert vi.restart_log_likelihoods.shape == (3,)
    assert vi.best_restart == int(vi.restart_log_likelihoods.argmax())
    alone = fit_vi(generic, data, batch.select(vi.best_restart, generic.specs), steps=60)
    assert alone.log_likelihood == vi.log_likelihood


class UnmarkedPoisson(ProgramPoisson):
    """The same program without ``infer={"enumerate": "parallel"}`` on the assignment."""

    def program(self, params, data=None, n=None):
        n = data.shape[0] if data is not None else n
        with pyro.plate("data", n):
            z = pyro.sample("assignment", dist.Categorical(params["weights"]))
            pyro.sample("obs", dist.Poisson(pick(params["rates"], z)), obs=data)


def test_an_unmarked_assignment_is_enumerated_by_vi_as_by_em(setting):
    _, marked, _, data = setting
    unmarked = UnmarkedPoisson(k=3)
    init = initialize(marked, data, method="kmeans++", seed=0)
    ref = fit_vi(marked, data, init, steps=200)
    fit = fit_vi(unmarked, data, init, steps=200)  # sampled instead: noisy and wrong
    assert fit.log_likelihood == pytest.approx(ref.log_likelihood, rel=1e-12)
    torch.testing.assert_close(fit.params["rates"], ref.params["rates"], rtol=1e-10, atol=0)
    assert pyro_log_likelihood(unmarked, data, init) == pytest.approx(
        pyro_log_likelihood(marked, data, init), rel=1e-12)


class WarningPoisson(ProgramPoisson):
    """A program that warns: the warning must reach the fit's notes."""

    def program(self, params, data=None, n=None):
        import warnings

        warnings.warn("rates look odd", UserWarning, stacklevel=1)
        return super().program(params, data, n)


def test_warnings_during_a_fit_become_notes(setting):
    _, _, _, data = setting
    model = WarningPoisson(k=3)
    init = initialize(ProgramPoisson(k=3), data, method="kmeans++", seed=0)
    for fit in (fit_vi(model, data, init, steps=3), fit_em(model, data, init, max_iter=2)):
        assert any("UserWarning: rates look odd" in note for note in fit.notes), fit.notes
        assert sum("rates look odd" in note for note in fit.notes) == 1  # once, not per step


class ProgramGamma(PyroModel):
    """The tutorial's Gamma mixture: no closed-form M-step for the shapes."""

    def __init__(self, k=2):
        super().__init__(k, {"weights": ParamSpec((k,), constraints.simplex),
                             "concentration": ParamSpec((k,), constraints.positive),
                             "rate": ParamSpec((k,), constraints.positive)})

    def program(self, params, data=None, n=None):
        with pyro.plate("data", data.shape[0] if data is not None else n):
            z = pyro.sample("assignment", dist.Categorical(params["weights"]),
                            infer={"enumerate": "parallel"})
            pyro.sample("obs", dist.Gamma(pick(params["concentration"], z),
                                          pick(params["rate"], z)), obs=data)


class ProgramVonMises(PyroModel):
    """Angles from von Mises components: no closed-form concentration either."""

    def __init__(self, k=2):
        super().__init__(k, {"weights": ParamSpec((k,), constraints.simplex),
                             "locs": ParamSpec((k,), constraints.real),
                             "concentration": ParamSpec((k,), constraints.positive)})

    def program(self, params, data=None, n=None):
        with pyro.plate("data", data.shape[0] if data is not None else n):
            z = pyro.sample("assignment", dist.Categorical(params["weights"]),
                            infer={"enumerate": "parallel"})
            pyro.sample("obs", dist.VonMises(pick(params["locs"], z),
                                             pick(params["concentration"], z)), obs=data)


@pytest.fixture(scope="module", params=["gamma", "von_mises"])
def program_case(request):
    """``(model, data, init)``: a program-only model, 250 simulated points, a k-means++
    start."""
    if request.param == "gamma":
        model = ProgramGamma()
        truth = model.params(weights=[0.6, 0.4], concentration=[2.0, 12.0], rate=[2.0, 1.5])
    else:
        model = ProgramVonMises()
        truth = model.params(weights=[0.4, 0.6], locs=[-1.5, 1.5], concentration=[3.0, 6.0])
    data = model.simulate(truth, n=250, seed=0).data
    return model, data, initialize(model, data, method="kmeans++", seed=0)


def expected_complete(model, data, resp, params) -> float:
    """``Q = sum_nj r_nj log p(x_n, z_n = j | params)``, from a fresh trace."""
    return float((resp * model._joint(data, params)).sum())


def plain(model) -> PyroModel:
    """A fresh copy of ``model`` whose M-step is the plain GEM step (no SQUAREM)."""
    out = type(model)()
    out.squarem = False
    return out


def test_every_generic_m_step_raises_q_and_the_log_likelihood(program_case):
    model, data, init = program_case
    model = plain(model)  # the GEM step itself; SQUAREM's raises the log-likelihood only
    params = init
    for _ in range(6):
        step = model.expect(data, params)
        new = model.maximize(step.stats, params)
        assert not all(torch.equal(new[k], params[k]) for k in params)  # a real step
        before = expected_complete(model, data, step.stats["resp"], params)
        after = expected_complete(model, data, step.stats["resp"], new)
        assert after >= before - 1e-12 * abs(before)  # a generalised EM step
        assert float(model.expect(data, new).log_likelihood) >= float(step.log_likelihood)
        params = new


def test_generic_em_is_monotone_and_reaches_the_solved_m_steps_optimum(program_case):
    """One Newton step per M-step (the default) against Newton to convergence every
    iteration (an exact M-step, as L-BFGS to 1e-12 was) and against VI: the same optimum."""
    model, data, init = program_case
    fit = fit_em(model, data, init, tol=1e-12, max_iter=3000)
    assert fit.converged
    steps = torch.diff(fit.objective)
    assert bool((steps >= -1e-12 * fit.objective[:-1].abs()).all()), steps.min()
    solved = type(model)()
    solved.m_step_iterations = SOLVE_ITERATIONS
    exact = fit_em(solved, data, init, tol=1e-12, max_iter=3000)
    assert fit.log_likelihood == pytest.approx(exact.log_likelihood, rel=1e-8)
    vi = fit_vi(model, data, init, optimizer="lbfgs", steps=500, tol=1e-13)
    best = max(fit.log_likelihood, exact.log_likelihood, vi.log_likelihood)
    assert fit.log_likelihood == pytest.approx(best, rel=1e-8)
    for other in (exact, vi):
        for name, error in parameter_errors(model, other.params, fit.params).items():
            assert error <= 1e-3 * (1 + float(other.params[name].abs().max())), (name, error)


def test_the_e_step_after_an_m_step_is_still_pyros_enumeration(program_case):
    """The M-step's trace at its new point serves as the next E-step: it must equal
    Pyro's TraceEnum_ELBO and a fresh model's E-step."""
    model, data, init = program_case
    new = model.maximize(model.expect(data, init).stats, init)
    step = model.expect(data, new)  # from the M-step's trace
    fresh = type(model)().expect(data, new)
    assert float(step.log_likelihood) == pytest.approx(float(fresh.log_likelihood), rel=1e-13)
    assert float(step.log_likelihood) == pytest.approx(pyro_log_likelihood(model, data, new),
                                                       rel=1e-9)
    torch.testing.assert_close(step.responsibilities, pyro_posterior(model, data, new),
                               atol=1e-9, rtol=0)


def test_a_generic_m_step_on_an_unbounded_likelihood_stays_finite():
    """Gamma components on nearly identical points: the shapes can grow without bound;
    each M-step stays finite, in the support, and never lowers Q."""
    model = plain(ProgramGamma())
    data = 2.5 + 1e-6 * torch.arange(40, dtype=torch.float64)
    params = model.params(weights=[0.5, 0.5], concentration=[1.0, 2.0], rate=[1.0, 1.0])
    for _ in range(8):
        step = model.expect(data, params)
        new = model.maximize(step.stats, params)
        for name, value in new.items():
            assert bool(torch.isfinite(value).all()), (name, value)
            assert bool(model.specs[name].constraint.check(value).all()), (name, value)
        assert expected_complete(model, data, step.stats["resp"], new) >= expected_complete(
            model, data, step.stats["resp"], params)
        params = new


def test_a_stale_hessian_that_cannot_step_is_replaced_by_a_fresh_one(program_case):
    """The M-step reuses the previous iteration's Hessian; where that gives no usable step
    it must compute a fresh one rather than stop (EM would then look converged)."""
    from emvi.models.newton import curvature

    model, data, init = program_case
    model = plain(model)
    params = model.maximize(model.expect(data, init).stats, init)
    step = model.expect(data, params)  # the M-step's own trace, with its Hessian
    assert model._traces[0].hessian is not None
    size = model._traces[0].theta.numel()
    useless = -1e300 * torch.eye(size, dtype=torch.float64)  # steps below round-off
    model._traces = [t._replace(hessian=useless, factor=curvature(useless))
                     for t in model._traces]
    new = model.maximize(step.stats, params)
    before = expected_complete(model, data, step.stats["resp"], params)
    after = expected_complete(model, data, step.stats["resp"], new)
    assert after > before + 1e-6 * abs(before)


def test_squarem_em_is_monotone_and_reaches_the_plain_optimum(program_case):
    """SQUAREM (the default) against plain GEM steps from the same start: the recorded
    log-likelihood never drops (exactly: the guard compares what the E-step records), the
    optimum is the same, and it takes fewer iterations."""
    model, data, init = program_case
    assert model.squarem
    fast = fit_em(model, data, init, tol=1e-13, max_iter=3000)
    slow = fit_em(plain(model), data, init, tol=1e-13, max_iter=3000)
    assert fast.converged and slow.converged
    assert bool((torch.diff(fast.objective) >= 0).all()), torch.diff(fast.objective).min()
    assert fast.log_likelihood == pytest.approx(slow.log_likelihood, rel=1e-8)
    for name, error in parameter_errors(model, slow.params, fast.params).items():
        assert error <= 1e-4 * (1 + float(slow.params[name].abs().max())), (name, error)
    assert fast.iterations < slow.iterations


def test_an_overshooting_squarem_jump_is_refused(program_case, monkeypatch):
    """A jump far past the optimum (forced here: 30 times the first EM step) lowers the
    log-likelihood even after its stabilising step; the M-step must then keep the two
    plain steps, so EM stays monotone and reaches the same optimum."""
    from emvi.models import pyro_model

    model, data, init = program_case
    jumps = []

    def overshoot(t0, t1, t2, largest):
        jumps.append(t0 + 30 * (t1 - t0))
        return jumps[-1], 30.0

    monkeypatch.setattr(pyro_model, "squarem_jump", overshoot)
    params = init
    for _ in range(3):
        step = model.expect(data, params)
        new = model.maximize(step.stats, params)
        after = float(model.expect(data, new).log_likelihood)
        assert after >= float(step.log_likelihood)
        probe = plain(model)  # a copy: the model's own traces carry its step cap
        far = probe.expect(data, probe._unflatten(jumps[-1], params)).log_likelihood
        assert float(far) < float(step.log_likelihood)  # the jump did overshoot
        params = new
    # refused steps at the cap shorten the next cap: from STEP_MAX0 = 4 to 1, not below
    assert model._traces[0].step_max == 1.0
    fit = fit_em(model, data, init, tol=1e-12, max_iter=3000)
    assert fit.converged and bool((torch.diff(fit.objective) >= 0).all())
    reference = fit_em(plain(model), data, init, tol=1e-12, max_iter=3000)
    assert fit.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-8)
