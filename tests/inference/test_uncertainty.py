"""Standard errors of a fit: textbook closed forms, Louis' method, singular information."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from emvi.inference import fit_em, initialize
from emvi.inference.persist import load_fit
from emvi.inference.uncertainty import (
    Coordinates,
    louis_information,
    observed_information,
)
from emvi.models import GaussianMixture, InputError, ParamSpec, PyroModel, TwoCoins
from emvi.models.families import pick
from model_cases import CASES, make
from torch.distributions import constraints


def close(a, b, rel=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64),
                               torch.as_tensor(b, dtype=torch.float64), rtol=rel, atol=0)


# -- textbook closed forms -----------------------------------------------------------------
def test_single_gaussian_matches_the_textbook():
    model = GaussianMixture(k=1, dim=1, covariance="spherical", reg_covar=0.0)
    x = model.simulate(model.params(weights=[1.0], locs=[[3.0]], scales=[2.0]), n=400,
                       seed=1).data
    start = model.params(weights=[1.0], locs=[[0.0]], scales=[1.0])
    fit = fit_em(model, x, start, tol=0.0, max_iter=3)
    n, mean = len(x), x.mean()
    sd = ((x - mean) ** 2).mean().sqrt()  # the MLE divides by n
    se = fit.standard_errors()
    close(fit.params["scales"], sd.reshape(1), rel=1e-12)
    close(se["locs"], (sd / math.sqrt(n)).reshape(1, 1))  # sigma / sqrt(n)
    close(se["scales"], (sd / math.sqrt(2 * n)).reshape(1))  # sigma / sqrt(2n)
    assert se["weights"].tolist() == [0.0]  # one component: its weight is 1, known
    assert not se.notes and not any(u.any() for u in se.unavailable.values())


def test_full_covariance_gaussian_matches_the_textbook():
    model = GaussianMixture(k=1, dim=2, covariance="full", reg_covar=0.0)
    truth = model.params(weights=[1.0], locs=[[1.0, -2.0]],
                         covariances=[[[2.0, 0.6], [0.6, 1.0]]])
    x = model.simulate(truth, n=300, seed=2).data
    n, mean = len(x), x.mean(0)
    cov = (x - mean).T @ (x - mean) / n
    mle = model.params(weights=[1.0], locs=mean.reshape(1, 2),
                       scale_tril=torch.linalg.cholesky(cov).reshape(1, 2, 2))
    result = observed_information(model, x, mle)
    close(result.standard_errors["locs"], (torch.diagonal(cov) / n).sqrt().reshape(1, 2))
    # covariance entries: var(S_ij) = (S_ij^2 + S_ii S_jj) / n, by the delta method through
    # the Cholesky factor's free coordinates
    value, se = result.derived(lambda p: p["scale_tril"][0] @ p["scale_tril"][0].T)
    close(value, cov, rel=1e-12)
    close(se, ((cov ** 2 + torch.outer(torch.diagonal(cov), torch.diagonal(cov))) / n).sqrt())
    upper = result.standard_errors["scale_tril"][0, 0, 1]
    assert float(upper) == 0.0  # structurally zero, never estimated


def coin_trials():
    model = TwoCoins(k=2, tosses=10)
    truth = model.params(weights=[0.35, 0.65], probs=[0.7, 0.25])
    sim = model.simulate(truth, n=600, seed=3)
    return model, sim.data, sim.assignments


def test_binomial_mixture_with_known_assignments_matches_the_textbook():
    """Known assignments condition the program's assignment site: complete-data maximum
    likelihood, whose standard errors are binomial proportions' own."""
    model, heads, labels = coin_trials()
    n, tosses = len(heads), 10
    counts = torch.bincount(labels, minlength=2).double()
    w = counts / n
    p = torch.stack([heads[labels == j].sum() for j in range(2)]) / (counts * tosses)
    result = observed_information(model, heads, model.params(weights=w, probs=p),
                                  assignments=labels)
    close(result.standard_errors["weights"], (w * (1 - w) / n).sqrt())
    close(result.standard_errors["probs"], (p * (1 - p) / (counts * tosses)).sqrt())


