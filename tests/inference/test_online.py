"""Online (stepwise) EM: it reaches batch EM's optimum on a simulated mixture, its step
sizes are Cappé & Moulines', and bad options are refused naming the option."""

from __future__ import annotations

import pytest
from emvi.inference.online import step_size
from emvi.models import GaussianMixture

from emvi import InputError, fit_em, fit_online_em, initialize

N = 3000


@pytest.fixture(scope="module")
def problem():
    model = GaussianMixture(k=3, dim=2, covariance="diag")
    truth = model.check_params({"weights": [0.3, 0.3, 0.4],
                                "locs": [[-6.0, 0.0], [6.0, 1.0], [0.0, 8.0]],
                                "scales": [[1.5, 1.0], [1.0, 1.4], [1.2, 0.7]]})
    data = model.simulate(truth, n=N, seed=0).data
    init = initialize(model, data, seed=0)
    return model, data, init, fit_em(model, data, init, tol=1e-12)


def test_online_em_reaches_batch_ems_optimum(problem):
    """Tolerance: with Polyak averaging, 4 passes of mini-batches of 150 end within 1e-3
    per observation of batch EM's log-likelihood and 0.05 of its parameters."""
    model, data, init, batch = problem
    online = fit_online_em(model, data, init, batch_size=150, passes=4, polyak=True)
    assert online.method == "online-em" and online.iterations == 4
    assert len(online.objective) == 5  # the start and every pass
    gap = (batch.log_likelihood - online.log_likelihood) / N
    assert -1e-9 <= gap <= 1e-3
    for name in batch.params:
        assert float((online.params[name] - batch.params[name]).abs().max()) <= 0.05, name
    assert online.log_likelihood > online.objective[0]  # it moved away from the start


def test_averaging_removes_the_noise_of_the_steps(problem):
    model, data, init, batch = problem
    gaps = [batch.log_likelihood - fit_online_em(model, data, init, batch_size=150, passes=2,
                                                 polyak=polyak).log_likelihood
            for polyak in (False, True)]
    assert gaps[1] < gaps[0]


def test_restarts_run_at_once_and_the_best_is_kept(problem):
    model, data, _, batch = problem
    starts = initialize(model, data, seed=3, restarts=2)
    fit = fit_online_em(model, data, starts, batch_size=300, passes=2, polyak=True)
    assert fit.restart_log_likelihoods.shape == (2,)
    assert fit.log_likelihood == float(fit.restart_log_likelihoods.max())


def test_step_sizes_are_cappe_and_moulines():
    assert step_size(1, 0.6, 5.0) == 1.0  # the first batch's statistics, whatever t0
    assert step_size(2, 0.6, 5.0) == pytest.approx(7.0 ** -0.6, rel=1e-15)
    assert step_size(10, 1.0, 0.0) == pytest.approx(0.1, rel=1e-15)


@pytest.mark.parametrize("option,value", [("alpha", 0.5), ("alpha", 1.01), ("t0", -1.0),
                                          ("batch_size", 0), ("passes", 0), ("polyak", "yes")])
def test_bad_options_are_refused_naming_the_option(problem, option, value):
    model, data, init, _ = problem
    with pytest.raises((InputError, TypeError)) as caught:
        fit_online_em(model, data, init, **{option: value})
    assert str(caught.value).startswith(f"{option}:")


def test_a_config_fits_by_online_em_and_refuses_bad_keys(tmp_path):
    import json

    from emvi.experiments.cli import main

    text = """
model = { name = "gaussian_mixture", k = 2, dim = 1, covariance = "spherical" }
truth = { weights = [0.5, 0.5], locs = [[-4.0], [4.0]], scales = [1.0, 1.0] }
data = { n = 400, seed = 0 }
em = { online = { batch_size = 50, alpha = 0.7, t0 = 1.0, passes = 2 } }
vi = { enabled = false }
plots = { enabled = false }
"""
    config = tmp_path / "online.toml"
    config.write_text(text, encoding="utf-8")
    assert main(["run", str(config), "--quiet", "--out", str(tmp_path)]) == 0
    (metrics,) = tmp_path.glob("online/*/metrics.json")
    fit = json.loads(metrics.read_text())["experiments"]["online"]["cells"][0]["fits"]["em"]
    assert fit["method"] == "online-em" and fit["iterations"] == 2
    config.write_text(text.replace("alpha = 0.7", "alpha = 0.4"), encoding="utf-8")
    with pytest.raises(InputError, match=r"em\.online\.alpha: expected a value > 0\.5"):
        from emvi.experiments.config import load

        load(str(config))


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device here")
def test_online_em_and_the_data_checks_stay_on_the_datas_device(problem):
    model, data, init, _ = problem
    cuda = data.to("cuda")
    fit = fit_online_em(model, cuda, init.map(lambda t: t.to("cuda")), batch_size=300)
    assert all(value.device.type == "cuda" for value in fit.params.values())
