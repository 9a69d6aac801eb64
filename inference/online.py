"""Online (stepwise) EM: running sufficient statistics over mini-batches (Cappé & Moulines, 2009).

After each mini-batch ``b`` of ``m`` observations, the per-observation statistics move
towards the batch's:

    s <- s + gamma_t (E[s | b] / m - s),    gamma_t = (t + t0)^(-alpha),  alpha in (1/2, 1]

(``s`` is the first batch's own statistics at ``t = 1``), and the M-step is the model's
own closed-form one, on ``n s`` (``n``: observations in the data), so priors weigh
against the whole data set as in batch EM. With ``polyak``, the returned parameters are
the average of the iterates of the second half of the run (Polyak-Ruppert tail
averaging), which removes most of the noise a step size with ``alpha < 1`` leaves.

Each pass visits the data in a fresh seeded random order; the objective trace holds the
full-data log-likelihood at the start and after every pass (one extra E-step per pass,
chunked), so ``iterations`` counts passes; the notes give the mini-batch M-steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from ..models.params import Params
from ..models.validation import InputError, check_callable, precision_notes
from .device import check_same_device
from .em import CACHE_BYTES, Chunks, best_restart
from .fit import Fit, Progress, warnings_as_notes
from .ondisk import Shards, check_rows
from .options import ONLINE


def step_size(t: int, alpha: float, t0: float) -> float:
    """``gamma_t = (t + t0)^(-alpha)`` for the ``t``-th mini-batch (``t >= 1``); 1 at the
    first, whatever ``t0`` (the running statistics start as the first batch's)."""
    return 1.0 if t == 1 else (t + t0) ** (-alpha)


def _batches(data: torch.Tensor, batch_size: int, generator: torch.Generator):
    """``(m, ...)`` mini-batches of the rows in a random order (the last may be smaller)."""
    order = torch.randperm(data.shape[0], generator=generator)
    for start in range(0, len(order), batch_size):
        yield data[order[start: start + batch_size]]


def fit_online_em(model, data, init, *, batch_size: int = ONLINE["batch_size"].default,
                  alpha: float = ONLINE["alpha"].default, t0: float = ONLINE["t0"].default,
                  passes: int = ONLINE["passes"].default,
                  polyak: bool = ONLINE["polyak"].default, seed: int = ONLINE["seed"].default,
                  callback: Callable[[Progress], None] | None = None,
                  chunk_size: int | None = None) -> Fit:
    """Fit ``model`` to ``data`` by online (stepwise) EM from ``init``.

    Args:
        model: a model whose M-step is closed-form (additive statistics).
        data: ``(n, ...)`` observations (a memory-mapped array works: only mini-batches
            and chunks are read).
        init: initial parameters; ``(R, ...)`` runs R restarts at once, the best (highest
            final log-likelihood) kept.
        batch_size: observations (rows) per mini-batch.
        alpha: step-size exponent in (1/2, 1]; 1 gives the running average of batch EM's
            statistics, smaller forgets the early (poor) parameters faster.
        t0: step-size offset ``>= 0``: larger takes smaller early steps.
        passes: passes over the data.
        polyak: return the average of the second half's iterates.
        seed: the order of the mini-batches (a private generator).
        callback: called with a :class:`Progress` after every pass.
        chunk_size: observations per chunk of the full-data E-step after each pass.

    Returns:
        A :class:`Fit` (method ``online-em``); ``objective`` per pass (index 0 = init).
    """
    notes = precision_notes(data)
    data = check_rows(model, data)
    model.check_fit_data(data)
    params = model.check_params(init, "init")
    check_same_device(data, params)
    batch_size = ONLINE["batch_size"].check(batch_size, "batch_size")
    alpha = ONLINE["alpha"].check(alpha, "alpha")
    t0 = ONLINE["t0"].check(t0, "t0")
    passes = ONLINE["passes"].check(passes, "passes")
    polyak = ONLINE["polyak"].check(polyak, "polyak")
    seed = ONLINE["seed"].check(seed, "seed")
    callback = None if callback is None else check_callable(callback, "callback")
    if not (torch.is_tensor(data) or isinstance(data, Shards)):
        raise InputError("data: online EM takes rows (a tensor); sequences (HMMs) are not "
                         "supported yet")
    if not model.chunkable or model.m_step_kind != "closed-form":
        raise InputError("model: online EM needs a closed-form M-step with additive "
                         f"statistics; {model.describe()} has a generic one")
    batch = params.batch_shape(model.specs)
    if len(batch) > 1:
        raise InputError(f"init: expected at most one restart dimension, got batch shape {batch}")

    start = time.perf_counter()
    n = model.n_observations(data)
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode(), warnings_as_notes(notes):
        shift = model.shift(data)
        full = Chunks(model, data, shift, chunk_size, CACHE_BYTES)
        lls = [_log_likelihood(full, params)]
        seconds = [time.perf_counter() - start]
        trace = [params]
        running, t, average, averaged = None, 0, None, 0
        total_steps = passes * math.ceil(n / batch_size)
        for p in range(passes):
            for piece in _batches(data, batch_size, generator):
                t += 1
                step = model.expect(model.prepare(piece, shift), params, False, False)
                m = model.n_observations(piece)
                mean = {key: value / m for key, value in step.stats.items()}
                gamma = step_size(t, alpha, t0)
                running = mean if running is None else {
                    key: running[key] + gamma * (mean[key] - running[key]) for key in mean}
                params = model.maximize({key: n * value for key, value in running.items()},
                                        params, shift)
                if polyak and t > total_steps // 2:
                    averaged += 1
                    average = params if average is None else Params(
                        {k: average[k] + (params[k] - average[k]) / averaged for k in params})
            current = average if polyak and average is not None else params
            lls.append(_log_likelihood(full, current))
            seconds.append(time.perf_counter() - start)
            trace.append(current)
            if callback is not None:
                callback(Progress("online-em", p + 1, passes, float(lls[-1].max()),
                                  seconds[-1]))
        final = trace[-1]
    notes.append(f"online EM: {t} mini-batch M-steps of {batch_size} over {passes} pass(es), "
                 f"step (t + {t0:g})^-{alpha:g}" + (", Polyak-averaged" if polyak else ""))
    return _result(model, data, final, trace, lls, seconds, bool(batch), notes, chunk_size)


def _log_likelihood(chunks: Chunks, params: Params) -> torch.Tensor:
    """``(R,)`` (or ``(1,)``) full-data marginal log-likelihood, chunk by chunk."""
    return chunks.expect(params, False, False)[1].reshape(-1).to(torch.float64)


def _result(model, data, final, trace, lls, seconds, batched, notes, chunk_size) -> Fit:
    lls = torch.stack(lls)  # (T, R)
    best = best_restart(lls[-1])
    params = final.map(torch.clone)
    chosen = params.select(best, model.specs) if batched else params
    param_trace = [p.map(torch.clone) for p in trace]
    if batched:
        param_trace = [p.select(best, model.specs) for p in param_trace]
    notes = list(notes) + model.diagnose(data, chosen)
    return Fit(model=model, method="online-em", params=chosen,
               log_likelihood=float(lls[-1, best]), objective=lls[:, best].clone(),
               log_likelihood_trace=lls[:, best].clone(),
               seconds=torch.tensor(seconds, dtype=torch.float64),
               iterations=len(trace) - 1, converged=False, data=data, chunk_size=chunk_size,
               param_trace=param_trace, restart_log_likelihoods=lls[-1].clone(),
               restart_objectives=lls[-1].clone(),
               restart_converged=[False] * lls.shape[1], best_restart=best,
               m_step=model.m_step_kind, notes=notes)
