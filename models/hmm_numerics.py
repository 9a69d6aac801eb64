"""The numerics of hidden Markov models, as pure functions: forward–backward and Viterbi.

Shapes: ``R`` restarts (parameter sets), ``B`` sequences, ``T`` steps, ``k`` states.
Emission log densities ``log_e: (R, B, T, k)`` are 0 at padded steps (after a
sequence's end). Padded steps need no mask inside the recursions: with emission 1 and
the ordinary transition matrix (rows sum to one) a padded step leaves the forward
total and the backward vector unchanged. Only their posteriors and transition counts
are masked out afterwards.

Forward–backward is the scaled algorithm (each step's emissions divided by their
largest, each vector normalised), blocked in time so that Python loops over about
``3 sqrt(T)`` steps instead of ``2 T``:

1. block totals: the product of the ``L`` step matrices ``A diag(e_t)`` of every block
   (all blocks and sequences at once; rows rescaled to a maximum of one, their logs
   kept, so nothing underflows);
2. the forward vector and the backward vector at every block boundary: a short
   sequential pass over the ``T / L`` blocks (in log space for the row scales);
3. the forward and backward vectors inside every block, all blocks at once: ``L``
   steps each.

Posteriors and expected transition counts are then elementwise products and one
matrix product over all steps. The scale of the forward and backward vectors is
arbitrary per step: every posterior is normalised where it is formed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

#: below exp(-700) ~ 1e-304 a scaled emission changes nothing (and exp stays fast)
EXP_FLOOR = 700.0
#: the smallest row scale divided by (a row of zeros, an impossible start, stays zero)
TINY = 1e-300


class Smoothed(NamedTuple):
    """What forward–backward gives.

    Attributes:
        posteriors: ``(R, B, T, k)`` p(z_t = j | x), zero at padded steps.
        transitions: ``(R, k, k)`` expected transition counts, summed over sequences.
        log_likelihood: ``(R,)`` log p(x), summed over sequences.
        predictive: ``(R, B, T)`` log p(x_t | x_<t) (0 at padded steps).
        filtered: ``(R, B, T, k)`` p(z_t = j | x_<=t).
    """

    posteriors: torch.Tensor
    transitions: torch.Tensor
    log_likelihood: torch.Tensor
    predictive: torch.Tensor
    filtered: torch.Tensor


def block_size(steps: int) -> int:
    """Steps per block: about the square root of the number of transitions."""
    return max(1, round(math.sqrt(steps)))


def _times(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``x @ matrix`` per restart: ``x: (R, ..., k)``, ``matrix: (R, k, k)``."""
    shape = x.shape
    if shape[0] == 1:
        return torch.mm(x.reshape(-1, shape[-1]), matrix[0]).reshape(shape)
    return torch.bmm(x.reshape(shape[0], -1, shape[-1]), matrix).reshape(shape)