@pytest.mark.parametrize("coin", [0, 1])
def test_each_coin_fitted_alone_matches_the_textbook(coin):
    _, heads, labels = coin_trials()
    mine = heads[labels == coin]
    model = TwoCoins(k=1, tosses=10)
    fit = fit_em(model, mine, model.params(weights=[1.0], probs=[0.5]), tol=0.0, max_iter=2)
    p = mine.sum() / (10 * len(mine))
    close(fit.params["probs"], p.reshape(1), rel=1e-12)
    close(fit.standard_errors()["probs"], (p * (1 - p) / (10 * len(mine))).sqrt().reshape(1))


# -- Louis' method: the same information from the E-step ----------------------------------
class ProgramPoisson(PyroModel):
    """A Poisson mixture given only by its program (no closed-form pieces)."""

    def __init__(self, k=2):
        super().__init__(k, {"weights": ParamSpec((k,), constraints.simplex),
                             "rates": ParamSpec((k,), constraints.positive)})

    def program(self, params, data=None, n=None):
        n = data.shape[0] if data is not None else n
        with pyro.plate("data", n):
            z = pyro.sample("assignment", dist.Categorical(params["weights"]),
                            infer={"enumerate": "parallel"})
            pyro.sample("obs", dist.Poisson(pick(params["rates"], z)), obs=data)


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("name", sorted(CASES))
def test_louis_equals_the_hessian_of_pyro_objective(name):
    """Louis' identity holds at any parameters: the E-step's complete-data information
    minus the missing information is minus the Hessian of the exact log-likelihood."""
    model, truth = make(name)
    data = model.simulate(truth, n=80, seed=5).data
    params = model.check_params(model.random_params(data, torch.Generator().manual_seed(6)))
    observed = observed_information(model, data, params)
    louis = louis_information(model, data, params)
    assert observed.information.shape == louis.information.shape
    assert relative_gap(louis.information, observed.information) < 1e-6


def test_louis_equals_the_hessian_for_a_program_only_model():
    model = ProgramPoisson(k=2)
    truth = model.params(weights=[0.4, 0.6], rates=[2.0, 9.0])
    data = model.simulate(truth, n=100, seed=0).data
    fit = fit_em(model, data, truth, tol=1e-12)
    observed, louis = fit.standard_errors(), fit.standard_errors(method="louis")
    for name in observed:
        close(louis[name], observed[name])


def test_free_coordinates_leave_fixed_parameters_out():
    model, truth = make("gmm_tied_fixed_weights")
    coords = Coordinates.at(model, truth)
    assert coords.names == ["locs", "scale_tril"]
    assert len(coords.theta) == 6 + 3  # k*d means, a lower triangle
    assert all("weights" not in label for label in coords.labels)
    values = coords.values(coords.theta)
    for name in model.specs:
        close(values[name], truth[name], rel=1e-12)


# -- singular information: notes and inf, never NaN ---------------------------------------
def no_nan(*mappings):
    return all(not bool(torch.isnan(v).any()) for m in mappings for v in m.values())


