"""The Gaussian mixture's block-wise soft E-step is the mixture's E-step, iteration by
iteration; where it does not apply (restarts, missing entries) the mixture's runs."""

from __future__ import annotations

import pytest
import torch
from emvi.inference import fit_em
from emvi.models import GaussianMixture, Mixture, soft_blocks
from emvi.models import gaussian_mixture as gm_module


def blobs(n: int, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, d, generator=gen, dtype=torch.float64) * 3
    return centres[torch.randint(3, (n,), generator=gen)] + torch.randn(
        n, d, generator=gen, dtype=torch.float64)


@pytest.fixture
def soft_steps(monkeypatch):
    """The block-wise steps the Gaussian mixture took."""
    taken = []

    def spy(*args, **kwargs):
        taken.append(soft_blocks.soft_step(*args, **kwargs))
        return taken[-1]

    monkeypatch.setattr(gm_module, "soft_step", spy)
    return taken


def start(model, x):
    d = x.shape[1]
    init = {"weights": torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64),
            "locs": x[[0, 1, 2]] * 0.5}
    if model.family.covariance == "spherical":
        init["scales"] = torch.tensor([1.0, 2.0, 1.5], dtype=torch.float64)
    elif model.family.covariance == "diag":
        init["scales"] = torch.ones(3, d, dtype=torch.float64) * 1.5
    elif model.family.covariance == "full":
        init["scale_tril"] = torch.eye(d, dtype=torch.float64).expand(3, d, d) * 1.5
    else:
        init["scale_tril"] = torch.eye(d, dtype=torch.float64) * 1.5
    return model.params(**init)


@pytest.mark.parametrize("block", [None, 50])  # one block, and many with a ragged end
@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
def test_block_wise_soft_em_equals_the_mixtures(monkeypatch, soft_steps, block, covariance):
    if block is not None:
        monkeypatch.setattr(soft_blocks, "BLOCK_ELEMENTS", block)
    x = blobs(499, 3, seed=0)
    model = GaussianMixture(k=3, dim=3, covariance=covariance)
    generic = Mixture(model.family, 3)
    init = start(model, x)
    fits = [fit_em(m, x, init, max_iter=30, tol=1e-12) for m in (model, generic)]
    a, b = fits
    assert a.iterations == b.iterations > 3
    torch.testing.assert_close(a.objective, b.objective, rtol=1e-13, atol=0)
    for pa, pb in zip(a.param_trace, b.param_trace, strict=True):
        for key in pb:
            torch.testing.assert_close(pa[key], pb[key], rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(a.responsibilities, b.responsibilities, rtol=0, atol=1e-12)
    assert len(soft_steps) == a.iterations + 1  # no fallback
    assert all((s.responsibilities is None) == (block is not None) for s in soft_steps)


def test_e_step_forms_the_responsibilities_whatever_the_blocks(monkeypatch):
    monkeypatch.setattr(soft_blocks, "BLOCK_ELEMENTS", 40)
    x = blobs(200, 2, seed=1)
    model = GaussianMixture(k=3, dim=2)
    resp, log_lik = model.e_step(x, start(model, x))
    assert resp.shape == (200, 3)
    torch.testing.assert_close(resp.sum(-1), torch.ones(200, dtype=torch.float64))
    generic = Mixture(model.family, 3).e_step(x, start(model, x))
    torch.testing.assert_close(log_lik, generic[1], rtol=1e-13, atol=0)


def test_restarts_and_missing_entries_take_the_mixtures_e_step(soft_steps):
    x = blobs(300, 2, seed=2)
    model = GaussianMixture(k=3, dim=2)
    init = start(model, x)
    batch = init.map(lambda v: torch.stack([v, v]))
    fit_em(model, x, batch, max_iter=3)
    holed = x.clone()
    holed[5, 1] = float("nan")
    fit_em(model, holed, init, max_iter=3)
    assert soft_steps == []


@pytest.mark.parametrize("covariance", ["full", "spherical"])
def test_m_step_reuses_the_e_steps_standardised_parameters_only_for_those_tensors(covariance):
    """The M-step takes back what the E-step standardised only for the very same tensors:
    asked about other parameters it computes them afresh."""
    x = blobs(300, 2, seed=3)
    model = GaussianMixture(k=3, dim=2, covariance=covariance)
    a = start(model, x)
    shift = model.shift(x)
    prepared = model.prepare(x, shift)
    stats = model.expect(prepared, a).stats  # stores a's standardised values
    b = a.map(lambda v: v * 1.25)
    fresh = GaussianMixture(k=3, dim=2, covariance=covariance)  # nothing kept
    for key, value in fresh.maximize(stats, b, shift).items():
        assert torch.equal(model.maximize(stats, b, shift)[key], value), key
    a["locs"].mul_(1.25)  # changed in place: the next E-step (on b) replaces what was kept
    model.expect(prepared, b)
    for key, value in fresh.maximize(stats, a, shift).items():
        assert torch.equal(model.maximize(stats, a, shift)[key], value), key
