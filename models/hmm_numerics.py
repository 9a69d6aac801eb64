"""The numerics of hidden Markov models, as pure functions: forward–backward and Viterbi.

Shapes: ``R`` restarts (parameter sets), ``B`` sequences, ``T`` steps, ``k`` states.
Emission log densities ``log_e: (R, B, T, k)`` are 0 at padded steps (after a
sequence's end). Padded steps need no mask inside the recursions: with emission 1 and
the ordinary transition matrix (rows sum to one) a padded step leaves the forward
total and the backward vector unchanged. Only their posteriors and transition counts
are masked out afterwards.

Forward–backward is the scaled algorithm, one step of all sequences (and restarts) at a
time. With each step's emissions divided by their largest (``e_t <= 1``), the forward
vector and the backward vector times the emissions, ``u_t = e_t * beta_t``, follow

    alpha_t = (alpha_{t-1} A) * e_t            u_{t-1} = (u_t A^T) * e_{t-1}

the same two operations, so both run in one loop: the row ``[alpha_t | u_{T-1-t}]`` times
``blockdiag(A, A^T)``, times ``[e_t | e_{T-1-t}]``. A step costs two calls whatever the
number of sequences, so the loop's cost is the per-call overhead times ``2 T``: on the
CPU (float64, no autograd) it runs on numpy views of the torch buffers (about 1 us a
call, torch's 3-5 us); elsewhere the same in-place torch calls; under autograd a plain
functional torch loop.

The vectors are divided by their totals every :data:`NORMALISE_EVERY` steps (and at the
last), not at every step. Between two normalisations the forward total only shrinks (``e
<= 1``, rows of ``A`` sum to one) and the backward total grows at most ``k``-fold a
step; both shrink by about the predictive probability of each step. When a divisor fell
below :data:`LAZY_FLOOR` (emissions hundreds of nats apart, or a model far from the
data) the loop is redone normalising every step, which keeps any finite data finite
(``e >= exp(-EXP_FLOOR)``). The rest is vectorised over all steps:

* ``S_t = sum(alpha_t)`` and the divisor ``n_t`` (1 where none) give the predictive
  densities ``c_t = n_t S_t / S_{t-1}`` (times the emission scale), whose logs add up to
  the log-likelihood;
* with the predicted ``p_t = alpha_{t-1} A`` (``p_0`` the initial distribution),
  ``alpha_t beta_t`` is proportional to ``p_t u_t``: posteriors ``p_t u_t / (p_t . u_t)``
  and expected transitions ``A * sum_t alpha_{t-1}^T u_t / (p_t . u_t)``, one matrix
  product over all steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

#: below exp(-700) ~ 1e-304 a scaled emission changes nothing (and exp stays fast)
EXP_FLOOR = 700.0
#: steps between two normalisations of the forward and backward vectors
NORMALISE_EVERY = 16
#: a total that fell below this between two normalisations: redo normalising every step
LAZY_FLOOR = 1e-100
ENGINES = ("numpy", "torch", "autograd")


class Smoothed(NamedTuple):
    """What forward–backward gives.

    Attributes:
        posteriors: ``(R, B, T, k)`` p(z_t = j | x), zero at padded steps.
        transitions: ``(R, k, k)`` expected transition counts, summed over sequences.
        log_likelihood: ``(R,)`` log p(x), summed over sequences.
        predictive: ``(R, B, T)`` log p(x_t | x_<t) (0 at padded steps).
        filtered: ``(R, B, T, k)`` p(z_t = j | x_<=t) when asked for, else ``None``.
    """

    posteriors: torch.Tensor
    transitions: torch.Tensor
    log_likelihood: torch.Tensor
    predictive: torch.Tensor
    filtered: torch.Tensor | None


class _Passes(NamedTuple):
    """The recursions, time-major ``(T, R, B, k)``: ``alpha``, the predicted ``p_t =
    alpha_{t-1} A`` (``p_0``: the initial distribution), ``u_t = e_t beta_t``, and the
    divisors of ``alpha``, ``norms: (T, R, B, 1)`` (1 where it was not normalised)."""

    alpha: torch.Tensor
    p: torch.Tensor
    u: torch.Tensor
    norms: torch.Tensor


def engine_for(*tensors: torch.Tensor) -> str:
    """``autograd`` when a gradient is recorded, ``numpy`` for CPU float64, else ``torch``."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return "autograd"
    if all(t.device.type == "cpu" and t.dtype == torch.float64 for t in tensors):
        return "numpy"
    return "torch"