def test_collapsed_component_gives_a_note_and_unavailable_entries():
    model = GaussianMixture(k=3, dim=1, covariance="spherical")
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(150, 1, generator=gen, dtype=torch.float64),
                   5 + torch.randn(150, 1, generator=gen, dtype=torch.float64)])
    start = model.params(weights=[0.45, 0.45, 0.1], locs=[[0.0], [5.0], [float(x[7, 0])]],
                         scales=[1.0, 1.0, 1e-4])
    fit = fit_em(model, x, start, tol=1e-10)
    assert float(fit.params["scales"][2]) < 1e-2  # collapsed onto one point
    se = fit.standard_errors()
    lower, upper = fit.confidence_intervals()
    assert no_nan(se, lower, upper)
    assert se.unavailable["locs"][2].all() and se.unavailable["scales"][2]
    assert se.unavailable["weights"][2] and math.isinf(float(se["scales"][2]))
    assert torch.isfinite(se["locs"][:2]).all() and torch.isfinite(se["scales"][:2]).all()
    said = "not at a stationary point along log(scales)[2]"
    assert any(said in note and "component(s) 2 are unavailable" in note for note in se.notes)
    assert any(said in note for note in fit.notes)
    assert float(lower["scales"][2]) == 0.0 and math.isinf(float(upper["scales"][2]))


def test_probability_at_zero_gives_a_note_and_one_unavailable_entry():
    model = TwoCoins(k=2, tosses=10)
    heads = torch.tensor([0.0] * 100 + [5.0, 6, 7, 4, 6, 5, 8, 6, 5, 7] * 10)
    fit = fit_em(model, heads, model.params(weights=[0.5, 0.5], probs=[0.1, 0.7]), tol=1e-12)
    assert float(fit.params["probs"][0]) < 1e-8
    se = fit.standard_errors()
    assert no_nan(se)
    assert se.unavailable["probs"].tolist() == [True, False]
    assert torch.isfinite(se["weights"]).all() and math.isfinite(float(se["probs"][1]))
    assert any("boundary" in note and "probs[0]" in note for note in se.notes)
    lower, upper = fit.confidence_intervals()
    assert (float(lower["probs"][0]), float(upper["probs"][0])) == (0.0, 1.0)
    # the others, conditional on the boundary estimate, are near binomial proportions (a
    # trial without heads could still be coin 1's: 0.4^10)
    p, count = fit.params["probs"][1], float(fit.params["weights"][1]) * len(heads)
    close(se["probs"][1], (p * (1 - p) / (10 * count)).sqrt(), rel=1e-2)


def test_a_fit_short_of_its_maximum_says_so():
    """One EM step from a start near the truth: the information is positive definite but
    the maximum is still standard errors away; five steps on it is not."""
    model = GaussianMixture(k=2, dim=1, covariance="spherical")
    truth = model.params(weights=[0.4, 0.6], locs=[[-3.0], [3.0]], scales=[1.0, 1.5])
    x = model.simulate(truth, n=500, seed=0).data
    start = model.params(weights=[0.5, 0.5], locs=[[-2.0], [2.0]], scales=[1.5, 1.5])
    early = observed_information(model, x, fit_em(model, x, start, max_iter=2).params)
    assert bool(torch.linalg.eigvalsh(early.information).min() > 0)
    assert any("not at a stationary point along locs[0,0]" in n for n in early.notes)
    assert bool(early.standard_errors.unavailable["locs"].all())
    later = observed_information(model, x, fit_em(model, x, start, max_iter=5).params)
    assert not later.notes


