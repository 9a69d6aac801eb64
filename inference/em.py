"""The one EM loop for every model: E-step, M-step, trace, convergence, restarts, hard EM.

The loop only talks to a model through ``shift``, ``prepare``, ``expect``,
``maximize`` (and, for hard EM, ``empty_components`` and ``move_points``; see
:mod:`models.base`). Statistics are summed over chunks of the data, so memory
stays at the data plus one chunk's intermediates, and the same code would sum
statistics across processes.

Convergence is unit-free (as scikit-learn's): a restart stops when its objective
*per observation* changes by at most ``tol`` in absolute value. Rescaling the
data shifts the log-likelihood by ``n log(scale)`` at every iteration and leaves
that change, and so the iteration count, as it was.

Restarts run in one vectorised batch; a restart that has converged (or whose
objective stopped being finite) leaves the batch, so it neither moves nor costs
anything while the others go on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..models.params import Params
from ..models.validation import InputError, check_bool, check_callable, precision_notes
from .device import check_same_device
from .fit import Fit, Progress, warnings_as_notes
from .intraop import serial_when_small
from .ondisk import Shards, check_rows
from .options import EM

#: prepared statistics up to this size are computed once and kept for all iterations
CACHE_BYTES = 1 << 30


def add_stats(a: dict | None, b: dict) -> dict:
    """Sum two additive statistics (dicts of tensors)."""
    return dict(b) if a is None else {key: a[key] + b[key] for key in b}


def _tensors(value) -> list[torch.Tensor]:
    """The tensors in a prepared chunk (a tensor, or tuples of them, nested: an HMM's)."""
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    return []


class Chunks:
    """The data split into chunks, with each chunk's prepared form cached when it fits."""

    def __init__(self, model, data, shift, chunk_size: int | None, cache_bytes: int,
                 reducer=None):
        self.model, self.data, self.shift, self.reducer = model, data, shift, reducer
        n = model.n_units(data)
        if not model.chunkable:  # its statistics are not additive
            if chunk_size is not None:
                raise InputError("chunk_size: this model's M-step is generic (numerical) and "
                                 "needs all the data at once")
            chunk_size, cache_bytes = n, float("inf")
        # rows: the first 16 (splitting all the data into 16-row views costs n/16 objects)
        rows = torch.is_tensor(data) or isinstance(data, Shards)
        probe_data = data[:16] if rows else model.split(data, 16)[0]
        probe = model.prepare(probe_data, shift)
        parts = _tensors(probe)
        unit_bytes = sum(t.numel() * t.element_size() for t in parts) / model.n_units(probe_data)
        # no chunk_size: prepare once and keep it if it fits (fastest); with a chunk_size,
        # prepare each chunk anew every iteration, so memory stays at one chunk's worth
        cache = chunk_size is None and unit_bytes * n <= cache_bytes
        if chunk_size is None:
            chunk_size = n if cache else max(1, int(cache_bytes // unit_bytes))
        self.chunk_size = chunk_size
        # shards: chunks inside one file each (no copy across a boundary)
        self.pieces = (data.pieces(chunk_size) if isinstance(data, Shards)
                       else model.split(data, chunk_size))
        self.cache = [model.prepare(piece, shift) for piece in self.pieces] if cache else None

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def n_observations(self) -> int:
        """Observations of the whole fit: with a ``reducer``, summed over its processes."""
        if self.reducer is not None:
            return self.reducer.n_observations
        return self.model.n_observations(self.data)

    def prepared(self):
        if self.cache is not None:
            yield from self.cache
        else:
            for piece in self.pieces:
                yield self.model.prepare(piece, self.shift)

    def expect(self, params: Params, hard: bool, keep_scores: bool, marginal: bool = True):
        """E-step over all chunks: summed stats, log-likelihood, objective; scores if asked.

        Returns:
            ``(stats, log_likelihood (*B,) or None, objective (*B,), responsibilities
            (*B, n, k) when the data are one chunk else None, scores (*B, n) or None)``.
        """
        stats, log_lik, objective, scores, last = None, 0.0, 0.0, [], None
        for prepared in self.prepared():
            step = self.model.expect(prepared, params, hard, marginal)
            stats = add_stats(stats, step.stats)
            if step.log_likelihood is step.objective:  # the first chunk's as it is
                log_lik = objective = (step.objective if last is None
                                       else objective + step.objective)
            else:
                log_lik = None if step.log_likelihood is None else log_lik + step.log_likelihood
                objective = objective + step.objective
            if keep_scores:
                scores.append(step.scores)
            last = step
        if keep_scores:  # one chunk: its scores as they are (a copy of n floats per iteration)
            scores = scores[0] if len(scores) == 1 else torch.cat(scores, -1)
        else:
            scores = None
        responsibilities = last.responsibilities if len(self) == 1 else None
        if self.reducer is not None:  # summed over processes (inference/distributed.py)
            stats, log_lik, objective = self.reducer.sum(stats, log_lik, objective)
        return stats, log_lik, objective, responsibilities, scores


def _relocate_empty(model, chunks: Chunks, stats: dict, scores, params: Params, batch):
    """Hard EM: move each empty component to the point farthest from its centre.

    The farthest points are those with the lowest log joint under their MAP
    component (as scikit-learn's k-means); the model moves them in its statistics.

    Returns:
        The corrected statistics and the relocated components, ``[(row, component)]``
        where ``row`` indexes the batch (``None`` unbatched).
    """
    if chunks.reducer is not None:  # the farthest points of all processes
        return chunks.reducer.relocate(model, chunks, stats, scores, params, batch)
    empty = model.empty_components(stats)
    if not bool(empty.any()):
        return stats, []
    stats = {key: value.clone() for key, value in stats.items()}
    moved = []
    for b in range(math.prod(batch)) if batch else [None]:
        targets = torch.nonzero(empty if b is None else empty[b]).flatten()
        if len(targets) == 0:
            continue
        order = torch.argsort(scores if b is None else scores[b])[: len(targets)]
        local = params if b is None else params.select(b, model.specs)
        model.move_points(stats, b, targets, order, chunks.data, local, chunks.shift)
        moved += [(b, int(t)) for t in targets]
    return stats, moved


def best_restart(objectives: torch.Tensor) -> int:
    """The restart with the highest final objective; NaN counts as the worst, never best.

    Args:
        objectives: ``(R,)`` final objectives.
    """
    safe = torch.where(torch.isnan(objectives), torch.full_like(objectives, -math.inf),
                       objectives)
    return int(safe.argmax())


@dataclass
class EMRun:
    """The state of one EM run over a batch of ``R`` restarts.

    Attributes:
        params: ``(*B, ...)`` current parameters of every restart.
        active: indices of the restarts still iterating.
        objectives: per iteration, every restart's objective (``R`` floats; a restart
            that left the batch repeats its last value).
        log_likelihoods: the same for the marginal log-likelihood (NaN: not computed).
        iterations: M-steps taken by each restart.
        converged: whether each restart met the tolerance.
        stopped: restarts that left because their objective was not finite.
    """

    params: Params
    restarts: int
    active: list = field(default_factory=list)
    objectives: list = field(default_factory=list)
    log_likelihoods: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    trace: list = field(default_factory=list)
    events: list = field(default_factory=list)
    iterations: list = field(default_factory=list)
    converged: list = field(default_factory=list)
    stopped: list = field(default_factory=list)
    responsibilities: torch.Tensor | None = None

    def __post_init__(self):
        self.active = list(range(self.restarts))
        self.iterations = [0] * self.restarts
        self.converged = [False] * self.restarts

    def record(self, objective: torch.Tensor, log_lik: torch.Tensor | None, seconds: float):
        """Store this iteration's values for the active restarts (others repeat theirs)."""
        same = log_lik is objective  # soft EM: one host synchronisation, not two
        objective = objective.reshape(-1).tolist()
        log_lik = (objective if same else [math.nan] * len(objective) if log_lik is None
                   else log_lik.reshape(-1).tolist())
        row = list(self.objectives[-1]) if self.objectives else [math.nan] * self.restarts
        lls = list(self.log_likelihoods[-1]) if self.log_likelihoods else [math.nan] * self.restarts
        for i, r in enumerate(self.active):
            row[r], lls[r] = objective[i], log_lik[i]
        self.objectives.append(row)
        self.log_likelihoods.append(lls)
        self.seconds.append(seconds)


class Options:
    """Validated arguments of :func:`fit_em`, checked against the one table of options."""

    def __init__(self, max_iter, tol, hard, chunk_size, callback, record_params,
                 track_log_likelihood, cache_bytes, model):
        self.max_iter = EM["max_iter"].check(max_iter, "max_iter")
        self.tol = EM["tol"].check(tol, "tol")
        hard = EM["hard"].check(hard, "hard")
        self.hard = model.default_hard if hard is None else hard
        self.chunk_size = EM["chunk_size"].check(chunk_size, "chunk_size")
        self.callback = None if callback is None else check_callable(callback, "callback")
        self.record_params = check_bool(record_params, "record_params")
        self.marginal = check_bool(track_log_likelihood, "track_log_likelihood") or not self.hard
        self.cache_bytes = cache_bytes
        self.method = "hard-em" if self.hard else "em"


def fit_em(model, data, init, *, max_iter: int = EM["max_iter"].default,
           tol: float | None = EM["tol"].default, hard: bool | None = EM["hard"].default,
           chunk_size: int | None = EM["chunk_size"].default,
           callback: Callable[[Progress], None] | None = None, record_params: bool = True,
           track_log_likelihood: bool = True, cache_bytes: int = CACHE_BYTES) -> Fit:
    """Fit ``model`` to ``data`` by EM from ``init``.

    Args:
        model: a model (see :mod:`models.base`).
        data: ``(n, ...)`` observations (a memory-mapped file or :class:`~.ondisk.Shards`
            stream chunk by chunk).
        init: initial parameters; a leading restart dimension ``(R, ...)`` runs R
            EMs at once in one vectorised loop and keeps the best.
        max_iter: most M-steps.
        tol: a restart stops when its objective per observation changes by at most
            ``tol`` (``|f_t - f_{t-1}| / n``; unit-free); ``None`` runs all ``max_iter``.
        hard: classification EM (MAP assignments); ``None`` takes the model's default.
        chunk_size: observations per chunk: memory stays at the data plus one chunk's
            statistics and responsibilities. ``None``: all at once, the prepared
            statistics kept between iterations when they fit ``cache_bytes`` (fastest).
        callback: called with a :class:`Progress` after every E-step.
        record_params: keep the parameters of every iteration in ``param_trace``.
        track_log_likelihood: in hard EM, also compute the marginal log-likelihood at
            every iteration (else only at the end; the trace holds NaN before it).

    Returns:
        A :class:`Fit` of the best restart: the one with the highest final objective
        (the marginal log-likelihood; for hard EM the classification log-likelihood,
        i.e. K-means' lowest inertia; with priors, plus the log prior: MAP-EM), NaN
        never best. Its traces start at ``init``
        (index 0) and end where that restart stopped.
    """
    notes = precision_notes(data)
    data = check_rows(model, data)
    model.check_fit_data(data)
    params = model.check_params(init, "init")
    check_same_device(data, params)
    options = Options(max_iter, tol, hard, chunk_size, callback, record_params,
                      track_log_likelihood, cache_bytes, model)
    return run_em(model, data, params, options, notes)


def run_em(model, data, params: Params, options: Options, notes: list, shift=None,
           reducer=None) -> Fit:
    """The EM loop on checked ``data`` and ``params`` (see :func:`fit_em`).

    Args:
        shift: the model's reference for ``data`` (``None``: ``model.shift(data)``).
        reducer: sums each E-step's statistics, log-likelihood and objective over
            processes, and relocates empty components among all their points (see
            :mod:`inference.distributed`); ``None``: this process has all the data.
    """
    batch = params.batch_shape(model.specs)
    if len(batch) > 1:
        raise InputError(f"init: expected at most one restart dimension, got batch shape {batch}")

    start = time.perf_counter()
    # a closed-form EM needs no autograd: inference mode skips its bookkeeping (~20% per op)
    elements = (batch[0] if batch else 1) * model.k * model.n_observations(data)
    with torch.inference_mode(model.m_step_kind == "closed-form"), warnings_as_notes(notes), \
            serial_when_small(elements):
        run = EMRun(params, batch[0] if batch else 1)
        chunks = Chunks(model, data, model.shift(data) if shift is None else shift,
                        options.chunk_size, options.cache_bytes, reducer)
        _iterate(model, chunks, run, batched=bool(batch), options=options, start=start)
        final_lls = _final_log_likelihoods(model, chunks, run, options.hard)
    return _result(model, data, run, final_lls, bool(batch), options, notes,
                   chunks.n_observations)


def _subset(params: Params, model, rows: list[int], batched: bool) -> Params:
    if not batched:
        return params
    return Params({k: v.index_select(0, torch.tensor(rows, device=v.device))
                   for k, v in params.items()})


def _scatter(params: Params, new: Params, rows: list[int]) -> Params:
    """``params`` with the restarts ``rows`` replaced by ``new`` (a sub-batch)."""
    return Params({k: params[k].index_copy(0, torch.tensor(rows, device=params[k].device),
                                           new[k].to(params[k].dtype)) for k in params})


def _iterate(model, chunks: Chunks, run: EMRun, batched: bool, options: Options, start: float):
    """E-step, convergence check, M-step until every restart has stopped."""
    n = chunks.n_observations
    hard = options.hard
    for iteration in range(options.max_iter + 1):
        current = _subset(run.params, model, run.active, batched)
        sub_batch = (len(run.active),) if batched else ()
        stats, log_lik, objective, resp, scores = chunks.expect(current, hard, hard,
                                                                options.marginal)
        if model.prior:  # MAP-EM: the objective is the log posterior
            objective = objective + model.log_prior(current)
        previous = run.objectives[-1] if run.objectives else None
        run.record(objective, log_lik, time.perf_counter() - start)
        if options.record_params:
            run.trace.append(run.params)  # new tensors every iteration; cloned on the way out
        if options.callback is not None:
            best = max((v for v in run.objectives[-1] if not math.isnan(v)), default=math.nan)
            options.callback(Progress(options.method, iteration, options.max_iter, best,
                                      run.seconds[-1]))
        leaving = _leaving(run, previous, n, options.tol)
        if iteration == options.max_iter or len(leaving) == len(run.active):
            run.responsibilities = resp if len(run.active) == run.restarts else None
            return
        if hard:
            stats, moved = _relocate_empty(model, chunks, stats, scores, current, sub_batch)
            run.events += [{"iteration": iteration, "event": "relocated empty component",
                            "restart": run.active[b] if b is not None else None, "component": j}
                           for b, j in moved]
        new = model.maximize(stats, current, chunks.shift)
        staying = [i for i, r in enumerate(run.active) if r not in leaving]
        if batched:
            kept = [run.active[i] for i in staying]
            run.params = _scatter(run.params, _subset(new, model, staying, True), kept)
            run.active = kept
        else:
            run.params = new
        for r in run.active:
            run.iterations[r] += 1


def _leaving(run: EMRun, previous, n: int, tol) -> set:
    """Restarts that converge or stop at this iteration (they keep their parameters)."""
    leaving = set()
    latest = run.objectives[-1]
    for r in run.active:
        if not math.isfinite(latest[r]):
            run.stopped.append(r)
            leaving.add(r)
        elif previous is not None and tol is not None and (
                abs(latest[r] - previous[r]) / n <= tol):
            run.converged[r] = True
            leaving.add(r)
    return leaving


def _final_log_likelihoods(model, chunks: Chunks, run: EMRun, hard: bool) -> torch.Tensor:
    """``(R,)`` marginal log-likelihood of every restart at its final parameters (a hard
    EM asks its own E-step for it: K-means' Lloyd step sums it block by block)."""
    last = torch.tensor(run.log_likelihoods[-1], dtype=torch.float64)
    if bool(torch.isnan(last).any()):
        last = chunks.expect(run.params, hard, False)[1].reshape(-1).to(torch.float64)
        run.log_likelihoods[-1] = last.tolist()
    return last


def _result(model, data, run: EMRun, final_lls, batched: bool, options: Options, notes,
            n: int) -> Fit:
    objectives = torch.tensor(run.objectives, dtype=torch.float64)  # (T, R)
    lls = torch.tensor(run.log_likelihoods, dtype=torch.float64)
    best = best_restart(objectives[-1])
    length = run.iterations[best] + 1  # the best restart's own trace
    params = run.params.map(torch.clone)  # ordinary tensors again, outside inference mode
    chosen = params.select(best, model.specs) if batched else params
    notes = list(notes)
    if run.stopped:
        notes.append(f"restart(s) {sorted(run.stopped)} stopped: their objective was not "
                     "finite")
    if options.tol is not None and not run.converged[best] and best not in run.stopped:
        change = abs(objectives[length - 1, best] - objectives[max(length - 2, 0), best])
        notes.append(f"not converged: max_iter={options.max_iter} reached while the objective "
                     f"per observation still changed by "
                     f"{float(change) / n:.2g} "
                     f"(tol={options.tol:g}); raise max_iter or tol")
    notes += model.diagnose(data, chosen)
    resp = None
    if run.responsibilities is not None:
        resp = (run.responsibilities[best] if batched else run.responsibilities).clone()
    trace = None
    if options.record_params:
        trace = [p.map(torch.clone) for p in run.trace[:length]]
        trace = [p.select(best, model.specs) for p in trace] if batched else trace
    return Fit(
        model=model,
        method=options.method,
        params=chosen,
        log_likelihood=float(final_lls[best]),
        objective=objectives[:length, best].clone(),
        log_likelihood_trace=lls[:length, best].clone(),
        seconds=torch.tensor(run.seconds[:length], dtype=torch.float64),
        iterations=run.iterations[best],
        converged=run.converged[best],
        kept_responsibilities=resp,
        data=data,
        chunk_size=options.chunk_size,
        hard=options.hard,
        param_trace=trace,
        restart_log_likelihoods=final_lls.clone(),
        restart_objectives=objectives[-1].clone(),
        restart_converged=list(run.converged),
        best_restart=best,
        m_step=model.m_step_kind,
        notes=notes,
        events=[e for e in run.events if e["restart"] in (None, best)],
    )
