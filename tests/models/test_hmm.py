"""Hidden Markov models: the sequence container, bad input, the numerics against a plain
log-space forward–backward, fixed parameters and a user's own emission family."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from emvi.inference import fit_em, initialize, pyro_log_likelihood
from emvi.models import (
    HMM,
    CategoricalHMM,
    Exponential,
    Family,
    GaussianHMM,
    ParamSpec,
    PoissonHMM,
    Sequences,
)
from emvi.models.families.base import pick
from emvi.models.hmm_numerics import ENGINES, forward_backward, viterbi
from hypothesis import given, settings
from hypothesis import strategies as st
from model_cases import STICKY
from torch.distributions import constraints

GAUSS = GaussianHMM(k=2, dim=1)
TRUTH = GAUSS.params(initial=[0.6, 0.4], transition=STICKY, locs=[[-1.0], [2.0]],
                     scales=[[1.0], [0.5]])
SEQS = [np.arange(5.0), np.array([1.0, -1.0]), np.linspace(0, 1, 7)]


# -- the container --------------------------------------------------------------------
def test_sequences_from_a_list_a_padded_array_and_one_array_agree():
    listed = GAUSS.check_data(SEQS)
    assert len(listed) == 3 and listed.lengths.tolist() == [5, 2, 7]
    assert listed.n_observations == 14 and listed.values.shape == (3, 7, 1)
    padded = np.zeros((3, 7))
    for i, s in enumerate(SEQS):
        padded[i, : len(s)] = s
    padded[1, 2:] = np.nan  # what lies beyond a sequence's length is ignored
    again = GAUSS.check_data(Sequences(padded, [5, 2, 7]))
    torch.testing.assert_close(again.flat(), listed.flat())
    one = GAUSS.check_data(SEQS[0])
    assert len(one) == 1 and one.n_observations == 5
    torch.testing.assert_close(listed[2].reshape(-1), torch.as_tensor(SEQS[2]))
    chunks = GAUSS.split(listed, 2)
    assert [len(c) for c in chunks] == [2, 1] and chunks[1].max_length == 7


def test_padded_steps_hold_a_valid_value_of_their_sequence():
    data = PoissonHMM(k=2).check_data([[3, 4], [7, 1, 2, 9]])
    assert data.values[0].tolist() == [3.0, 4.0, 3.0, 3.0]  # counts a Poisson accepts


BAD = [
    # (label, call, words in the message)
    ("an empty sequence", lambda: GAUSS.check_data([np.ones(3), np.ones(0)]),
     "data[1]: expected at least one step"),
    ("no sequences", lambda: GAUSS.check_data([]), "data: expected"),
    ("too few lengths", lambda: Sequences(np.zeros((2, 5)), [3]),
     "lengths: expected one length per sequence (2)"),
    ("a length beyond the padding", lambda: Sequences(np.zeros((2, 5)), [3, 6]),
     "lengths: expected whole numbers in 1..5"),
    ("a zero length", lambda: Sequences(np.zeros((2, 5)), [0, 5]), "lengths:"),
    ("a fractional length", lambda: Sequences(np.zeros((2, 5)), [2.5, 5]), "lengths:"),
    ("NaN for a family without missing values",
     lambda: HMM(Exponential(), 2).check_data([np.ones(3), np.array([1.0, 2.0, math.nan])]),
     "data[1]: missing values (NaN) at step 2; exponential emissions cannot take missing"),
    ("NaN in one sequence (no other)", lambda: HMM(Exponential(), 2).check_data(
        [math.nan, 1.0, math.nan]), "data: missing values (NaN) at steps 0, 2;"),
    ("an infinity, not a missing value",
     lambda: GAUSS.check_data([np.ones(3), np.array([1.0, math.inf, math.nan])]),
     "data[1]: expected finite values (or NaN for a missing entry), found inf at index (1, 0)"),
    ("a coordinate missing at every step", lambda: fit_em(
        GaussianHMM(k=2, dim=2), [np.array([[1.0, math.nan], [2.0, math.nan]]),
                                  np.array([[0.0, math.nan]])], None),
     "data: every entry of column 1 is missing"),
    ("a missing step of a family without missing values",
     lambda: HMM(Exponential(), 2).check_data([[1.0, 2.0], [math.nan]]),
     "data[1]: missing values (NaN) at step 0"),
    ("steps of other shapes", lambda: GAUSS.check_data([np.ones((3, 1)), np.ones((2, 2))]),
     "data[1]: expected steps of shape (1,)"),
    ("a bad symbol", lambda: CategoricalHMM(k=2, categories=6).check_data([[0, 5], [6, 1]]),
     "data[1]: expected labels in 0..5"),
    ("fewer observations than states", lambda: fit_em(GaussianHMM(k=3, dim=1), [[0.0, 1.0]],
                                                      TRUTH), "k: expected at most"),
    ("fewer observations (init)", lambda: initialize(GaussianHMM(k=3, dim=1), [[0.0, 1.0]]),
     "k: expected at most"),
    ("transition rows not summing to one",
     lambda: GAUSS.params(initial=[0.5, 0.5], transition=[[0.5, 0.4], [0.1, 0.9]],
                          locs=[[0.0], [1.0]], scales=[[1.0], [1.0]]),
     "params.transition: expected non-negative weights summing to 1"),
    ("a negative transition",
     lambda: GAUSS.check_params({**TRUTH, "transition": [[1.2, -0.2], [0.1, 0.9]]}),
     "params.transition"),
    ("a transition of the wrong shape",
     lambda: GAUSS.check_params({**TRUTH, "transition": [0.5, 0.5]}), "params.transition"),
    ("an unknown program", lambda: GaussianHMM(k=2, program="hmm"), "program: expected one of"),
    ("a family with covariates", lambda: make_regression_hmm(), "covariates"),
    ("bad simulation lengths", lambda: GAUSS.simulate(TRUTH, lengths=[3, 0]), "lengths[1]"),
    ("no simulation lengths", lambda: GAUSS.simulate(TRUTH), "lengths:"),
]


def make_regression_hmm():
    from emvi.models import LinearRegression

    return HMM(LinearRegression(1), 2)


@pytest.mark.parametrize("label,call,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_naming_the_argument(label, call, words):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert words in str(info.value), str(info.value)


# -- the numerics against a plain log-space forward-backward --------------------------
def log_space(log_e, lengths, initial, transition):
    """The textbook recursions in log space, one sequence at a time (the reference).

    Returns the log-likelihood ``(R,)``, posteriors and filtered probabilities ``(R, B, T,
    k)`` and expected transitions ``(R, k, k)``.
    """
    R, B, T, k = log_e.shape
    f64 = torch.float64
    total, post = torch.zeros(R, dtype=f64), torch.zeros(R, B, T, k, dtype=f64)
    filtered = torch.zeros(R, B, T, k, dtype=f64)
    xi = torch.zeros(R, k, k, dtype=f64)
    for r in range(R):
        log_a = transition[r].log()
        for b in range(B):
            n, e = int(lengths[b]), log_e[r, b, : int(lengths[b])]
            fwd = torch.empty(n, k, dtype=torch.float64)
            fwd[0] = initial[r].log() + e[0]
            for t in range(1, n):
                fwd[t] = torch.logsumexp(fwd[t - 1, :, None] + log_a, 0) + e[t]
            bwd = torch.zeros(n, k, dtype=torch.float64)
            for t in range(n - 2, -1, -1):
                bwd[t] = torch.logsumexp(log_a + (e[t + 1] + bwd[t + 1])[None], 1)
            ll = torch.logsumexp(fwd[-1], 0)
            total[r] += ll
            post[r, b, :n] = (fwd + bwd - ll).exp()
            filtered[r, b, :n] = torch.softmax(fwd, -1)
            xi[r] += (fwd[:-1, :, None] + log_a + (e[1:] + bwd[1:])[:, None, :] - ll).exp().sum(0)
    return total, post, filtered, xi


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), every=st.integers(1, 9),
       lengths=st.lists(st.integers(1, 25), min_size=1, max_size=4), spread=st.sampled_from(
           [1.0, 30.0, 400.0]), engine=st.sampled_from(ENGINES), restarts=st.integers(1, 2))
def test_forward_backward_equals_log_space_recursions(seed, k, every, lengths, spread, engine,
                                                      restarts):
    """Any normalisation interval, each engine (numpy, in-place torch, autograd), one or two
    parameter sets, ragged lengths and emission log densities spread over hundreds of nats
    (the scaled vectors underflow without their rescaling; a lazy pass is redone)."""
    gen = torch.Generator().manual_seed(seed)
    R, B, T = restarts, len(lengths), max(lengths)
    lengths = torch.tensor(lengths)
    mask = torch.arange(T) < lengths[:, None]
    log_e = spread * torch.randn(R, B, T, k, generator=gen, dtype=torch.float64) * mask[..., None]
    transition = torch.rand(R, k, k, generator=gen, dtype=torch.float64) + 0.01
    transition /= transition.sum(-1, keepdim=True)
    initial = torch.rand(R, k, generator=gen, dtype=torch.float64) + 0.01
    initial /= initial.sum(-1, keepdim=True)
    total, post, filtered, xi = log_space(log_e, lengths, initial, transition)
    out = forward_backward(log_e, mask, initial, transition, every, filtered=True,
                           engine=engine)
    torch.testing.assert_close(out.log_likelihood, total, rtol=1e-11, atol=0)
    torch.testing.assert_close(out.posteriors, post, rtol=0, atol=1e-9)
    torch.testing.assert_close(out.filtered * mask[..., None], filtered, rtol=0, atol=1e-9)
    torch.testing.assert_close(out.transitions, xi, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(out.predictive.sum((1, 2)), total, rtol=1e-11, atol=0)
    paths, scores = viterbi(log_e, mask, initial.log(), transition.log())
    for r in range(R):  # the path's score is its own log joint, and nothing beats it
        for b in range(B):
            n, z = int(lengths[b]), paths[r, b, : int(lengths[b])]
            joint = initial[r, z[0]].log() + log_e[r, b, torch.arange(n), z].sum()
            joint = joint + transition[r, z[:-1], z[1:]].log().sum()
            assert float(joint) == pytest.approx(float(scores[r, b]), rel=1e-12, abs=1e-9)


def test_a_lazy_pass_that_falls_too_low_is_redone_normalising_every_step(monkeypatch):
    """Every step's emissions favour another state by 400 nats while the chain almost
    never moves: each step's predictive probability is about 1e-9, the totals fall below
    the floor within 16 steps, the lazy pass gives up and the per-step pass gives the
    answer of ``every=1``; the same data 400 times gentler stay on the lazy pass."""
    import emvi.models.hmm_numerics as numerics

    T = 40
    log_e = -400 * torch.ones(1, 3, T, 3, dtype=torch.float64)
    log_e[..., torch.arange(T), torch.arange(T) % 3] = 0.0
    initial = torch.full((1, 3), 1 / 3, dtype=torch.float64)
    transition = torch.full((1, 3, 3), 1e-9, dtype=torch.float64) + (1 - 3e-9) * torch.eye(3)
    calls = []
    recursions = numerics._recursions

    def spy(both, initial, transition, every, engine):
        out = recursions(both, initial, transition, every, engine)
        calls.append((every, out is None))
        return out

    monkeypatch.setattr(numerics, "_recursions", spy)
    lazy = forward_backward(log_e, None, initial, transition, 16)
    assert calls == [(16, True), (1, False)]
    plain = forward_backward(log_e, None, initial, transition, 1)
    torch.testing.assert_close(lazy.posteriors, plain.posteriors, rtol=0, atol=0)
    calls.clear()
    forward_backward(log_e / 400, None, initial, transition, 16)  # gentle: one lazy pass
    assert calls == [(16, False)]


def test_a_long_sequence_with_extreme_emissions_stays_finite_and_exact():
    gen = torch.Generator().manual_seed(0)
    T, k = 20_000, 3
    log_e = 300 * torch.randn(1, 1, T, k, generator=gen, dtype=torch.float64)
    transition = torch.full((1, k, k), 0.05, dtype=torch.float64) + 0.85 * torch.eye(k)
    initial = torch.full((1, k), 1 / 3, dtype=torch.float64)
    out = forward_backward(log_e, None, initial, transition)
    assert bool(torch.isfinite(out.posteriors).all())
    assert bool(torch.isfinite(out.transitions).all())
    # the expected transitions are T - 1 in all; the predictive densities add up
    assert float(out.transitions.sum()) == pytest.approx(T - 1, rel=1e-10)
    assert float(out.predictive.sum()) == pytest.approx(float(out.log_likelihood), rel=1e-12)
    torch.testing.assert_close(out.posteriors.sum(-1), torch.ones(1, 1, T, dtype=torch.float64))


# -- fixed parameters and user families -------------------------------------------------
def test_a_fixed_transition_stays_and_the_rest_is_fitted():
    model = GaussianHMM(k=2, dim=1, fixed={"transition": STICKY})
    truth = model.params(initial=[0.5, 0.5], locs=[[-2.0], [2.0]], scales=[[1.0], [1.0]])
    data = model.simulate(truth, lengths=[200] * 5, seed=1).data
    fit = fit_em(model, data, initialize(model, data, seed=0), tol=1e-10)
    assert torch.equal(fit.params["transition"], torch.tensor(STICKY, dtype=torch.float64))
    assert float((fit.params["locs"].sort(0).values - truth["locs"]).abs().max()) < 0.3


class Geometric(Family):
    """A user's family: failures before the first success, p per state."""

    name = "geometric"
    discrete = True

    def specs(self, k):
        return {"p": ParamSpec((k,), constraints.unit_interval, doc="success probability")}

    def check_data(self, data, name="data"):
        from emvi.models.validation import check_data

        return check_data(data, name, ())

    def statistics(self, data, shift):
        return data.unsqueeze(0)

    def natural(self, params, shift):
        p = params["p"]
        return (1 - p).log().unsqueeze(-1), -p.log()

    def maximize(self, stats, params, fixed=frozenset()):
        mean = stats["sums"][..., 0] / stats["counts"]
        return {"p": 1 / (1 + mean)}

    def distribution(self, params, z, inputs=None):
        import pyro.distributions as dist

        return dist.Geometric(probs=pick(params["p"], z, 0))

    def random_params(self, k, data, generator):
        return {"p": 0.2 + 0.6 * torch.rand(k, generator=generator, dtype=data.dtype)}