def test_identical_components_are_not_identifiable():
    """Two copies of the one-Gaussian MLE: their weights cannot be told apart (zero
    curvature), and splitting them improves the fit (negative curvature: a saddle)."""
    model = GaussianMixture(k=2, dim=1, covariance="spherical", reg_covar=0.0)
    x = torch.randn(200, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, sd = x.mean(), x.std(unbiased=False)
    twins = model.params(weights=[0.3, 0.7], locs=[[float(mean)]] * 2, scales=[float(sd)] * 2)
    result = observed_information(model, x, twins)
    se = result.standard_errors
    assert no_nan(se) and all(bool(u.all()) for u in se.unavailable.values())
    assert any("singular" in note and "stick(weights)[0]" in note for note in se.notes)
    assert any("saddle point" in note for note in se.notes)
    value, spread = result.derived(lambda p: p["locs"].sum())
    assert math.isinf(float(spread)) and math.isfinite(float(value))


# -- the API ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_gaussians():
    model = GaussianMixture(k=2, dim=1, covariance="spherical")
    truth = model.params(weights=[0.4, 0.6], locs=[[-2.0], [2.0]], scales=[1.0, 1.5])
    x = model.simulate(truth, n=500, seed=0).data
    return model, x, fit_em(model, x, truth, tol=1e-12)


def test_wald_intervals_are_estimate_plus_minus_z_standard_errors(two_gaussians):
    _, _, fit = two_gaussians
    se = fit.standard_errors()
    intervals = fit.confidence_intervals(0.9)
    z = 1.6448536269514722
    for name in se:
        close(intervals.lower[name], fit.params[name] - z * se[name], rel=1e-12)
        close(intervals.upper[name], fit.params[name] + z * se[name], rel=1e-12)
    assert intervals.level == 0.9 and intervals.method == "wald"
    wider = fit.confidence_intervals(0.99)
    assert bool((wider.upper["locs"] > intervals.upper["locs"]).all())


def test_standard_errors_are_cached_and_shrink_with_n(two_gaussians):
    model, x, fit = two_gaussians
    assert fit.standard_errors() is fit.standard_errors()
    big = model.simulate(fit.params, n=4 * len(x), seed=9).data
    other = fit_em(model, big, fit.params, tol=1e-12)
    ratio = other.standard_errors()["locs"] / fit.standard_errors()["locs"]
    assert bool(((ratio > 0.35) & (ratio < 0.65)).all())  # ~ 1/sqrt(4)


def test_bad_input_is_named(two_gaussians, tmp_path):
    model, x, fit = two_gaussians
    for level in (0, 1, 1.5, -0.1):
        with pytest.raises(InputError, match="level"):
            fit.confidence_intervals(level)
    with pytest.raises(InputError, match="method"):
        fit.standard_errors(method="jackknife")
    with pytest.raises(InputError, match="assignments"):
        observed_information(model, x, fit.params, assignments=[0, 1])
    fit.save(tmp_path / "fit.pt")
    loaded = load_fit(tmp_path / "fit.pt")
    with pytest.raises(InputError, match="data"):
        loaded.standard_errors()
    close(loaded.standard_errors(data=x)["locs"], fit.standard_errors()["locs"], rel=1e-9)


def test_hard_em_fit_says_what_its_errors_are():
    model, truth = make("kmeans")
    x = model.simulate(truth, n=150, seed=0).data
    fit = fit_em(model, x, initialize(model, x, seed=0))
    se = fit.standard_errors()
    assert any("hard-EM" in note for note in se.notes)
    assert set(se) == {"locs"}  # weights and scales are fixed


def test_a_map_fit_has_the_standard_errors_of_its_log_posterior():
    """MAP-EM maximises log p(x | theta) + log p(theta): its information is the log
    posterior's (a Laplace approximation), from the program and from Louis' method alike,
    and the MAP point is stationary for it (no notes), though not for the likelihood."""
    import emvi

    prior = {"weights": {"concentration": 60.0}}
    model = GaussianMixture(k=2, dim=1, covariance="spherical", prior=prior)
    plain = GaussianMixture(k=2, dim=1, covariance="spherical")
    truth = model.params(weights=[0.3, 0.7], locs=[[-3.0], [3.0]], scales=[1.0, 1.5])
    x = model.simulate(truth, n=300, seed=0).data
    fit = fit_em(model, x, emvi.initialize(model, x, seed=0), tol=1e-13, max_iter=5000)
    observed = observed_information(model, x, fit.params)
    louis = emvi.louis_information(model, x, fit.params)
    assert not observed.notes and not louis.notes
    torch.testing.assert_close(observed.information, louis.information, rtol=1e-6, atol=1e-8)
    likelihood_only = observed_information(plain, x, fit.params)
    assert float(observed.standard_errors["weights"][0]) < float(
        likelihood_only.standard_errors["weights"][0])
