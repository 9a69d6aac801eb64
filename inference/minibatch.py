"""Mini-batch VI: TraceEnum_ELBO on a random subset of rows, scaled to the whole data set.

Each Adam step draws ``m`` rows uniformly at random (independently, with replacement:
the sampler holds ``m`` row numbers, never a permutation of all ``n``, so a streamed data
set costs a batch, whatever its size) and evaluates the model's own program on them
with every site inside its ``data`` plate scaled by ``n / m`` (global sites, such as the
priors' ``pyro.sample`` globals, are not scaled). The enumerated assignments are summed
out exactly inside the batch, so the loss is an unbiased estimate of the full-data
``-log p(data)`` (minus the log prior), and so is its gradient: each draw is row ``i``
with probability ``1 / n``, weighing ``n / m``. ``ceil(n / m)`` steps make a pass.

Only the optimiser's steps see mini-batches: the objective trace holds the full-data
objective at the start and after every pass over the data (one extra chunked E-step of
the closed-form model per pass, memory one chunk), so ``iterations`` counts passes, as
online EM's; the notes give the steps.
"""

from __future__ import annotations

import math
import time

import pyro
import torch
from pyro.poutine.messenger import Messenger

from ..models.params import Params
from ..models.validation import InputError
from .em import CACHE_BYTES, Chunks, best_restart
from .fit import Fit, Progress
from .ondisk import Shards
from .vi import Objective, VIOptions, make_optimizer

#: the name of the observations' plate in the row models' programs
DATA_PLATE = "data"


class ScaleDataPlate(Messenger):
    """Multiply the log-probability of every sample site inside the plate ``plate`` by
    ``factor`` (sites outside it, the globals, keep their weight)."""

    def __init__(self, factor: float, plate: str = DATA_PLATE):
        super().__init__()
        self.factor, self.plate = factor, plate
        self.seen = False

    def _process_message(self, msg):
        # the program's own plates are entered inside this messenger, so they have
        # already added their frames to the stack when the message reaches it
        if msg["type"] == "sample" and any(f.name == self.plate
                                           for f in msg["cond_indep_stack"]):
            msg["scale"] = self.factor * msg["scale"]
            self.seen = True


def scaled(program, factor: float):
    """``program`` with its data plate's sites scaled by ``factor``; raises when the
    program has no plate named :data:`DATA_PLATE` (the scaling would be silently lost)."""
    def run(data):
        messenger = ScaleDataPlate(factor)
        with messenger:
            program(data)
        if not messenger.seen:
            raise InputError(f"batch_size: the model's program has no plate named "
                             f"{DATA_PLATE!r} around its observations; mini-batch VI "
                             "scales that plate")
    return run


def minibatch_loss(objective: Objective, batch, n: int) -> torch.Tensor:
    """The ``n / m``-scaled TraceEnum_ELBO loss of one batch ``(m, ...)`` of ``n`` rows: an
    unbiased estimate of the full-data loss, with an unbiased gradient."""
    factor = n / batch.shape[0]
    return objective.elbo.differentiable_loss(scaled(objective.pyro_model, factor),
                                              objective.guide, batch)


def batches(data, batch_size: int, generator: torch.Generator):
    """One pass: ``ceil(n / m)`` batches of ``m = min(batch_size, n)`` rows drawn uniformly
    with replacement; each batch's rows are read in file order (a mapped file pages in
    less)."""
    n = data.shape[0]
    m = min(batch_size, n)
    for _ in range(math.ceil(n / m)):
        yield data[torch.randint(n, (m,), generator=generator).sort().values]


def _full_objective(chunks: Chunks, model, params: Params, posterior: str) -> torch.Tensor:
    """``(R,)`` (or ``(1,)``): the full-data log-likelihood, chunk by chunk, plus the log
    prior for a MAP fit (what batch VI would record)."""
    with torch.no_grad():
        value = chunks.expect(params, False, False)[1]
        if posterior == "map":
            value = value + model.log_prior(params)
        return value.reshape(-1).to(torch.float64)


