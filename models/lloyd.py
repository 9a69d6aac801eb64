"""Lloyd's step: hard EM on K-means as one pass over cache-sized blocks of points.

For an equal-weight, fixed-scale spherical Gaussian mixture the log joint is
``eta_j . T(y) + b_j`` with ``T(y) = [y, |y|^2]`` (the point norms precomputed once
per fit) and ``eta_j = [mu_j / s^2, -1 / (2 s^2)]``, i.e. minus the squared distance
``|y|^2 - 2 mu_j . y + |mu_j|^2`` over ``2 s^2`` plus a constant: one matrix product
gives every point's distances to every centre (K-means leaves the ``|y|^2`` term, the
same for every centre, out of it and adds it to the maximum). The nearest centre is the
row maximum;
the one-hot assignment is ``joint == max`` written over the joint, and the per-cluster
sums of ``T(y)`` are one more matrix product with that one-hot. Blocks of points keep
the ``(k, block)`` intermediates in cache (a whole-data pass is memory-bound and about
twice as slow), and no ``(k, n)`` array is ever allocated. The blocks run on one
thread: split over torch's intra-op pool, each block's few small operations would pay
a thread hand-off apiece (milliseconds each where the cores are busy).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .base import EXP_FLOOR

#: log joints per block (``k * block``): 1 MiB of float64, near a core's L2 cache
BLOCK_ELEMENTS = 1 << 17


class LloydStep(NamedTuple):
    """What one Lloyd step over ``n`` points gives.

    Attributes:
        sums: ``(k, m)`` per-cluster sums of ``T(y)``.
        counts: ``(k,)`` points per cluster.
        top: ``(n,)`` each point's log joint under its nearest centre.
        log_likelihood: ``()`` marginal log-likelihood, or ``None`` when not asked for.
        responsibilities: ``(k, n)`` one-hot, kept only when the points fit one block.
    """

    sums: torch.Tensor
    counts: torch.Tensor
    top: torch.Tensor
    log_likelihood: torch.Tensor | None
    responsibilities: torch.Tensor | None


def lloyd_step(statistics: torch.Tensor, eta: torch.Tensor, bias: torch.Tensor,
               marginal: bool, block_elements: int | None = None,
               common_last: bool = False) -> LloydStep | None:
    """Assign every point to its largest log joint and sum ``T(y)`` per cluster.

    Args:
        statistics: ``(m, n)`` ``T(y)``, one column per point.
        eta: ``(k, m)`` natural parameters; ``bias: (k,)`` the rest of the log joint.
        marginal: also compute the marginal log-likelihood (a log-sum-exp per point).
        block_elements: log joints held at once (``k * points per block``; default
            :data:`BLOCK_ELEMENTS`).
        common_last: the last row of ``eta`` is the same for every component (K-means:
            ``-1 / (2 s^2)`` times ``|y|^2``): it cannot change which centre is nearest, so
            the product leaves that row out and each point's best log joint adds it once.

    Returns:
        A :class:`LloydStep`, or ``None`` when some point is equally near two centres
        (the one-hot would count it twice: the caller breaks the tie).
    """
    k, (m, n) = eta.shape[0], statistics.shape
    block = max(1, min(n, (block_elements or BLOCK_ELEMENTS) // k))
    joint = statistics.new_empty(k, block)
    top = statistics.new_empty(1, n)
    sums = statistics.new_zeros(m, k)
    counts = statistics.new_zeros(k)
    log_lik = statistics.new_zeros(()) if marginal else None
    bias = bias.unsqueeze(-1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    last = float(eta[0, -1]) if common_last else None
    try:
        _blocks(statistics, eta, bias, joint, top, sums, counts, log_lik, block, last)
    finally:
        torch.set_num_threads(threads)
    if float(counts.sum()) != n:  # a tie: some column holds two ones
        return None
    return LloydStep(sums.T, counts, top[0], log_lik, joint if n <= block else None)


def _blocks(statistics, eta, bias, joint, top, sums, counts, log_lik, block, last) -> None:
    """The block loop of :func:`lloyd_step`, accumulating in place (``last``: the common
    last coefficient of ``eta``, left out of the product, or ``None``)."""
    n = statistics.shape[1]
    lead = eta if last is None else eta[:, :-1]
    for start in range(0, n, block):
        stop = min(start + block, n)
        part, best, rows = joint[:, : stop - start], top[:, start:stop], statistics[:, start:stop]
        torch.addmm(bias, lead, rows if last is None else rows[:-1], out=part)
        torch.amax(part, 0, keepdim=True, out=best)
        if log_lik is not None:
            log_lik += (part - best).clamp_min_(-EXP_FLOOR).exp_().sum(0).log_().sum()
        torch.eq(part, best, out=part)  # the one-hot, over the joint
        if last is not None:
            best.add_(rows[-1:], alpha=last)  # the best full log joint
        if log_lik is not None:
            log_lik += best.sum()
        counts += part.sum(1)
        sums.addmm_(rows, part.T)
