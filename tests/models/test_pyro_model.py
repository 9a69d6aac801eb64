"""Generic EM for a model that supplies only its Pyro program."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import constraints

from inference import fit_em, fit_vi, pyro_log_likelihood, pyro_posterior
from models import ParamSpec, PoissonMixture, PyroModel
from models.families import pick


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
    init = closed.initialize(data, method="kmeans++", seed=0)
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
    batch = generic.initialize(data, method="kmeans++", seed=0, restarts=3)
    assert batch["rates"].shape == (3, 3)
    fit = fit_em(generic, data, batch, tol=1e-8, max_iter=500)
    assert fit.restart_log_likelihoods.shape == (3,)
    with pytest.raises(ValueError, match="chunk_size: this model's M-step is generic"):
        fit_em(generic, data, batch, chunk_size=10)
    with pytest.raises(ValueError, match="init: this model's program takes one parameter set"):
        fit_vi(generic, data, batch)