def forward_backward(log_e: torch.Tensor, mask: torch.Tensor | None, initial: torch.Tensor,
                     transition: torch.Tensor, block: int | None = None) -> Smoothed:
    """Posteriors, expected transition counts and the log-likelihood of every sequence.

    Args:
        log_e: ``(R, B, T, k)`` emission log densities, 0 at padded steps.
        mask: ``(B, T)`` valid steps (``None``: all).
        initial: ``(R, k)`` initial state distribution.
        transition: ``(R, k, k)`` transition matrix (rows: from, columns: to).
        block: steps per block (default :func:`block_size`).
    """
    R, B, T, k = log_e.shape
    top = log_e.amax(-1, keepdim=True)  # (R, B, T, 1)
    e = (log_e - top).clamp_min_(-EXP_FLOOR).exp_()
    first = initial.unsqueeze(1) * e[:, :, 0]  # (R, B, k)
    c0 = first.sum(-1, keepdim=True)
    alpha0 = first / c0
    if T == 1:
        posteriors = alpha0.unsqueeze(2)
        log_c = c0.log().unsqueeze(2)
        alpha, beta = posteriors, torch.ones_like(posteriors)
        return _finish(alpha, beta, log_c, top, e, mask, transition)
    steps = T - 1
    L = block or block_size(steps)
    nb = -(-steps // L)
    later = e[:, :, 1:]
    if nb * L > steps:  # padding steps: emission 1, they change nothing
        later = torch.cat([later, later.new_ones(R, B, nb * L - steps, k)], 2)
    later = later.reshape(R, B, nb, L, k)

    # 1. block totals Q_b = prod_j A diag(e_j), each row rescaled to a maximum of 1
    Q = transition.reshape(R, 1, 1, k, k) * later[:, :, :, 0].unsqueeze(-2)
    scale = Q.amax(-1, keepdim=True).clamp_min_(TINY)  # a zero row stays zero
    Q = Q / scale
    scales = [scale]
    for j in range(1, L):
        Q = _times(Q, transition)
        Q.mul_(later[:, :, :, j].unsqueeze(-2))
        scale = Q.amax(-1, keepdim=True).clamp_min_(TINY)
        Q.div_(scale)
        scales.append(scale)
    log_rows = torch.stack(scales).log_().sum(0).squeeze(-1)  # (R, B, nb, k)

    # 2. forward vectors entering and backward vectors leaving every block
    starts, a = [alpha0], alpha0
    for b in range(nb - 1):
        w = a.log() + log_rows[:, :, b]
        w = (w - w.amax(-1, keepdim=True)).exp_()
        a = (w.unsqueeze(-2) @ Q[:, :, b]).squeeze(-2)
        a = a / a.sum(-1, keepdim=True)
        starts.append(a)
    ends, v = [torch.ones_like(alpha0)], torch.ones_like(alpha0)
    for b in range(nb - 1, 0, -1):
        w = (Q[:, :, b] @ v.unsqueeze(-1)).squeeze(-1).log_() + log_rows[:, :, b]
        v = (w - w.amax(-1, keepdim=True)).exp_()
        ends.append(v)
    ends.reverse()

    # 3. inside every block, all blocks at once
    alpha = later.new_empty(R, B, nb, L, k)
    norms = later.new_empty(R, B, nb, L)
    cur = torch.stack(starts, 2)
    for j in range(L):
        cur = _times(cur, transition).mul_(later[:, :, :, j])
        total = cur.sum(-1, keepdim=True)
        cur = cur.div_(total)
        alpha[:, :, :, j] = cur
        norms[:, :, :, j] = total.squeeze(-1)
    beta = torch.empty_like(alpha)
    cur = torch.stack(ends, 2)
    beta[:, :, :, L - 1] = cur
    transposed = transition.mT
    for j in range(L - 1, 0, -1):
        cur = _times(later[:, :, :, j] * cur, transposed)
        cur = cur.div_(cur.amax(-1, keepdim=True))
        beta[:, :, :, j - 1] = cur
    beta_first = _times(later[:, :, 0, 0] * beta[:, :, 0, 0], transposed)

    alpha = torch.cat([alpha0.unsqueeze(2), alpha.reshape(R, B, nb * L, k)[:, :, :steps]], 2)
    beta = torch.cat([beta_first.unsqueeze(2), beta.reshape(R, B, nb * L, k)[:, :, :steps]], 2)
    log_c = torch.cat([c0.unsqueeze(2), norms.reshape(R, B, nb * L, 1)[:, :, :steps]],
                      2).log_()
    return _finish(alpha, beta, log_c, top, e, mask, transition)


def _finish(alpha, beta, log_c, top, e, mask, transition) -> Smoothed:
    """Posteriors, transition counts and likelihood from the scaled vectors.

    ``alpha, beta: (R, B, T, k)`` (any positive scale per step for ``beta``),
    ``log_c: (R, B, T, 1)`` the forward normalisers, ``top`` the emission scales.
    """
    R, B, T, k = alpha.shape
    predictive = (log_c + top).squeeze(-1)  # (R, B, T)
    joint = alpha * beta
    total = joint.sum(-1, keepdim=True)  # (R, B, T, 1)
    posteriors = joint.div_(total)
    if mask is not None:
        weight = mask.to(alpha.dtype)
        posteriors.mul_(weight.unsqueeze(-1))
        predictive = predictive * weight
    # xi_t(i, j) = alpha_{t-1}(i) A_ij e_t(j) beta_t(j) / (c_t alpha_t . beta_t)
    if T > 1:
        w = (log_c[:, :, 1:].exp() * total[:, :, 1:]).reciprocal_()
        if mask is not None:
            w = w * weight[:, 1:].unsqueeze(-1)
        right = (e[:, :, 1:] * beta[:, :, 1:]).mul_(w).reshape(R, -1, k)
        left = alpha[:, :, :-1].reshape(R, -1, k)
        transitions = transition * (left.mT @ right)
    else:
        transitions = transition.new_zeros(R, k, k)
    return Smoothed(posteriors, transitions, predictive.sum((1, 2)), predictive, alpha)


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
