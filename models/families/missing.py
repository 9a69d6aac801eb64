"""Missing entries (NaN) for families with independent coordinates, and the NaN-masked
distributions the Pyro programs observe them with.

A family opts in with ``supports_missing = True``: its ``check_data`` lets NaN through
(:func:`models.validation.check_data` with ``missing=True``) and its E-step pieces
marginalise the missing entries exactly. When the coordinates of one observation are
independent given the component (Bernoulli, Categorical, Poisson features), a missing
entry simply drops out of the log density, and the exponential-family form survives
with the missingness mask as extra statistics:

    log p(x_obs | theta_j) = sum_i m_i (T(x_i) . eta_ji - A_ji + log h(x_i))
                           = [T(x0), m] . [eta_j, -A_j] + sum_i m_i log h(x_i)

where ``x0`` is the data with a placeholder (0) in the missing entries and ``m`` the
mask of observed entries (``T(x0)`` is zero there, or multiplied by zero). The
M-step's expected statistics fill each missing entry with its expectation under the
component: ``E[sum_n r_nj T(x_ni)] = sum_n r_nj m_ni T(x_ni) + (N_j - sum_n r_nj m_ni)
E_j[T(x_i)]``, in the same form the complete-data M-step reads, so chunks with and
without missing entries add.

In the Pyro program, missing entries never reach a gradient: :class:`NanMasked`
replaces them with a finite placeholder *before* the log density is computed, then
zeroes their terms (NaN under a mask would still poison the gradient).
"""

from __future__ import annotations

from typing import NamedTuple

import pyro.distributions as dist
import torch

from ..validation import all_finite

EPS = torch.finfo(torch.float64).eps


class MaskedPrepared(NamedTuple):
    """A chunk with missing entries, for a family with independent coordinates.

    Attributes:
        statistics: ``(m, n)`` the family's statistics of the data with 0 in place of each
            missing entry (their columns are zero wherever an entry is missing).
        observed: ``(d, n)`` 1.0 where an entry is observed, 0.0 where it is missing.
        log_base: ``(n,)`` log base measure of the observed entries, or ``None``.
        shift: the fit's reference (see :meth:`Family.shift`).
    """

    statistics: torch.Tensor
    observed: torch.Tensor
    log_base: torch.Tensor | None
    shift: object


def has_missing(data: torch.Tensor) -> bool:
    """Whether ``data`` holds a missing entry (NaN)."""
    return not all_finite(data) and bool(torch.isnan(data).any())


def placeholder(data: torch.Tensor, value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(data with value in place of NaN, mask of observed entries as 0.0/1.0)``."""
    observed = ~torch.isnan(data)
    return torch.where(observed, data, torch.full_like(data, value)), observed.to(data.dtype)


def column_means(data: torch.Tensor) -> torch.Tensor:
    """``(*event)`` mean of the observed entries of each coordinate (0 where none is)."""
    filled, observed = placeholder(data)
    return filled.sum(0) / observed.sum(0).clamp_min(1)


def filled(data: torch.Tensor) -> torch.Tensor:
    """``data`` with each missing entry replaced by its column's observed mean (for
    distance-based initialisation and random starts; never for the likelihood)."""
    if not has_missing(data):
        return data
    return torch.where(torch.isnan(data), column_means(data).expand_as(data), data)


def masked_log_densities(prepared: MaskedPrepared, eta: torch.Tensor,
                         coordinate_norm: torch.Tensor | None) -> torch.Tensor:
    """``log p(x_obs | theta_j)``: ``(*B, k, n)``.

    Args:
        eta: ``(*B, k, m)`` natural parameters of the statistics.
        coordinate_norm: ``(*B, k, d)`` each coordinate's log normaliser ``A_ji``, charged
            only where the entry is observed (``None``: nothing to charge).
    """
    joint = torch.matmul(eta, prepared.statistics)
    if coordinate_norm is not None:
        joint -= torch.matmul(coordinate_norm, prepared.observed)
    if prepared.log_base is not None:
        joint += prepared.log_base
    return joint


def expected_sums(prepared: MaskedPrepared, resp: torch.Tensor, means: torch.Tensor,
                  repeat: int = 1) -> torch.Tensor:
    """``(*B, k, m)`` expected ``sum_n r_nj T(x_n)``: observed entries as they are, each
    missing one at its expectation ``means`` under the component.

    Args:
        resp: ``(*B, k, n)``.
        means: ``(*B, k, m)`` the component's ``E[T(x_i)]`` per statistic.
        repeat: statistics per coordinate (a categorical's one-hot has one per label).
    """
    sums = torch.matmul(resp, prepared.statistics.T)
    observed = torch.matmul(resp, prepared.observed.T)  # (*B, k, d): weight seen per entry
    unseen = resp.sum(-1, keepdim=True) - observed
    if repeat > 1:
        unseen = unseen.repeat_interleave(repeat, -1)
    return sums + unseen * means


def observed_means(prepared: MaskedPrepared, resp: torch.Tensor, repeat: int = 1,
                   fallback: float = 0.5) -> torch.Tensor:
    """``(*B, k, m)`` each statistic's weighted mean over the entries where it is observed
    (provisional expectations for an M-step straight from responsibilities); ``fallback``
    where a component saw none."""
    sums = torch.matmul(resp, prepared.statistics.T)
    observed = torch.matmul(resp, prepared.observed.T)
    if repeat > 1:
        observed = observed.repeat_interleave(repeat, -1)
    seen = observed > 10 * EPS
    return torch.where(seen, sums / observed.clamp_min(10 * EPS),
                       torch.full_like(sums, fallback))


class NanMasked:
    """Mixin for a distribution over independent entries: NaN in ``value`` is a missing
    entry whose log density is 0. The placeholder replaces it *before* the log density
    is computed, so no NaN reaches a gradient."""

    placeholder = 0.0

    def log_prob(self, value):
        observed = ~torch.isnan(value)
        if bool(observed.all()):
            return super().log_prob(value)
        safe = torch.where(observed, value, torch.full_like(value, self.placeholder))
        log_p = super().log_prob(safe)
        return torch.where(observed, log_p, torch.zeros_like(log_p))


class MaskedBernoulli(NanMasked, dist.Bernoulli):
    """Bernoulli whose NaN observations are missing."""


class MaskedPoisson(NanMasked, dist.Poisson):
    """Poisson whose NaN observations are missing."""


class MaskedCategorical(NanMasked, dist.Categorical):
    """Categorical whose NaN observations (labels) are missing."""
