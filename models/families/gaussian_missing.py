"""Gaussian components with missing entries (NaN): exact EM (Ghahramani & Jordan 1994).

Everything runs in the family's standardised coordinates (see
:mod:`models.families.gaussian_numerics`), with a 0 placeholder in each missing entry.

*E-step*: a row's density under component ``j`` is its marginal over the observed
coordinates ``o``: ``N(y_o; mu_o, Sigma_oo)`` (for ``full`` and ``tied``, the observed
block of the covariance; for ``diag`` and ``spherical`` the observed coordinates'
own terms, as they are independent).

*M-step statistics*: around each component's current mean, as the complete-data
statistics are, with each missing block at its conditional distribution given the
observed one and the component:

    E[x_m - mu_m | y_o, j] = A (y_o - mu_o),        A = Sigma_mo Sigma_oo^-1
    Cov[x_m | y_o, j]      = C = Sigma_mm - A Sigma_om

so ``sums += J s1`` and ``second += J S2 J^T + N C`` per missingness pattern, where
``s1``, ``S2`` and ``N`` are the pattern's weighted sums of ``y_o - mu_o``, of its
outer products and of the weights, and ``J = [I; A]`` maps the observed block to the
completed row.

*Cost*: rows are sorted by pattern once per chunk (:func:`prepare`). Every pattern's
blocks are *embedded* in ``d x d`` (the observed block in place, the identity on the
missing coordinates: same determinant, same quadratic form of a row whose missing
entries are 0), so the small matrix work of all patterns and components is one
batched computation; the per-row work is then, per pattern, one matrix product of
natural parameters with the complete-data statistics of the zero-filled rows, as
for complete data. Where that natural form's round-off bound is too large for a
pattern (a component far away in its own units), the pattern's rows use centred
differences instead, as the complete-data path does.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import pyro.distributions as dist
import torch

from .base import upper_triangle
from .gaussian_numerics import (
    EPS,
    LOG_2PI,
    TOLERANCE,
    Reference,
    quadratic_rows,
    recentre,
    standardised,
)


class Pattern(NamedTuple):
    """Rows of a chunk that share one missingness pattern.

    Attributes:
        rows: ``(n_p,)`` their indices in the chunk.
        observed: ``(a,)`` the observed coordinates; ``missing: (b,)`` the others.
        values: ``(a, n_p)`` their observed values, standardised.
        start, stop: where they lie in the chunk's rows sorted by pattern.
    """

    rows: torch.Tensor
    observed: torch.Tensor
    missing: torch.Tensor
    values: torch.Tensor
    start: int
    stop: int


class MissingPrepared(NamedTuple):
    """A chunk with missing entries, for the Gaussian family.

    Attributes:
        values: ``(d, n)`` standardised points, 0 in each missing entry.
        observed: ``(d, n)`` 1.0 where observed, 0.0 where missing.
        patterns: the rows grouped by missingness pattern (full and tied covariances;
            empty otherwise); the fields below are ``None`` when they are.
        masks: ``(P, d)`` 1.0 where each pattern observes a coordinate.
        statistics: ``(d + d (d + 1) / 2, n)`` natural-form statistics ``T(y)`` of the
            zero-filled rows, sorted by pattern.
        order: ``(n,)`` the rows sorted by pattern; ``inverse: (n,)`` back.
        shift: the fit's :class:`Reference`.
    """

    values: torch.Tensor
    observed: torch.Tensor
    patterns: tuple
    masks: torch.Tensor | None
    statistics: torch.Tensor | None
    order: torch.Tensor | None
    inverse: torch.Tensor | None
    shift: Reference


def prepare(data: torch.Tensor, ref: Reference, grouped: bool) -> MissingPrepared:
    """``data: (n, d)`` with NaN for missing entries, standardised; rows grouped by
    missingness pattern when ``grouped``."""
    y = standardised(data, ref)
    observed = ~torch.isnan(y)
    values = torch.where(observed, y, torch.zeros_like(y))
    seen = observed.to(values.dtype)
    if not grouped:
        return MissingPrepared(values, seen, (), None, None, None, None, ref)
    groups = patterns(values, observed)
    order = torch.cat([p.rows for p in groups])
    masks = torch.zeros(len(groups), len(values), dtype=values.dtype, device=values.device)
    for i, pattern in enumerate(groups):
        masks[i, pattern.observed] = 1.0
    ordered = values.index_select(1, order)
    statistics = torch.cat([ordered, quadratic_rows(ordered, "full",
                                                    triangle(len(values)).rows)])
    return MissingPrepared(values, seen, groups, masks, statistics, order,
                           torch.argsort(order), ref)


def patterns(values: torch.Tensor, observed: torch.Tensor) -> tuple:
    """The rows of ``values: (d, n)`` grouped by ``observed: (d, n)`` pattern (patterns in
    a fixed order, rows in their order within each)."""
    d = observed.shape[0]
    if d <= 62:  # each pattern as the bits of one integer: a 1-D sort, far faster
        bits = torch.arange(d, dtype=torch.int64, device=observed.device)
        codes = observed.T.to(torch.int64) @ (2 ** bits)
        ordered, order = torch.sort(codes, stable=True)
        unique, counts = torch.unique_consecutive(ordered, return_counts=True)
        masks = ((unique.unsqueeze(-1) >> bits) & 1).bool()
    else:
        masks, inverse = torch.unique(observed.T, dim=0, return_inverse=True)
        order = torch.argsort(inverse, stable=True)
        counts = torch.bincount(inverse, minlength=len(masks))
    out, start = [], 0
    for pattern, rows in zip(masks, torch.split(order, counts.tolist())):
        seen = torch.nonzero(pattern).flatten()
        out.append(Pattern(rows, seen, torch.nonzero(~pattern).flatten(),
                           values.index_select(0, seen).index_select(1, rows),
                           start, start + len(rows)))
        start += len(rows)
    return tuple(out)


def observed_log_scale(prepared: MissingPrepared) -> torch.Tensor:
    """``(n,)`` log Jacobian of the standardisation over each row's observed coordinates."""
    return prepared.shift.scale.log() @ prepared.observed