def test_a_user_family_works_as_emissions_of_both_programs():
    model = HMM(Geometric(), 2)
    truth = model.params(initial=[0.5, 0.5], transition=STICKY, p=[0.7, 0.1])
    data = model.simulate(truth, lengths=[8, 3, 6], seed=2).data
    hand = float(model.log_likelihood(data, truth))
    assert hand == pytest.approx(pyro_log_likelihood(model, data, truth), rel=1e-9)
    fast = HMM(Geometric(), 2, program="discrete_hmm")
    assert hand == pytest.approx(pyro_log_likelihood(fast, data, truth), rel=1e-9)
    fit = fit_em(model, data, truth, max_iter=50)
    assert fit.log_likelihood >= hand


def test_simulation_repeats_with_its_seed_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = GAUSS.simulate(TRUTH, lengths=[5, 3], seed=4)
    b = GAUSS.simulate(TRUTH, lengths=[5, 3], seed=4)
    assert torch.equal(a.data.values, b.data.values) and torch.equal(a.assignments, b.assignments)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.assignments.shape == (8,) and a.data.lengths.tolist() == [5, 3]


def test_fit_conveniences_score_bic_and_sample():
    data = GAUSS.simulate(TRUTH, lengths=[40, 25], seed=5).data
    fit = fit_em(GAUSS, data, initialize(GAUSS, data, seed=0), tol=1e-9)
    n = data.n_observations
    # per-step predictive densities add up to the log-likelihood
    assert fit.score(data) * n == pytest.approx(fit.log_likelihood, rel=1e-10)
    assert fit.bic(data) == pytest.approx(-2 * fit.log_likelihood + 7 * math.log(n), rel=1e-10)
    assert fit.responsibilities.shape == (n, 2) and fit.assignments.shape == (n,)
    sample = fit.sample(30, seed=1)
    assert sample.data.n_observations == 30
    torch.testing.assert_close(fit.predict_proba(data), GAUSS.posterior(data, fit.params))
