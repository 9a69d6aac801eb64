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
completed row. Rows are grouped by pattern once per chunk (:func:`patterns`), so the
per-row work is the complete-data work on the observed coordinates; the per-pattern
work is a few ``d x d`` matrices per component.
"""

from __future__ import annotations

from typing import NamedTuple

import pyro.distributions as dist
import torch

from .gaussian_numerics import LOG_2PI, Reference, standardised


class Pattern(NamedTuple):
    """Rows of a chunk that share one missingness pattern.

    Attributes:
        rows: ``(n_p,)`` their indices in the chunk.
        observed: ``(a,)`` the observed coordinates; ``missing: (b,)`` the others.
        values: ``(a, n_p)`` their observed values, standardised.
    """

    rows: torch.Tensor
    observed: torch.Tensor
    missing: torch.Tensor
    values: torch.Tensor


class MissingPrepared(NamedTuple):
    """A chunk with missing entries, for the Gaussian family.

    Attributes:
        values: ``(d, n)`` standardised points, 0 in each missing entry.
        observed: ``(d, n)`` 1.0 where observed, 0.0 where missing.
        patterns: the rows grouped by missingness pattern (full and tied covariances).
        shift: the fit's :class:`Reference`.
    """

    values: torch.Tensor
    observed: torch.Tensor
    patterns: tuple
    shift: Reference


def prepare(data: torch.Tensor, ref: Reference, grouped: bool) -> MissingPrepared:
    """``data: (n, d)`` with NaN for missing entries, standardised; rows grouped by
    missingness pattern when ``grouped``."""
    y = standardised(data, ref)
    observed = ~torch.isnan(y)
    values = torch.where(observed, y, torch.zeros_like(y))
    groups = patterns(values, observed) if grouped else ()
    return MissingPrepared(values, observed.to(values.dtype), groups, ref)


def patterns(values: torch.Tensor, observed: torch.Tensor) -> tuple:
    """The rows of ``values: (d, n)`` grouped by ``observed: (d, n)`` pattern."""
    mask = observed.T.to(torch.uint8)
    unique, inverse = torch.unique(mask, dim=0, return_inverse=True)
    order = torch.argsort(inverse, stable=True)
    counts = torch.bincount(inverse, minlength=len(unique)).tolist()
    out = []
    for pattern, rows in zip(unique.bool(), torch.split(order, counts)):
        seen = torch.nonzero(pattern).flatten()
        out.append(Pattern(rows, seen, torch.nonzero(~pattern).flatten(),
                           values.index_select(0, seen).index_select(1, rows)))
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


# -- full and tied covariances, pattern by pattern -------------------------------------------
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


def covariances(tril: torch.Tensor, k: int, tied: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(*B, k, d, d)`` Cholesky factors (a ``tied`` one, ``(*B, d, d)``, repeated) and
    covariances."""
    if tied:
        tril = tril.unsqueeze(-3).expand(*tril.shape[:-2], k, *tril.shape[-2:])
    return tril, tril @ tril.mT


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


def full_log_densities(prepared: MissingPrepared, locs, tril, tied: bool) -> torch.Tensor:
    """``(*B, k, n)``: each row's marginal density over its observed coordinates.

    Args:
        locs: ``(*B, k, d)``; tril: ``(*B, k, d, d)``, or ``(*B, d, d)`` when ``tied``.
    """
    tril, cov = covariances(tril, locs.shape[-2], tied)
    out = locs.new_empty(*locs.shape[:-1], prepared.values.shape[-1])
    for pattern in prepared.patterns:
        chol = blocks(tril, cov, pattern).chol
        white = torch.linalg.solve_triangular(chol, _observed_differences(pattern, locs),
                                              upper=False)
        log_det = 2 * torch.diagonal(chol, 0, -2, -1).log().sum(-1)
        constant = log_det + len(pattern.observed) * LOG_2PI
        out.index_copy_(-1, pattern.rows, -0.5 * (white.square().sum(-2)
                                                  + constant.unsqueeze(-1)))
    return out


def full_statistics(prepared: MissingPrepared, resp, locs, tril, tied: bool) -> dict:
    """``sums (*B, k, d)`` and ``second (*B, k, d, d)`` around each mean, the missing
    blocks at their conditional means plus their conditional covariance."""
    d = locs.shape[-1]
    tril, cov = covariances(tril, locs.shape[-2], tied)
    sums = locs.new_zeros(locs.shape)
    second = locs.new_zeros(*locs.shape, d)
    for pattern in prepared.patterns:
        r = resp.index_select(-1, pattern.rows)
        diff = _observed_differences(pattern, locs)
        weighted = diff * r.unsqueeze(-2)
        first, outer = weighted.sum(-1), weighted @ diff.mT  # (*B, k, a), (*B, k, a, a)
        part = blocks(tril, cov, pattern)
        if part.regression is None:
            sums += first
            second += outer
            continue
        lift = _lift(part.regression, pattern, d)  # J: (*B, k, d, a)
        sums += (lift @ first.unsqueeze(-1)).squeeze(-1)
        second += lift @ outer @ lift.mT
        unseen = pattern.missing
        second[..., unseen.unsqueeze(-1), unseen] += r.sum(-1)[..., None, None] * (
            part.conditional)
    return {"sums": sums, "second": second}


def _lift(regression: torch.Tensor, pattern: Pattern, d: int) -> torch.Tensor:
    """``J: (*B, k, d, a)``: observed rows the identity, missing rows ``A``."""
    a = len(pattern.observed)
    lift = regression.new_zeros(*regression.shape[:-2], d, a)
    lift[..., pattern.observed, torch.arange(a)] = 1.0
    lift[..., pattern.missing, :] = regression
    return lift


# -- imputation -------------------------------------------------------------------------
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
            eye = torch.eye(len(pattern.missing), dtype=cov.dtype)
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