# -- independent coordinates: diag and spherical -------------------------------------------
def _variances(scales: torch.Tensor, covariance: str, d: int) -> torch.Tensor:
    """``(*B, k, d)`` per-coordinate variances from ``scales``."""
    var = scales.square()
    return var.unsqueeze(-1).expand(*var.shape, d) if covariance == "spherical" else var


def _masked_differences(prepared: MissingPrepared, locs: torch.Tensor) -> torch.Tensor:
    """``(*B, k, d, n)`` ``y - mu_j`` on observed entries, 0 on missing ones."""
    return (prepared.values - locs.unsqueeze(-1)) * prepared.observed


def independent_log_densities(prepared: MissingPrepared, locs, scales, covariance: str):
    """``(*B, k, n)``: each observed coordinate's normal log density, summed."""
    var = _variances(scales, covariance, locs.shape[-1])
    diff = _masked_differences(prepared, locs)
    maha = (diff / var.sqrt().unsqueeze(-1)).square().sum(-2)
    norm = torch.matmul(var.log() + LOG_2PI, prepared.observed)
    return -0.5 * (maha + norm)


def independent_statistics(prepared: MissingPrepared, resp, locs, scales, covariance: str):
    """``sums (*B, k, d)`` and ``second`` (diag ``(*B, k, d)``, spherical ``(*B, k)``)
    around each mean; a missing entry adds its variance to the second moment."""
    var = _variances(scales, covariance, locs.shape[-1])
    diff = _masked_differences(prepared, locs)
    weighted = diff * resp.unsqueeze(-2)
    seen = torch.matmul(resp, prepared.observed.T)  # (*B, k, d)
    unseen = resp.sum(-1, keepdim=True) - seen
    second = (weighted * diff).sum(-1) + unseen * var
    if covariance == "spherical":
        second = second.sum(-1)
    return {"sums": weighted.sum(-1), "second": second}