def forward_backward(log_e: torch.Tensor, mask: torch.Tensor | None, initial: torch.Tensor,
                     transition: torch.Tensor, every: int | None = None,
                     filtered: bool = False, engine: str | None = None) -> Smoothed:
    """Posteriors, expected transition counts and the log-likelihood of every sequence.

    Args:
        log_e: ``(R, B, T, k)`` emission log densities, 0 at padded steps (any strides).
        mask: ``(B, T)`` valid steps (``None``: all).
        initial: ``(R, k)`` initial state distribution.
        transition: ``(R, k, k)`` transition matrix (rows: from, columns: to).
        every: steps between normalisations (default :data:`NORMALISE_EVERY`).
        filtered: also give the filtered probabilities.
        engine: one of :data:`ENGINES` (default: :func:`engine_for`).
    """
    engine = engine or engine_for(log_e, initial, transition)
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
    top = log_e.amax(-1, keepdim=True)  # (R, B, T, 1)
    # in log_e's own memory order (dense), then time-major: each step one block
    e = log_e - top
    e = (e.clamp_min(-EXP_FLOOR).exp() if engine == "autograd" else
         e.clamp_min_(-EXP_FLOOR).exp_()).permute(2, 0, 1, 3)  # (T, R, B, k)
    top = top.squeeze(-1)
    if engine == "autograd":
        passes = _functional(e, initial, transition)
    else:
        T, R, B, k = e.shape
        both = log_e.new_empty(T, R, B, 2 * k)  # [e_t | e_{T-1-t}]
        both[..., :k] = e
        both[..., k:] = e.flip(0)
        every = NORMALISE_EVERY if every is None else every
        passes = _recursions(both, initial, transition, every, engine)
        if passes is None:  # a total fell too low between normalisations
            passes = _recursions(both, initial, transition, 1, engine)
    return _finish(passes, top, mask, transition, filtered)


def _recursions(both: torch.Tensor, initial, transition, every: int,
                engine: str) -> _Passes | None:
    """Both recursions in one loop; ``None`` when a divisor fell below
    :data:`LAZY_FLOOR` (only with ``every > 1``).

    ``both: (T, R, B, 2k)`` the scaled emissions ``[e_t | e_{T-1-t}]``.
    """
    T, R, B, k2 = both.shape
    k = k2 // 2
    rows = torch.empty_like(both)  # [alpha_t | u_{T-1-t}]
    before = torch.empty_like(both)  # the rows before the emissions: [p_t | beta_{T-1-t}]
    norms = both.new_ones(T, R, B, 2)
    matrix = both.new_zeros(R, k2, k2)  # blockdiag(A, A^T)
    matrix[:, :k, :k] = transition
    matrix[:, k:, k:] = transition.mT
    blocks = both.new_zeros(k2, 2)  # the sums of the two halves
    blocks[:k, 0] = blocks[k:, 1] = 1
    before[0, ..., :k] = initial.unsqueeze(1)
    before[0, ..., k:] = 1
    torch.mul(before[0], both[0], out=rows[0])
    views = (both, rows, before, norms, matrix, blocks)
    if engine == "numpy":  # the same memory
        views = tuple(x.numpy() for x in views)
        lib = np
    else:
        lib = torch
    both_v, rows_v, before_v, norms_v, matrix_v, blocks_v = views
    if R == 1:  # one parameter set: 2-D products, the cheapest calls
        both_v, rows_v, before_v = (x.reshape(T, B, k2) for x in (both_v, rows_v, before_v))
        norms_v, matrix_v = norms_v.reshape(T, B, 2), matrix_v.reshape(k2, k2)
        mm = np.ndarray.dot if lib is np else torch.mm  # the method skips np.dot's dispatch
    else:
        mm = np.matmul if lib is np else torch.matmul
    halves, half_norms = rows_v.reshape(*rows_v.shape[:-1], 2, k), norms_v[..., None]
    mul, div = lib.multiply, lib.divide

    def normalise(t):
        mm(rows_v[t], blocks_v, out=norms_v[t])
        div(halves[t], half_norms[t], out=halves[t])

    normalise(0)
    previous = rows_v[0]
    for start in range(1, T, every):  # blocks of steps, each normalised at its last
        stop = min(start + every, T)
        # iterating yields each step's views (cheaper than indexing three buffers a step)
        for before_t, both_t, row in zip(before_v[start:stop], both_v[start:stop],
                                         rows_v[start:stop]):
            mm(previous, matrix_v, out=before_t)
            mul(before_t, both_t, out=row)
            previous = row
        normalise(stop - 1)
    if every > 1 and float(norms.min()) < LAZY_FLOOR:
        return None
    return _Passes(rows[..., :k], before[..., :k], rows[..., k:].flip(0), norms[..., :1])


def _functional(e, initial, transition) -> _Passes:
    """The recursions without in-place writes (autograd records them), normalised at
    every step. ``e: (T, R, B, k)``."""
    T, R, B, k = e.shape
    A = transition.unsqueeze(1)  # (R, 1, k, k) against (R, B, 1, k) rows
    p = initial.unsqueeze(1).expand(R, B, k)
    a = p * e[0]
    n = a.sum(-1, keepdim=True)
    alphas, predicted, norms = [a / n], [p], [n]
    for t in range(1, T):
        p = (alphas[-1].unsqueeze(-2) @ A).squeeze(-2)
        a = p * e[t]
        n = a.sum(-1, keepdim=True)
        alphas.append(a / n)
        predicted.append(p)
        norms.append(n)
    us = [e[T - 1]]
    for t in range(T - 1, 0, -1):
        u = (A @ us[-1].unsqueeze(-1)).squeeze(-1) * e[t - 1]
        us.append(u / u.sum(-1, keepdim=True))
    return _Passes(torch.stack(alphas), torch.stack(predicted), torch.stack(us[::-1]),
                   torch.stack(norms))


