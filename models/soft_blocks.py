"""The soft E-step of a natural-form mixture, one cache-sized block of points at a time.

The twin of :mod:`models.lloyd` for soft EM: the log joint is ``eta_j . T(y) + b_j``
(one matrix product per block), the responsibilities its softmax over components, and
the statistics ``sum_n r_nj T(y_n)`` one more product per block. A whole-data pass
writes and re-reads a ``(k, n)`` array five times (joint, shift, exp, normalise,
product) and reads ``T`` twice, all from main memory; block by block the ``(k, block)``
intermediates stay in cache and each block of ``T`` is read once for both products.
The arithmetic is the mixture's E-step (:func:`models.base.posterior`) with the sums
taken per block, so results agree to round-off (the log-likelihood is summed in a
different order). No ``(k, n)`` array is allocated: the responsibilities are kept only
when the points fit one block.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .base import EXP_FLOOR

#: floats held at once per block (``(k + m) * block``, log joints and statistics):
#: 1 MiB of float64, near a core's L2 cache
BLOCK_ELEMENTS = 1 << 17


class SoftStep(NamedTuple):
    """What one soft E-step over ``n`` points gives.

    Attributes:
        sums: ``(k, m)`` responsibility-weighted sums of ``T(y)``.
        counts: ``(k,)`` summed responsibilities.
        top: ``(n,)`` each point's largest log joint.
        log_likelihood: ``()`` marginal log-likelihood.
        responsibilities: ``(k, n)``, kept only when the points fit one block.
    """

    sums: torch.Tensor
    counts: torch.Tensor
    top: torch.Tensor
    log_likelihood: torch.Tensor
    responsibilities: torch.Tensor | None


def soft_step(statistics: torch.Tensor, eta: torch.Tensor, bias: torch.Tensor,
              block_elements: int | None = None) -> SoftStep:
    """Posterior responsibilities of every point and the weighted sums of ``T(y)``.

    Args:
        statistics: ``(m, n)`` ``T(y)``, one column per point.
        eta: ``(k, m)`` natural parameters; ``bias: (k,)`` the rest of the log joint
            (log weight minus log normaliser).
        block_elements: floats held per block (default :data:`BLOCK_ELEMENTS`).
    """
    k, (m, n) = eta.shape[0], statistics.shape
    block = max(1, min(n, (block_elements or BLOCK_ELEMENTS) // (k + m)))
    if n <= block:
        return _one_block(statistics, eta, bias)
    joint = statistics.new_empty(k, block)
    total = statistics.new_empty(1, block)
    top = statistics.new_empty(1, n)
    sums = statistics.new_zeros(m, k)
    counts = statistics.new_zeros(k)
    log_lik = statistics.new_zeros(())
    bias = bias.unsqueeze(-1)
    for start in range(0, n, block):
        stop = min(start + block, n)
        part, best, rows = joint[:, : stop - start], top[:, start:stop], statistics[:, start:stop]
        norm = total[:, : stop - start]
        torch.addmm(bias, eta, rows, out=part)
        torch.amax(part, 0, keepdim=True, out=best)
        # exp of very negative numbers takes a slow path (subnormals): see posterior
        part.sub_(best).clamp_min_(-EXP_FLOOR).exp_()
        torch.sum(part, 0, keepdim=True, out=norm)
        part.div_(norm)
        log_lik += norm.log_().add_(best).sum()
        counts += part.sum(1)
        sums.addmm_(rows, part.T)
    return SoftStep(sums.T, counts, top[0], log_lik, joint if n <= block else None)


def _one_block(statistics: torch.Tensor, eta: torch.Tensor, bias: torch.Tensor) -> SoftStep:
    """:func:`soft_step` when all the points fit one block: the same operations, without
    the block loop's buffers, views and zero-initialised sums (half the tensor calls of a
    small fit's E-step; adding to a zero is exact, so the numbers are the loop's)."""
    part = torch.addmm(bias.unsqueeze(-1), eta, statistics)  # (k, n) log joints
    best = part.amax(0, keepdim=True)
    part.sub_(best).clamp_min_(-EXP_FLOOR).exp_()
    norm = part.sum(0, keepdim=True)
    part.div_(norm)
    log_lik = norm.log_().add_(best).sum()
    return SoftStep(torch.mm(statistics, part.T).T, part.sum(1), best[0], log_lik, part)