# -- full and tied covariances: every pattern's blocks embedded in d x d, all at once -------
def covariances(tril: torch.Tensor, k: int, tied: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(*B, k, d, d)`` Cholesky factors (a ``tied`` one, ``(*B, d, d)``, repeated) and
    covariances."""
    if tied:
        tril = tril.unsqueeze(-3).expand(*tril.shape[:-2], k, *tril.shape[-2:])
    return tril, tril @ tril.mT


class Triangle(NamedTuple):
    """Index helpers of the upper triangle of an ``a x a`` matrix (see ``upper_triangle``):
    ``rows, cols, symmetric``; ``upper`` its entries in a flattened matrix; ``off`` the
    natural parameters' factors (-1/2 on the diagonal, -1 off it)."""

    rows: torch.Tensor
    cols: torch.Tensor
    symmetric: torch.Tensor
    upper: torch.Tensor
    off: torch.Tensor


@lru_cache(maxsize=64)
def triangle(a: int) -> Triangle:
    rows, cols, symmetric = upper_triangle(a)
    return Triangle(rows, cols, symmetric, rows * a + cols,
                    torch.where(rows == cols, -0.5, -1.0).to(torch.float64))


class Embedded(NamedTuple):
    """Every pattern's blocks of every component's covariance, embedded in ``d x d``.

    Attributes (leading ``(P, *B, k)``):
        chol: ``(..., d, d)`` Cholesky factor of ``Sigma_oo`` in place, identity elsewhere.
        offsets: ``(..., d)`` the means on the observed coordinates, 0 elsewhere.
        eta: ``(..., m)`` natural parameters of the observed block's density;
            ``log_norm: (...)`` its log normaliser.
        natural: ``(P,)`` whether the natural form is exact enough for the pattern.
        lift: ``(..., d, d)`` ``J``: the completed row's difference from the mean, from the
            observed one (``A`` in the missing rows, the identity on the observed ones).
        conditional: ``(..., d, d)`` ``C`` in the missing block, 0 elsewhere.
    """

    chol: torch.Tensor
    offsets: torch.Tensor
    eta: torch.Tensor
    log_norm: torch.Tensor
    natural: torch.Tensor
    lift: torch.Tensor
    conditional: torch.Tensor


def embedded(prepared: MissingPrepared, locs: torch.Tensor, cov: torch.Tensor) -> Embedded:
    """The blocks of ``cov: (*B, k, d, d)`` for every pattern of ``prepared``.

    The embedded matrix ``Sigma_oo`` in place with the identity on the missing
    coordinates has, as its Cholesky factor, ``Sigma_oo``'s in place and the identity
    elsewhere; its inverse likewise.
    """
    d = locs.shape[-1]
    tri = triangle(d)
    masks = prepared.masks.reshape(-1, *([1] * (locs.dim() - 1)), d)  # (P, *1, d)
    both = masks.unsqueeze(-1) * masks.unsqueeze(-2)
    missing = 1.0 - masks
    chol = torch.linalg.cholesky(cov * both + torch.diag_embed(missing.expand(
        -1, *locs.shape)))
    inv = torch.linalg.solve_triangular(chol, torch.eye(d, dtype=cov.dtype, device=cov.device),
                                        upper=False)
    precision = inv.mT @ inv * both  # Sigma_oo^-1 in place, 0 elsewhere
    offsets = locs * masks
    white = (inv @ offsets.unsqueeze(-1)).squeeze(-1)
    lin = (precision @ offsets.unsqueeze(-1)).squeeze(-1)
    eta = torch.cat([lin, precision.flatten(-2).index_select(-1, tri.upper) * tri.off], -1)
    seen = masks.sum(-1)
    log_norm = torch.diagonal(chol, 0, -2, -1).log().sum(-1) + 0.5 * (
        white.square().sum(-1) + seen * LOG_2PI)
    extent = prepared.shift.extent
    largest = torch.cat([extent, extent[tri.rows] * extent[tri.cols]])
    bound = (eta.abs() @ largest + log_norm.abs()).flatten(1).amax(1) * 4 * EPS
    regression = cov @ precision  # Sigma Q: its missing rows hold A = Sigma_mo Sigma_oo^-1
    lift = torch.diag_embed(masks.expand(-1, *locs.shape)) + missing.unsqueeze(-1) * regression
    conditional = (cov - regression @ cov) * (missing.unsqueeze(-1) * missing.unsqueeze(-2))
    return Embedded(chol, offsets, eta, log_norm, torch.isfinite(bound) & (bound <= TOLERANCE),
                    lift, conditional)


def full_log_densities(prepared: MissingPrepared, locs, tril, tied: bool) -> torch.Tensor:
    """``(*B, k, n)``: each row's marginal density over its observed coordinates.

    Args:
        locs: ``(*B, k, d)``; tril: ``(*B, k, d, d)``, or ``(*B, d, d)`` when ``tied``.
    """
    _, cov = covariances(tril, locs.shape[-2], tied)
    part = embedded(prepared, locs, cov)
    d, m = locs.shape[-1], part.eta.shape[-1]
    values = prepared.statistics[:d]
    out = locs.new_empty(*locs.shape[:-1], values.shape[-1])  # rows sorted by pattern
    for p, pattern in enumerate(prepared.patterns):
        start, stop = pattern.start, pattern.stop
        target = out[..., start:stop]
        if bool(part.natural[p]):  # one matrix product, as for complete data
            product = part.eta[p].reshape(-1, m) @ prepared.statistics[:, start:stop]
            torch.sub(product.reshape(target.shape), part.log_norm[p].unsqueeze(-1),
                      out=target)
            continue
        diff = values[:, start:stop] - part.offsets[p].unsqueeze(-1)  # 0 where missing
        white = torch.linalg.solve_triangular(part.chol[p], diff, upper=False)
        log_det = torch.diagonal(part.chol[p], 0, -2, -1).log().sum(-1, keepdim=True)
        torch.add(white.square_().sum(-2), 2 * log_det + len(pattern.observed) * LOG_2PI,
                  out=target).mul_(-0.5)
    return out.index_select(-1, prepared.inverse)


def full_statistics(prepared: MissingPrepared, resp, locs, tril, tied: bool) -> dict:
    """``sums (*B, k, d)`` and ``second (*B, k, d, d)`` around each mean, the missing
    blocks at their conditional means plus their conditional covariance."""
    _, cov = covariances(tril, locs.shape[-2], tied)
    part = embedded(prepared, locs, cov)
    d, m = locs.shape[-1], part.eta.shape[-1]
    values = prepared.statistics[:d]
    resp = resp.index_select(-1, prepared.order)  # rows sorted by pattern
    count = len(prepared.patterns)
    raw = locs.new_zeros(count, *locs.shape[:-1], m)  # natural-form sums per pattern
    first = locs.new_zeros(count, *locs.shape)  # centred ones, where the natural form is off
    outer = locs.new_zeros(count, *locs.shape, d)
    weights = locs.new_empty(count, *locs.shape[:-1])
    for p, pattern in enumerate(prepared.patterns):
        r = resp[..., pattern.start: pattern.stop]
        weights[p] = r.sum(-1)
        if bool(part.natural[p]):
            product = r.reshape(-1, r.shape[-1]) @ prepared.statistics[
                :, pattern.start: pattern.stop].T
            raw[p] = product.reshape(raw[p].shape)
            continue
        diff = values[:, pattern.start: pattern.stop] - part.offsets[p].unsqueeze(-1)
        weighted = diff * r.unsqueeze(-2)
        first[p], outer[p] = weighted.sum(-1), weighted @ diff.mT
    centred = recentre(raw, part.offsets, weights, "full", triangle(d).symmetric)
    natural = part.natural.reshape(-1, *([1] * locs.dim()))
    first = torch.where(natural, centred["sums"], first)
    outer = torch.where(natural.unsqueeze(-1), centred["second"], outer)
    sums = (part.lift @ first.unsqueeze(-1)).squeeze(-1).sum(0)
    second = (part.lift @ outer @ part.lift.mT
              + weights[..., None, None] * part.conditional).sum(0)
    return {"sums": sums, "second": second}


# -- imputation -------------------------------------------------------------------------
class Blocks(NamedTuple):
    """One pattern's blocks of every component's covariance.

    Attributes:
        chol: ``(*B, k, a, a)`` Cholesky factor of ``Sigma_oo``.
        regression: ``(*B, k, b, a)`` ``A = Sigma_mo Sigma_oo^-1`` (None: nothing missing).
        conditional: ``(*B, k, b, b)`` ``C = Sigma_mm - A Sigma_om`` (None likewise).
    """

    chol: torch.Tensor
    regression: torch.Tensor | None
    conditional: torch.Tensor | None


def blocks(tril: torch.Tensor, cov: torch.Tensor, pattern: Pattern) -> Blocks:
    """The blocks of ``cov: (*B, k, d, d)`` for ``pattern`` (``tril`` its factors)."""
    seen, unseen = pattern.observed, pattern.missing
    if len(unseen) == 0:
        return Blocks(tril, None, None)
    rows = cov.index_select(-2, seen)
    chol = torch.linalg.cholesky(rows.index_select(-1, seen))
    cross = rows.index_select(-1, unseen)  # Sigma_om: (*B, k, a, b)
    regression = torch.cholesky_solve(cross, chol).mT
    own = cov.index_select(-2, unseen).index_select(-1, unseen)
    return Blocks(chol, regression, own - regression @ cross)


def _observed_differences(pattern: Pattern, locs: torch.Tensor) -> torch.Tensor:
    """``(*B, k, a, n_p)`` ``y_o - mu_o`` of the pattern's rows."""
    return pattern.values - locs.index_select(-1, pattern.observed).unsqueeze(-1)


def conditionals(prepared: MissingPrepared, locs, tril, tied: bool = False):
    """Per pattern with missing entries: ``(pattern, means (k, b, n_p), chol (k, b, b))``,
    the conditional distribution of the missing block under each component (standardised;
    one parameter set, no restart batch)."""
    tril, cov = covariances(tril, locs.shape[-2], tied)
    for pattern in prepared.patterns:
        if len(pattern.missing) == 0:
            continue
        part = blocks(tril, cov, pattern)
        means = locs.index_select(-1, pattern.missing).unsqueeze(-1) + (
            part.regression @ _observed_differences(pattern, locs))
        conditional = 0.5 * (part.conditional + part.conditional.mT)
        chol, info = torch.linalg.cholesky_ex(conditional)
        if bool(info.any()):  # round-off made it singular: a tiny jitter
            eye = torch.eye(len(pattern.missing), dtype=cov.dtype, device=cov.device)
            chol = torch.linalg.cholesky(conditional + 1e-12 * eye * torch.diagonal(
                conditional, 0, -2, -1).abs().amax(-1)[..., None, None].clamp_min(1e-300))
        yield pattern, means, chol


# -- the Pyro side ------------------------------------------------------------------------
class MissingMultivariateNormal(dist.MultivariateNormal):
    """A multivariate normal whose NaN entries of an observation are missing: the log
    density of a row is its marginal over the observed coordinates (the observed block
    of the covariance), 0 for a row with nothing observed.

    Rows are grouped by missingness pattern when the observations vary only along
    batch dimensions in which the parameters do not (a mixture's data plate under
    enumeration); otherwise every observation gets its own observed block. Missing
    entries are replaced by 0 before any arithmetic, so no NaN reaches a gradient.
    """

    def log_prob(self, value):
        observed = ~torch.isnan(value)
        if bool(observed.all()):
            return super().log_prob(value)
        safe = torch.where(observed, value, torch.zeros_like(value))
        loc, tril = self.loc, self._unbroadcasted_scale_tril
        if value.dim() == 2 and _constant(loc, 2) and _constant(tril, 3):
            return self._grouped(safe, observed)
        return self._each(safe, observed)

    def _grouped(self, value: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """``value: (n, d)``; parameters constant along the data dimension."""
        loc, tril = self.loc, self._unbroadcasted_scale_tril
        loc = loc[..., 0, :] if loc.dim() >= 2 else loc  # the data dimension dropped
        tril = tril[..., 0, :, :] if tril.dim() >= 3 else tril
        pieces, rows = [], []
        for pattern in patterns(value.T, observed.T):
            seen = pattern.observed
            block = tril.index_select(-2, seen)
            chol = torch.linalg.cholesky(block @ block.mT)  # of Sigma_oo: (..., a, a)
            diff = pattern.values - loc.index_select(-1, seen).unsqueeze(-1)  # (..., a, n_p)
            white = torch.linalg.solve_triangular(chol, diff, upper=False)
            log_det = torch.diagonal(chol, 0, -2, -1).log().sum(-1, keepdim=True)
            pieces.append(-0.5 * (white.square().sum(-2) + len(seen) * LOG_2PI) - log_det)
            rows.append(pattern.rows)
        shape = torch.broadcast_shapes(*(p.shape[:-1] for p in pieces))
        joined = torch.cat([p.expand(*shape, p.shape[-1]) for p in pieces], -1)
        return joined.index_select(-1, torch.argsort(torch.cat(rows)))

    def _each(self, value: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Any broadcasting: the observed block of every observation, embedded in ``d x d``
        with the identity on its missing coordinates (same determinant and quadratic form)."""
        shape = torch.broadcast_shapes(self.batch_shape, value.shape[:-1])
        mask = observed.to(value.dtype)
        cov = self.covariance_matrix * (mask.unsqueeze(-1) * mask.unsqueeze(-2))
        cov = cov + torch.diag_embed(1.0 - mask)
        chol = torch.linalg.cholesky(cov.expand(*shape, *cov.shape[-2:]))
        diff = ((value - self.loc) * mask).expand(*shape, value.shape[-1])
        white = torch.linalg.solve_triangular(chol, diff.unsqueeze(-1), upper=False).squeeze(-1)
        log_det = torch.diagonal(chol, 0, -2, -1).log().sum(-1)
        return -0.5 * (white.square().sum(-1) + mask.sum(-1) * LOG_2PI) - log_det


def _constant(tensor: torch.Tensor, rank: int) -> bool:
    """Whether ``tensor`` (event rank ``rank - 1``) does not vary along the batch dimension
    next to its event (absent, of size 1, or a broadcast view)."""
    return tensor.dim() < rank or tensor.shape[-rank] == 1 or tensor.stride(-rank) == 0