def fit_minibatch(model, data, params: Params, options: VIOptions, posterior: str,
                  batch_size: int, seed: int, notes: list, chunk_size: int | None = None
                  ) -> Fit:
    """Adam on mini-batches (see the module's docstring); called by
    :func:`~emvi.inference.vi.fit_vi` with ``batch_size``.

    Args:
        params: the starts (``(R, ...)`` on a restart plate, or one set).
        options: validated; ``optimizer`` must be ``adam`` and ``steps`` counts batches.
        posterior: ``point`` or ``map``.
    """
    if options.optimizer != "adam":
        raise InputError("optimizer: mini-batch VI (batch_size) needs 'adam': L-BFGS's line "
                         "search needs a deterministic objective")
    if posterior not in ("point", "map"):
        raise InputError(f"posterior: mini-batch VI (batch_size) takes 'point' or 'map', got "
                         f"{posterior!r}")
    if not (torch.is_tensor(data) or isinstance(data, Shards)):
        raise InputError("data: mini-batch VI takes rows (a tensor); sequences (HMMs) are not "
                         "supported yet")
    n = model.n_observations(data)
    batched = bool(params.batch_shape(model.specs))
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with pyro.get_param_store().scope():
        shift = model.shift(data)
        chunks = Chunks(model, data, shift, chunk_size, CACHE_BYTES)
        first = data[:batch_size]
        objective = Objective(model, first, params, posterior)
        objective.data = first  # the guide's parameters are made on a batch
        opt = make_optimizer(options, objective.leaves())
        values = objective.snapshot()
        objectives = [_full_objective(chunks, model, values, posterior)]
        seconds, trace = [time.perf_counter() - start], [values]
        step, passes = 0, 0
        while step < options.steps:
            for batch in batches(data, batch_size, generator):
                opt.zero_grad()
                with pyro.validation_enabled(step == 0):  # checked once, on the first batch
                    loss = minibatch_loss(objective, batch, n)
                loss.backward()
                opt.step()
                step += 1
                if step == options.steps:
                    break
            passes += 1
            values = objective.snapshot()
            if not all(bool(torch.isfinite(v).all()) for v in values.values()):
                notes.append(f"stopped after pass {passes}: the parameters became non-finite; "
                             "the last finite ones are reported")
                break
            objectives.append(_full_objective(chunks, model, values, posterior))
            seconds.append(time.perf_counter() - start)
            trace.append(values)
            if options.callback is not None:
                options.callback(Progress("vi-minibatch", passes, math.ceil(
                    options.steps * batch_size / n), float(objectives[-1].max()), seconds[-1]))
    notes.append(f"mini-batch VI: {step} Adam steps on batches of {min(batch_size, n)} rows "
                 f"(lr {options.lr:g}) over {passes} pass(es); the objective is the full "
                 "data's, after every pass")
    return _result(model, data, objectives, seconds, trace, batched, posterior, notes,
                   options.record_params, chunk_size)


def _result(model, data, objectives, seconds, trace, batched, posterior, notes, record,
            chunk_size) -> Fit:
    table = torch.stack(objectives)  # (T, R)
    best = best_restart(table[-1])
    pick = (lambda p: p.select(best, model.specs)) if batched else (lambda p: p)
    params = pick(trace[-1])
    lls = table[:, best].clone()
    if posterior == "map":  # the trace is the log posterior: report the likelihood beside it
        log_likelihood = float(Chunks(model, data, model.shift(data), chunk_size,
                                      CACHE_BYTES).expect(params, False, False)[1])
    else:
        log_likelihood = float(lls[-1])
    notes += model.diagnose(data, params)
    return Fit(model=model, method=f"vi-minibatch{'-map' if posterior == 'map' else ''}-adam",
               params=params, log_likelihood=log_likelihood, objective=lls,
               log_likelihood_trace=lls.clone(),
               seconds=torch.tensor(seconds, dtype=torch.float64),
               iterations=len(objectives) - 1, converged=False, data=data,
               chunk_size=chunk_size,
               param_trace=[pick(p) for p in trace] if record else None,
               restart_log_likelihoods=table[-1].clone(), restart_objectives=table[-1].clone(),
               restart_converged=[False] * table.shape[1], best_restart=best, m_step="none",
               notes=notes)
