"""Property tests over random models and data, for every model in the case table.

Each property runs EXAMPLES examples per model (derandomised in CI); the monotone-EM
property lives beside the other invariants in test_invariants.py.
"""

from __future__ import annotations

import pytest
import torch
from emvi.inference import permute, pyro_log_likelihood
from emvi.inference.em import add_stats
from hypothesis import given, settings
from hypothesis import strategies as st
from model_cases import CASES, make

#: the fixed-subset cases run the invariants in test_invariants.py; here, the base models
NAMES = sorted(name for name in CASES if "fixed_" not in name)
EXAMPLES = 25


def draw(name: str, seed: int, n: int):
    """A model, data from one random parameter set, and another random parameter set."""
    model, _ = make(name)
    gen = torch.Generator().manual_seed(seed)
    base = model.simulate(make(name)[1], n=max(n, 2), seed=seed).data
    truth = model.check_params(model.random_params(base, gen))
    data = model.simulate(truth, n=n, seed=seed + 1).data
    return model, data, model.check_params(model.random_params(data, gen))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=EXAMPLES)
@given(seed=st.integers(0, 2**20), n=st.integers(1, 60))
def test_hand_log_likelihood_equals_pyro_enumeration(name, seed, n):
    model, data, params = draw(name, seed, n)
    hand = float(model.log_likelihood(data, params))
    assert hand == pytest.approx(pyro_log_likelihood(model, data, params), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=EXAMPLES)
@given(seed=st.integers(0, 2**20), n=st.integers(1, 60), data_=st.data())
def test_log_likelihood_is_invariant_to_relabelling_components(name, seed, n, data_):
    model, data, params = draw(name, seed, n)
    order = data_.draw(st.permutations(range(model.k)))
    relabelled = permute(model, params, order)
    for key, spec in model.specs.items():
        if spec.fixed:  # the table's fixed values are the same for every component
            relabelled[key] = params[key]
    before = float(model.log_likelihood(data, params))
    after = float(model.log_likelihood(data, relabelled))
    assert after == pytest.approx(before, rel=1e-12, abs=1e-12)
    resp, resp_relabelled = model.e_step(data, params)[0], model.e_step(data, relabelled)[0]
    torch.testing.assert_close(resp_relabelled, resp[:, list(order)], atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=EXAMPLES)
@given(seed=st.integers(0, 2**20), n=st.integers(2, 80), cuts=st.lists(st.floats(0, 1),
                                                                          max_size=4))
def test_chunked_statistics_equal_whole_data_statistics(name, seed, n, cuts):
    model, data, params = draw(name, seed, n)
    shift = model.shift(data)
    whole = model.expect(model.prepare(data, shift), params)
    edges = sorted({0, n, *(int(c * n) for c in cuts)})
    total, log_lik = None, 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        step = model.expect(model.prepare(data[lo:hi], shift), params)
        total = add_stats(total, step.stats)
        log_lik = log_lik + step.log_likelihood
    for key in whole.stats:
        torch.testing.assert_close(total[key], whole.stats[key], rtol=1e-10, atol=1e-9)
    assert float(log_lik) == pytest.approx(float(whole.log_likelihood), rel=1e-12, abs=1e-9)
