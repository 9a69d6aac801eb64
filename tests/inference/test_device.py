"""Devices: a device this machine lacks is refused in one clear line (API and `emvi run`);
parameters on another device than the data are refused before a fit; the fits, the
starts and simulations follow the data's device (checked on CUDA where there is one)."""

from __future__ import annotations

import pytest
import torch
from emvi.inference.device import check_same_device, parse, resolve
from emvi.models import GaussianMixture

from emvi import InputError, fit_em, fit_online_em, fit_vi, initialize, to_device

COINS = """
model = { name = "two_coins", k = 2, tosses = 10, weights = [0.5, 0.5] }
truth = { probs = [0.6, 0.2] }
data = { n = 100, seed = 0 }
init = { method = "params", params = { probs = [0.8, 0.7] } }
em = { max_iter = 50 }
vi = { steps = 20 }
"""
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device here (torch.cuda."
                                "is_available() is False)")
no_cuda_only = pytest.mark.skipif(CUDA, reason="this machine has CUDA: nothing to refuse")


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "CPU", " cpu", "cuda:0:1"])
def test_device_strings_are_checked_for_their_form(text):
    with pytest.raises(InputError, match=r"^device: expected 'cpu', 'cuda' or 'cuda:N'"):
        parse(text)


def test_the_cpu_always_resolves():
    assert resolve("cpu") == torch.device("cpu")
    assert torch.equal(to_device(torch.ones(2), "cpu"), torch.ones(2))


@no_cuda_only
@pytest.mark.parametrize("text", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_a_clear_error(text):
    with pytest.raises(InputError, match=r"^device: .* CUDA is not available here"):
        resolve(text)
    model = GaussianMixture(k=2, dim=1, covariance="spherical")
    with pytest.raises(InputError, match=r"^device: "):
        model.simulate(model.params(weights=[0.5, 0.5], locs=[[0.0], [3.0]],
                                    scales=[1.0, 1.0]), n=5, device=text)


def test_parameters_on_another_device_than_the_data_are_refused():
    data = torch.zeros(4, 1, dtype=torch.float64)
    check_same_device(data, {"locs": torch.zeros(2, 1)})  # both on the CPU: fine
    with pytest.raises(InputError, match=r"^init: locs is on meta but the data are on cpu"):
        check_same_device(data, {"locs": torch.empty(2, 1, device="meta")})


@no_cuda_only
@pytest.mark.parametrize("how", ["flag", "config"])
def test_emvi_run_on_a_missing_device_exits_2_in_one_line(how, emvi, write_config,
                                                         tmp_path):
    text = COINS + "plots = { enabled = false }\n"
    args = ["--device", "cuda"] if how == "flag" else []
    if how == "config":
        text = 'device = "cuda:1"\n' + text
    code, _, err = emvi("run", write_config(text), "--quiet", "--out", tmp_path / "runs",
                            *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ("--device:" if how == "flag" else "device:") in lines[0], err
    assert "CUDA is not available" in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.json"))


def test_a_misspelt_device_in_a_config_is_refused_at_load(emvi, write_config, tmp_path):
    code, _, err = emvi("run", write_config('device = "gpu"\n' + COINS), "--quiet",
                            "--out", tmp_path / "runs")
    assert code == 2 and "device: expected 'cpu', 'cuda' or 'cuda:N'" in err, err


def test_device_cpu_runs_and_is_recorded(emvi, write_config, tmp_path):
    import json

    path = write_config('device = "cpu"\n' + COINS + "plots = { enabled = false }\n")
    code, _, err = emvi("run", path, "--quiet", "--out", tmp_path / "runs", "--device",
                            "cpu")
    assert code == 0, err
    run = next((tmp_path / "runs" / "cfg").iterdir())
    cell = json.loads((run / "metrics.json").read_text())["experiments"]["cfg"]["cells"][0]
    assert cell["device"] == "cpu"


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float64])
def test_every_path_on_cuda_gives_the_numbers_of_the_cpu(dtype):
    """Simulation and starts are drawn on the CPU (identical); EM, online EM, VI (L-BFGS and
    mini-batch) run on the data's device and match the CPU within 1e-8 relative."""
    model = GaussianMixture(k=3, dim=2, covariance="full")
    truth = model.params(weights=[0.3, 0.3, 0.4], locs=[[-4.0, 0.0], [4.0, 1.0], [0.0, 6.0]],
                         covariances=[[[1.0, 0.3], [0.3, 1.0]]] * 3)
    cpu = model.simulate(truth, n=3000, seed=0).data
    gpu = model.simulate(truth, n=3000, seed=0, device="cuda").data
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
    for method in ("kmeans++", "random", "random_params"):
        a = initialize(model, cpu, method=method, seed=1, restarts=2)
        b = initialize(model, gpu, method=method, seed=1, restarts=2)
        for name in a:
            assert b[name].device.type == "cuda"
            torch.testing.assert_close(b[name].cpu(), a[name], rtol=1e-8, atol=1e-10)
    init = initialize(model, cpu, seed=1)
    on = to_device(init, "cuda")
    runs = [(fit_em, {"tol": 1e-10}), (fit_online_em, {"batch_size": 300}),
            (fit_vi, {"steps": 30}), (fit_vi, {"optimizer": "adam", "steps": 40,
                                              "batch_size": 500})]
    for fit, options in runs:
        here, there = fit(model, cpu, init, **options), fit(model, gpu, on, **options)
        assert all(v.device.type == "cuda" for v in there.params.values())
        assert there.log_likelihood == pytest.approx(here.log_likelihood, rel=1e-8)
