"""The one EM loop for every model: E-step, M-step, trace, convergence, restarts, hard EM.

The loop only talks to a model through ``shift``, ``prepare``, ``expect``,
``summarize`` and ``maximize`` (see :mod:`models.base`). Statistics are summed
over chunks of the data, so memory stays at the data plus one chunk's
intermediates, and the same code would sum statistics across processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from models.params import Params
from models.validation import InputError, check_int, check_k, precision_notes

from .fit import Fit, Progress

#: prepared statistics up to this size are computed once and kept for all iterations
CACHE_BYTES = 1 << 30


def add_stats(a: dict | None, b: dict) -> dict:
    """Sum two additive statistics (dicts of tensors)."""
    return dict(b) if a is None else {key: a[key] + b[key] for key in b}


class Chunks:
    """The data split into chunks, with each chunk's prepared form cached when it fits."""

    def __init__(self, model, data: torch.Tensor, shift, chunk_size: int | None, cache_bytes: int):
        self.model, self.data, self.shift = model, data, shift
        n = data.shape[0]
        if not getattr(model, "chunkable", True):  # its statistics are not additive
            if chunk_size is not None:
                raise InputError("chunk_size: this model's M-step is generic (numerical) and "
                                 "needs all the data at once")
            chunk_size, cache_bytes = n, float("inf")
        probe = model.prepare(data[:16], shift)
        parts = [probe] if torch.is_tensor(probe) else [t for t in probe if torch.is_tensor(t)]
        row_bytes = sum(t.numel() * t.element_size() for t in parts) / len(data[:16])
        # no chunk_size: prepare once and keep it if it fits (fastest); with a chunk_size,
        # prepare each chunk anew every iteration, so memory stays at one chunk's worth
        cache = chunk_size is None and row_bytes * n <= cache_bytes
        if chunk_size is None:
            chunk_size = n if cache else max(1, int(cache_bytes // row_bytes))
        self.slices = [slice(i, min(i + chunk_size, n)) for i in range(0, n, chunk_size)]
        self.cache = [model.prepare(data[s], shift) for s in self.slices] if cache else None

    def __len__(self) -> int:
        return len(self.slices)

    def prepared(self):
        if self.cache is not None:
            yield from self.cache
        else:
            for s in self.slices:
                yield self.model.prepare(self.data[s], self.shift)

    def expect(self, params: Params, hard: bool, keep_scores: bool, marginal: bool = True):
        """E-step over all chunks: summed stats, log-likelihood, objective; scores if asked."""
        stats, log_lik, objective, scores, last = None, 0.0, 0.0, [], None
        for prepared in self.prepared():
            step = self.model.expect(prepared, params, hard, marginal)
            stats = add_stats(stats, step.stats)
            if step.log_likelihood is step.objective:
                log_lik = objective = objective + step.objective
            else:
                log_lik = None if step.log_likelihood is None else log_lik + step.log_likelihood
                objective = objective + step.objective
            if keep_scores:
                scores.append(step.scores)
            last = step
        scores = torch.cat(scores, -1) if keep_scores else None
        responsibilities = last.responsibilities if len(self) == 1 else None
        return stats, log_lik, objective, responsibilities, scores

    def responsibilities(self, params: Params, hard: bool) -> torch.Tensor:
        return torch.cat([self.model.expect(p, params, hard).responsibilities
                          for p in self.prepared()], -2)


def _relocate_empty(model, chunks: Chunks, stats: dict, scores, params: Params, batch):
    """Hard EM: move each empty component to the point farthest from its centre.

    The farthest points are those with the lowest log joint under their MAP
    component (as scikit-learn's k-means); the model moves them in its statistics.

    Returns:
        The corrected statistics and the relocated components, ``[(restart, component)]``.
    """
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


def _freeze(done: torch.Tensor, old: Params, new: Params) -> Params:
    """Keep converged restarts where they are."""
    out = Params()
    for key, value in new.items():
        mask = done.reshape(done.shape + (1,) * (value.dim() - done.dim()))
        out[key] = torch.where(mask, old[key], value)
    return out


def fit_em(model, data, init, *, max_iter: int = 1000, tol: float = 1e-8, hard: bool | None = None,
           chunk_size: int | None = None, callback: Callable[[Progress], None] | None = None,
           record_params: bool = True, track_log_likelihood: bool = True,
           cache_bytes: int = CACHE_BYTES) -> Fit:
    """Fit ``model`` to ``data`` by EM from ``init``.

    Args:
        model: a model (see :mod:`models.base`).
        data: ``(n, ...)`` observations.
        init: initial parameters; a leading restart dimension ``(R, ...)`` runs R
            EMs at once in one vectorised loop and keeps the best.
        max_iter: most M-steps.
        tol: stop when the objective's relative change ``|f_t - f_{t-1}| / |f_{t-1}|``
            is at most ``tol`` (for every restart); ``None`` runs all ``max_iter``.
        hard: classification EM (MAP assignments); ``None`` takes the model's default.
        chunk_size: observations per chunk: memory stays at the data plus one chunk's
            statistics and responsibilities. ``None``: all at once, the prepared
            statistics kept between iterations when they fit ``cache_bytes`` (fastest).
        callback: called with a :class:`Progress` after every E-step.
        record_params: keep the parameters of every iteration in ``param_trace``.
        track_log_likelihood: in hard EM, also compute the marginal log-likelihood at
            every iteration (else only at the end; the trace holds NaN before it).

    Returns:
        A :class:`Fit`; its traces start at ``init`` (index 0).
    """
    notes = precision_notes(data)
    data = model.check_data(data)
    check_k(model.k, data.shape[0])
    params = model.check_params(init, "init")
    max_iter = check_int(max_iter, "max_iter", low=0)
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float))
                            or not tol >= 0):
        raise InputError(f"tol: expected a number >= 0 or None, got {tol!r}")
    hard = model.default_hard if hard is None else bool(hard)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", low=1)
    batch = params.batch_shape(model.specs)
    method = "hard-em" if hard else "em"

    start = time.perf_counter()
    # a closed-form EM needs no autograd: inference mode skips its bookkeeping (~20% per op)
    with torch.inference_mode(model.m_step_kind == "closed-form"):
        state = _loop(model, data, params, batch, hard, max_iter, tol, chunk_size, cache_bytes,
                      callback, record_params, method, start, track_log_likelihood or not hard)
    objectives, log_liks, seconds, trace, events, done, params, resp = state
    final = torch.tensor(objectives, dtype=torch.float64)  # (T, R)
    lls = torch.tensor(log_liks, dtype=torch.float64)
    best = int(final[-1].argmax())
    params = params.map(torch.clone)  # ordinary tensors again, outside inference mode
    notes += model.diagnose(data, params.select(best, model.specs))
    trace = [p.map(torch.clone) for p in trace]
    resp = resp.clone()
    return Fit(
        model=model,
        method=method,
        params=params.select(best, model.specs),
        log_likelihood=float(lls[-1, best]),
        objective=final[:, best],
        log_likelihood_trace=lls[:, best],
        seconds=torch.tensor(seconds, dtype=torch.float64),
        iterations=len(objectives) - 1,
        converged=all(done),
        responsibilities=(resp[best] if batch else resp).contiguous(),
        param_trace=[p.select(best, model.specs) for p in trace] if record_params else None,
        restart_log_likelihoods=lls[-1],
        best_restart=best,
        m_step=model.m_step_kind,
        notes=notes,
        events=[e for e in events if e["restart"] in (None, best)],
    )


