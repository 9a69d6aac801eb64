"""Baum-Welch per iteration beside hmmlearn's GaussianHMM (both of its implementations,
``scaling`` and ``log``), from the same start, interleaved in one process; and one
TraceEnum_ELBO step with each of the two Pyro programs of the same HMM.

The per-iteration cost is the difference between fits of ``LONG`` and ``SHORT``
iterations divided by the difference, so one-time costs (checking the data, hmmlearn's
validation) cancel. Before a ratio is printed, the two fits' log-likelihoods after
``LONG`` iterations are asserted equal (1e-6 relative).
"""

from __future__ import annotations

import math
import statistics
from functools import partial

import numpy as np
import torch

#: (sequences, steps, states, dim) with diagonal Gaussians, as the HMM issue names them
SHAPES = [(100, 1_000, 3, 1), (50, 2_000, 10, 5)]
SHORT, LONG = 2, 7


def _setting(sequences: int, steps: int, k: int, d: int, seed: int = 0):
    from ...inference import initialize
    from ...models import GaussianHMM

    model = GaussianHMM(k=k, dim=d, covariance="diag", reg_covar=0.0)
    gen = torch.Generator().manual_seed(seed)
    stay = 0.9
    transition = torch.full((k, k), (1 - stay) / (k - 1), dtype=torch.float64)
    transition.fill_diagonal_(stay)
    truth = model.params(initial=torch.full((k,), 1.0 / k, dtype=torch.float64),
                         transition=transition,
                         locs=torch.randn(k, d, generator=gen, dtype=torch.float64) * 3,
                         scales=0.5 + torch.rand(k, d, generator=gen, dtype=torch.float64))
    data = model.simulate(truth, lengths=[steps] * sequences, seed=seed).data
    return model, data, initialize(model, data, method="kmeans++", seed=0)


def _anchor(hmm, model, init, iterations: int, implementation: str):
    anchor = hmm.GaussianHMM(model.k, covariance_type="diag", n_iter=iterations,
                             tol=-np.inf, init_params="", params="stmc", covars_prior=0.0,
                             covars_weight=1.0, means_weight=0.0,
                             implementation=implementation)
    anchor.startprob_ = init["initial"].numpy()
    anchor.transmat_ = init["transition"].numpy()
    anchor.means_ = init["locs"].numpy()
    anchor.covars_ = init["scales"].numpy() ** 2
    return anchor


def bench_hmm(repeats: int, quick: bool) -> list[dict]:
    """Seconds per Baum-Welch iteration: ours and hmmlearn's faster implementation."""
    return [_baum_welch(shape, repeats, quick) for shape in SHAPES] + [
        _pyro_steps(repeats, quick)]


def _baum_welch(shape, repeats: int, quick: bool) -> dict:
    from hmmlearn import hmm

    from ...inference import fit_em

    sequences, steps, k, d = shape
    if quick:
        sequences = max(sequences // 10, 2)
    model, data, init = _setting(sequences, steps, k, d)
    x, lengths = data.flat().numpy(), data.lengths.tolist()

    def ours(iterations):
        return fit_em(model, data, init, max_iter=iterations, tol=None,
                      record_params=False).log_likelihood

    def theirs(implementation, iterations):
        anchor = _anchor(hmm, model, init, iterations, implementation)
        return anchor.fit(x, lengths).score(x, lengths)

    runs = {}
    for length in (SHORT, LONG):
        runs[f"ours {length}"] = partial(ours, length)
        for impl in ("scaling", "log"):
            runs[f"{impl} {length}"] = partial(theirs, impl, length)
    times, last = interleaved(runs, repeats)
    for impl in ("scaling", "log"):
        assert math.isclose(last[f"ours {LONG}"], last[f"{impl} {LONG}"], rel_tol=1e-6), (
            last[f"ours {LONG}"], last[f"{impl} {LONG}"])
    med = {name: statistics.median(values) for name, values in times.items()}
    per = {name: (med[f"{name} {LONG}"] - med[f"{name} {SHORT}"]) / (LONG - SHORT)
           for name in ("ours", "scaling", "log")}
    fastest = min(("scaling", "log"), key=per.get)
    return {
        "name": "hmm_baum_welch_iteration", "shape": [sequences, steps, k, d],
        "median_seconds": {"ours": per["ours"], "anchor": per[fastest]},
        "ratio": per[fastest] / per["ours"], "target_ratio": 1.5,
        "anchor": f"hmmlearn GaussianHMM(implementation={fastest!r}), the faster of two",
        "hmmlearn_seconds": {"scaling": per["scaling"], "log": per["log"]},
        "log_likelihood_after": last[f"ours {LONG}"],
    }


def _pyro_steps(repeats: int, quick: bool) -> dict:
    """One TraceEnum_ELBO step (loss and backward) with the ``markov`` and the
    ``discrete_hmm`` program of the same HMM (the first shape)."""
    sequences, steps, k, d = SHAPES[0]
    sequences = max(sequences // 10, 2) if quick else sequences
    times, values = {}, {}
    for program in ("markov", "discrete_hmm"):
        times[program], values[program] = _one_step(program, sequences, steps, k, d, repeats)
    assert math.isclose(values["markov"], values["discrete_hmm"], rel_tol=1e-9), values
    return {"name": "hmm_trace_enum_step", "shape": [sequences, steps, k, d],
            "median_seconds": {"ours": times["discrete_hmm"], "anchor": times["markov"]},
            "ratio": times["markov"] / times["discrete_hmm"],
            "anchor": "the pyro.markov program (ours: the DiscreteHMM program)",
            "note": "one loss + backward each; the same marginal log-likelihood asserted"}


def _one_step(program: str, sequences, steps, k, d, repeats) -> tuple[float, float]:
    import pyro
    from pyro.infer import TraceEnum_ELBO

    from ...inference.enumeration import _pair
    from ...models import GaussianHMM

    _, data, init = _setting(sequences, steps, k, d)
    model = GaussianHMM(k=k, dim=d, covariance="diag", reg_covar=0.0, program=program)
    params, (pyro_model, guide) = _pair(model, init)
    elbo = TraceEnum_ELBO(max_plate_nesting=model.plate_nesting(params))
    with pyro.get_param_store().scope():
        for name, value in params.items():
            pyro.param(name, value, constraint=model.specs[name].constraint)

        def step():
            with pyro.validation_enabled(False):
                loss = elbo.differentiable_loss(pyro_model, guide, data)
                loss.backward()
            return float(loss)

        t, last = interleaved({program: step}, max(repeats, 2))
    return statistics.median(t[program]), last[program]


def interleaved(runs, repeats):
    from .__main__ import interleaved as run

    return run(runs, repeats)
