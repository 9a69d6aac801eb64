"""K-means' dedicated Lloyd step is the mixture's hard EM, iteration by iteration."""

from __future__ import annotations

import pytest
import torch
from emvi.inference import fit_em
from emvi.models import KMeans, Mixture
from emvi.models import kmeans as kmeans_module
from emvi.models import lloyd as lloyd_module
from emvi.models.families import Gaussian


def generic(k: int, dim: int, scale: float = 1.0) -> Mixture:
    """K-means written as a plain mixture: the mixture's E-step, no Lloyd step."""
    fixed = {"weights": torch.full((k,), 1.0 / k, dtype=torch.float64),
             "scales": torch.full((k,), scale, dtype=torch.float64)}
    return Mixture(Gaussian(dim, "spherical"), k, fixed=fixed)


def blobs(n: int, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, d, generator=gen, dtype=torch.float64) * 3
    return centres[torch.randint(4, (n,), generator=gen)] + torch.randn(
        n, d, generator=gen, dtype=torch.float64)


@pytest.fixture
def lloyd_steps(monkeypatch):
    """The Lloyd steps K-means took (``None``: it fell back to the mixture's E-step)."""
    taken = []

    def spy(*args, **kwargs):
        taken.append(lloyd_module.lloyd_step(*args, **kwargs))
        return taken[-1]

    monkeypatch.setattr(kmeans_module, "lloyd_step", spy)
    return taken


def assert_same_run(a, b):
    assert a.iterations == b.iterations and a.converged == b.converged
    assert a.events == b.events
    torch.testing.assert_close(a.objective, b.objective, rtol=1e-13, atol=0)
    torch.testing.assert_close(a.log_likelihood_trace, b.log_likelihood_trace, rtol=1e-13,
                               atol=0, equal_nan=True)
    for pa, pb in zip(a.param_trace, b.param_trace, strict=True):
        torch.testing.assert_close(pa["locs"], pb["locs"], rtol=0, atol=1e-12)
    assert torch.equal(a.assignments, b.assignments)


@pytest.mark.parametrize("block", [None, 40])  # one block, and many blocks with a ragged end
@pytest.mark.parametrize("track", [False, True])
def test_lloyd_step_equals_the_mixtures_hard_em(monkeypatch, lloyd_steps, block, track):
    if block is not None:
        monkeypatch.setattr(lloyd_module, "BLOCK_ELEMENTS", block)
    x = blobs(997, 3, seed=0)
    init = x[[0, 1, 2, 3, 4]] * 0.5
    fits = [fit_em(model, x, model.params(locs=init), max_iter=40, tol=1e-12, hard=True,
                   track_log_likelihood=track)
            for model in (KMeans(k=5, dim=3, scale=0.7), generic(5, 3, scale=0.7))]
    assert fits[0].iterations > 3
    assert_same_run(*fits)
    # one step per iteration; untracked, one more for the final marginal log-likelihood
    assert len(lloyd_steps) == fits[0].iterations + 1 + (not track) and all(lloyd_steps)
    assert all((s.responsibilities is None) == (block is not None) for s in lloyd_steps)


def test_lloyd_step_relocates_empty_clusters_as_the_mixture_does(monkeypatch):
    monkeypatch.setattr(lloyd_module, "BLOCK_ELEMENTS", 64)
    x = blobs(500, 2, seed=1)
    init = torch.tensor([[0.0, 0.0], [0.1, 0.0], [1e3, 1e3], [-1e3, 1e3]], dtype=torch.float64)
    fits = [fit_em(model, x, model.params(locs=init), max_iter=15, tol=None, hard=True)
            for model in (KMeans(k=4, dim=2), generic(4, 2))]
    assert len(fits[0].events) >= 2  # both far centres were empty and moved
    assert_same_run(*fits)


def test_points_equally_near_two_centres_are_counted_once(lloyd_steps):
    x = torch.tensor([[-1.0], [0.0], [1.0], [0.0], [5.0]], dtype=torch.float64)
    init = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    fits = [fit_em(model, x, model.params(locs=init), max_iter=5, tol=None, hard=True)
            for model in (KMeans(k=2, dim=1), generic(2, 1))]
    assert_same_run(*fits)
    stats = KMeans(k=2, dim=1).expect(*_prepared(x, init), hard=True, marginal=False).stats
    assert float(stats["counts"].sum()) == len(x)
    assert lloyd_steps[-1] is None  # the tie sent the step to the mixture's E-step


def _prepared(x, locs):
    model = KMeans(k=len(locs), dim=x.shape[1])
    return model.prepare(x, model.shift(x)), model.params(locs=locs)