def _loop(model, data, params, batch, hard, max_iter, tol, chunk_size, cache_bytes, callback,
          record_params, method, start, marginal):
    """The iterations; returns the traces, the final parameters and responsibilities."""
    shift = model.shift(data)
    chunks = Chunks(model, data, shift, chunk_size, cache_bytes)
    objectives, log_liks, seconds, trace, events = [], [], [], [], []
    done = [False] * (math.prod(batch) if batch else 1)  # per restart, in plain floats
    previous = None
    for iteration in range(max_iter + 1):
        stats, log_lik, objective, resp, scores = chunks.expect(params, hard, hard, marginal)
        objectives.append(objective.reshape(-1).tolist())
        log_liks.append(objectives[-1] if objective is log_lik else
                        [math.nan] * len(done) if log_lik is None else log_lik.reshape(-1).tolist())
        seconds.append(time.perf_counter() - start)
        if record_params:
            trace.append(params)  # new tensors every iteration; cloned on the way out
        if callback is not None:
            callback(Progress(method, iteration, max_iter, max(objectives[-1]), seconds[-1]))
        if previous is not None and tol is not None:
            done = [d or abs(f - p) <= tol * abs(p)
                    for d, f, p in zip(done, objectives[-1], previous)]
        if all(done) or iteration == max_iter:
            break
        if hard:
            stats, moved = _relocate_empty(model, chunks, stats, scores, params, batch)
            events += [{"iteration": iteration, "event": "relocated empty component",
                        "restart": b, "component": j} for b, j in moved]
        new = model.maximize(stats, params, shift)
        params = _freeze(torch.tensor(done).reshape(batch), params, new) if any(done) else new
        previous = objectives[-1]

    if resp is None:
        resp = chunks.responsibilities(params, hard)
    if math.isnan(log_liks[-1][0]):  # the final marginal log-likelihood is always reported
        log_liks[-1] = chunks.expect(params, False, False)[1].reshape(-1).tolist()
    return objectives, log_liks, seconds, trace, events, done, params, resp