def _sums(x: torch.Tensor) -> torch.Tensor:
    """``(..., k) -> (..., 1)``: sums over the last axis as one matrix-vector product (a
    reduction over a short last axis is slow)."""
    return x @ x.new_ones(x.shape[-1], 1)


def _finish(passes: _Passes, top, mask, transition, filtered: bool) -> Smoothed:
    """Posteriors, transition counts and likelihood from the two recursions.

    ``top: (R, B, T)`` the emission scales.
    """
    alpha, p, u, norms = passes
    T, R, B, k = alpha.shape
    grad = alpha.requires_grad or u.requires_grad
    sums = _sums(alpha)  # (T, R, B, 1)
    ratio = norms * sums  # c_t = n_t S_t / S_{t-1}
    ratio = torch.cat([ratio[:1], ratio[1:] / sums[:-1]]) if grad else ratio
    if not grad:
        ratio[1:] /= sums[:-1]
    predictive = ratio.log().squeeze(-1).permute(1, 2, 0) + top  # (R, B, T)
    joint = p * u if grad else p.mul_(u)  # proportional to alpha_t beta_t
    scale = _sums(joint).reciprocal()  # (T, R, B, 1)
    if mask is not None:
        weight = mask.T.to(alpha.dtype).reshape(T, 1, B, 1)
        scale = scale * weight
        predictive = predictive * weight.reshape(T, B).T
    args = joint.permute(1, 2, 0, 3), scale.permute(1, 2, 0, 3)
    posteriors = torch.mul(*args) if grad else torch.mul(*args, out=joint.new_empty(R, B, T, k))
    if T > 1:  # xi_t(i, j) = alpha_{t-1}(i) A_ij u_t(j) / (p_t . u_t)
        right = u[1:] * scale[1:] if grad else u[1:].mul_(scale[1:])
        if R == 1:
            counts = (alpha[:-1].reshape(-1, k).T @ right.reshape(-1, k)).unsqueeze(0)
        else:
            counts = torch.einsum("trbi,trbj->rij", alpha[:-1], right)
        transitions = transition * counts
    else:
        transitions = transition.new_zeros(R, k, k)
    kept = (alpha / sums).permute(1, 2, 0, 3) if filtered else None
    return Smoothed(posteriors, transitions, predictive.sum((1, 2)), predictive, kept)


def viterbi(log_e: torch.Tensor, mask: torch.Tensor | None, log_initial: torch.Tensor,
            log_transition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The most probable state path of every sequence (log space).

    Args:
        log_e: ``(R, B, T, k)`` emission log densities.
        mask: ``(B, T)`` valid steps (``None``: all).
        log_initial: ``(R, k)``; log_transition: ``(R, k, k)``.

    Returns:
        ``paths: (R, B, T)`` (a padded step repeats its sequence's last state) and
        ``scores: (R, B)``, each path's log joint probability log p(x, z).
    """
    R, B, T, k = log_e.shape
    delta = log_initial.unsqueeze(1) + log_e[:, :, 0]  # (R, B, k)
    pointers = torch.empty(R, B, T, k, dtype=torch.long)
    pointers[:, :, 0] = torch.arange(k)
    stay = torch.arange(k).expand(R, B, k)
    trans = log_transition.unsqueeze(1)  # (R, 1, k, k)
    for t in range(1, T):
        best, arg = (delta.unsqueeze(-1) + trans).max(-2)
        best = best + log_e[:, :, t]
        if mask is not None and not bool(mask[:, t].all()):
            valid = mask[:, t].unsqueeze(-1)
            best = torch.where(valid, best, delta)
            arg = torch.where(valid, arg, stay)
        delta = best
        pointers[:, :, t] = arg
    scores, state = delta.max(-1)
    paths = torch.empty(R, B, T, dtype=torch.long)
    paths[:, :, T - 1] = state
    for t in range(T - 1, 0, -1):
        state = pointers[:, :, t].gather(-1, state.unsqueeze(-1)).squeeze(-1)
        paths[:, :, t - 1] = state
    return paths, scores


def pair_counts(resp: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Transition counts of consecutive per-step weights: ``sum_t r_{t-1} r_t^T``.

    Args:
        resp: ``(R, B, T, k)`` per-step state weights (zero at padded steps), e.g. one-hot
            labels: then these are the counted transitions.
        mask: ``(B, T)`` valid steps, or ``None``.

    Returns:
        ``(R, k, k)``.
    """
    R, B, T, k = resp.shape
    if T == 1:
        return resp.new_zeros(R, k, k)
    right = resp[:, :, 1:]
    if mask is not None:
        right = right * mask[:, 1:].unsqueeze(-1).to(resp.dtype)
    return resp[:, :, :-1].reshape(R, -1, k).mT @ right.reshape(R, -1, k)
