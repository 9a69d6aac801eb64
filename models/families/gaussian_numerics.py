"""The Gaussian family's numerics: standardised coordinates, and log densities and
statistics in two exact-enough forms.

*Standardised coordinates*: every computation runs on ``y = x / s - c / s`` where
``c`` is the data mean and ``s`` a power of two per coordinate (one for all
coordinates of a spherical family) near the data's extent. Dividing by a power
of two is exact, so nothing is lost, and squares stay finite for any finite
float64 input (data at 1e300 fit as data at 1 do). Parameters are mapped in and
out: ``mu' = mu / s - c / s``, ``L' = diag(1/s) L``, ``log p(x) = log p'(y) - sum log s``.

*Natural form* (fast): statistics ``T(y) = [y, quadratic terms of y]`` with
``y = x - c`` around one reference ``c`` (the data mean) and one matrix product
with natural parameters. Its round-off grows with ``|x - c|^2 / sigma^2``:
components far from ``c`` in their own units, or collapsed to a tiny variance,
lose digits.

*Centred form* (exact): differences ``x - mu_j`` from each component's own mean,
whitened by its scale, as Pyro's distributions compute them; ``k`` times the
memory traffic.

:func:`natural_form_error` bounds the natural form's absolute round-off per point
from the parameters and the data's extent; the family switches to the centred
form when the bound exceeds :data:`TOLERANCE`. Statistics are always returned
*around each component's current mean* (``sums = sum r (x - mu_j)``,
``second = sum r (x - mu_j)(x - mu_j)^T`` or its diagonal or trace), so the
M-step is a two-pass computation whichever form ran.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

LOG_2PI = math.log(2 * math.pi)
EPS = torch.finfo(torch.float64).eps
#: largest tolerated round-off of the natural form, in log-density units per point
TOLERANCE = 1e-11


class Reference(NamedTuple):
    """The standardised coordinates of one fit, from all of its data.

    Attributes:
        scale: ``(d,)`` powers of two ``s``.
        offset: ``(d,)`` the data mean in standardised units, ``c / s``.
        extent: ``(d,)`` the largest ``|y|`` per coordinate (bounds round-off).
    """

    scale: torch.Tensor
    offset: torch.Tensor
    extent: torch.Tensor


def power_of_two(values: torch.Tensor) -> torch.Tensor:
    """The power of two at or above each value (1 where a value is 0)."""
    exponent = torch.frexp(values)[1]  # values = m 2^e with 0.5 <= m < 1
    return torch.where(values > 0, torch.ldexp(torch.ones_like(values), exponent),
                       torch.ones_like(values))


def reference(data: torch.Tensor, common: bool) -> Reference:
    """Standardised coordinates for ``data: (n, d)``; ``common``: one scale for all axes.

    Each step divides by a power of two first, so no intermediate overflows. Missing
    entries (NaN) are left out (a coordinate never observed gets offset 0, scale 1).

    Two passes over the data, a block of rows of about 1 MiB at a time (memory: a block,
    whatever n; perhaps memory-mapped): the smallest and largest value per coordinate, then
    the sum of ``x / rough``. Everything else follows from those exactly: ``x / r - m`` is
    monotone in ``x``, so its largest magnitude is at the smallest or the largest ``x``;
    and ``scale / rough`` is a power of two, so ``mean(x / scale)`` is
    ``mean(x / rough) * rough / scale`` (scaling by a power of two commutes with rounding).
    """
    n = len(data)
    if n == 0:
        ones = torch.ones(data.shape[1:], dtype=data.dtype, device=data.device)
        return Reference(ones, torch.zeros_like(ones), torch.zeros_like(ones))
    low = high = None
    for b, _ in _blocks(data):  # data: a tensor, or rows in several files (ondisk.Shards)
        lo, hi = torch.aminmax(b, dim=0)
        low = lo if low is None else torch.minimum(low, lo)
        high = hi if high is None else torch.maximum(high, hi)
    if bool(torch.isnan(low).any() | torch.isnan(high).any()):  # NaN propagates
        # missing entries: all at once (shards: gathered into memory)
        return _reference_observed(data if torch.is_tensor(data) else data[:], common)
    rough = power_of_two(torch.maximum(low.abs(), high.abs()))
    if common:
        rough = rough.amax().expand_as(rough)
    mean = sum(torch.div(b, rough, out=w).sum(0) for b, w in _blocks(data)) / n
    spread = torch.maximum((low / rough - mean).abs(), (high / rough - mean).abs())
    scale = rough * power_of_two(spread)
    if common:
        scale = scale.amax().expand_as(scale).clone()
    offset = mean * (rough / scale)
    extent = torch.maximum((low / scale - offset).abs(), (high / scale - offset).abs())
    return Reference(scale, offset, extent)


#: rows per block of :func:`reference`: about 1 MiB
BLOCK_BYTES = 1 << 20


def _blocks(data: torch.Tensor):
    """``(block, workspace)`` pairs: rows of about :data:`BLOCK_BYTES`, and a buffer of
    their shape made once (no allocation per block, so the process does not grow with the
    data)."""
    step = max(1, BLOCK_BYTES // max(1, data[:1].numel() * data.element_size()))
    work = torch.empty((min(step, len(data)),) + tuple(data.shape[1:]), dtype=data.dtype,
                       device=data.device)
    for start in range(0, len(data), step):
        block = data[start: start + step]
        yield block, work[: len(block)]


def _reference_observed(data: torch.Tensor, common: bool) -> Reference:
    """:func:`reference` over the observed entries of ``data`` (NaN: missing)."""
    observed = ~torch.isnan(data)
    zero = torch.where(observed, data, torch.zeros_like(data))
    count = observed.sum(0).clamp_min(1)
    rough = power_of_two(zero.abs().amax(0))
    if common:
        rough = rough.amax().expand_as(rough)
    centred = torch.where(observed, zero / rough - (zero / rough).sum(0) / count, 0.0)
    scale = rough * power_of_two(centred.abs().amax(0))
    if common:
        scale = scale.amax().expand_as(scale).clone()
    offset = (zero / scale).sum(0) / count
    extent = torch.where(observed, zero / scale - offset, 0.0).abs().amax(0)
    return Reference(scale, offset, extent)


def standardised(data: torch.Tensor, ref: Reference, out: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """``(d, n)`` points in standardised units (written into ``out`` when given)."""
    if out is None:
        return (data / ref.scale - ref.offset).T.contiguous()
    torch.div(data.T, ref.scale.unsqueeze(-1), out=out)  # the same two roundings
    return out.sub_(ref.offset.unsqueeze(-1))


def quadratic_rows(y: torch.Tensor, covariance: str, rows: torch.Tensor,
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """The quadratic statistics of ``y: (d, n)``: ``|y|^2 (1, n)``, ``y*y (d, n)`` or the
    upper triangle of ``y y^T`` (``(len(rows), n)``, row-major); into ``out`` if given."""
    if covariance == "spherical":
        return torch.sum(y * y, 0, keepdim=True, out=out)
    if covariance == "diag":
        return torch.mul(y, y, out=out)
    d, n = y.shape
    out = y.new_empty(len(rows), n) if out is None else out
    at = 0
    for i in range(d):  # row i times rows i..d-1: the upper triangle of y y^T
        torch.mul(y[i : i + 1], y[i:], out=out[at : at + d - i])
        at += d - i
    return out


def statistics(data: torch.Tensor, ref: Reference, covariance: str, rows: torch.Tensor
               ) -> torch.Tensor:
    """``(m, n)`` ``T(y) = [y, quadratic rows of y]`` of ``data: (n, d)``, built in one
    buffer (no copies: a third of a fit's fixed cost at 10^6 points)."""
    d, n = data.shape[1], data.shape[0]
    m = d + {"spherical": 1, "diag": d}.get(covariance, len(rows))
    out = data.new_empty(m, n)
    y = standardised(data, ref, out=out[:d])
    quadratic_rows(y, covariance, rows, out=out[d:])
    return out


def statistics_bound(extent: torch.Tensor, covariance: str, rows, cols) -> torch.Tensor:
    """``(m,)`` the largest ``|T(y)|`` per statistic, from ``extent: (d,)``."""
    if covariance == "spherical":
        quad = (extent * extent).sum().reshape(1)
    elif covariance == "diag":
        quad = extent * extent
    else:
        quad = extent[rows] * extent[cols]
    return torch.cat([extent, quad])


def natural_form_error(eta: torch.Tensor, log_norm: torch.Tensor, extent: torch.Tensor,
                       covariance: str, rows, cols, largest: torch.Tensor | None = None
                       ) -> float:
    """An upper bound of the natural form's absolute round-off per point.

    Args:
        eta: ``(*B, k, m)`` natural parameters; ``log_norm: (*B, k)``.
        extent: ``(d,)`` largest ``|x - c|`` per coordinate over all the data.
        largest: :func:`statistics_bound` of ``extent``, when already at hand.

    Returns:
        ``eps * max_j (|eta_j| . max|T| + |A_j|)``; ``inf`` when anything is not finite.
    """
    largest = statistics_bound(extent, covariance, rows, cols) if largest is None else largest
    bound = (eta.abs() @ largest + log_norm.abs()).max()
    value = float(bound) * 4 * EPS
    return value if math.isfinite(value) else math.inf


def centred_differences(y: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``(*B, k, d, n)`` differences ``y - a_j`` of ``y: (d, n)`` from ``offsets: (*B, k, d)``."""
    return y - offsets.unsqueeze(-1)


def centred_log_densities(diff: torch.Tensor, scale: torch.Tensor, covariance: str):
    """Log densities from centred differences, as Pyro computes them.

    Args:
        diff: ``(*B, k, d, n)`` differences from each component's mean.
        scale: ``scales`` ``(*B, k)`` (spherical) or ``(*B, k, d)`` (diag), or
            ``scale_tril`` ``(*B, k, d, d)`` (full) or ``(*B, d, d)`` (tied).

    Returns:
        ``(*B, k, n)``.
    """
    d = diff.shape[-2]
    if covariance == "spherical":
        maha = diff.square().sum(-2) / scale.square().unsqueeze(-1)
        log_det = 2 * d * scale.log()
    elif covariance == "diag":
        maha = (diff / scale.unsqueeze(-1)).square().sum(-2)
        log_det = 2 * scale.log().sum(-1)
    else:
        tril = scale.unsqueeze(-3) if covariance == "tied" else scale
        white = torch.linalg.solve_triangular(tril, diff, upper=False)
        maha = white.square().sum(-2)
        log_det = 2 * torch.diagonal(tril, 0, -2, -1).log().sum(-1)
        if covariance == "tied":
            log_det = log_det.expand(maha.shape[:-1])
    return -0.5 * (maha + (log_det + d * LOG_2PI).unsqueeze(-1))


def centred_statistics(diff: torch.Tensor, resp: torch.Tensor, covariance: str) -> dict:
    """``sums: (*B, k, d)`` and ``second`` around each mean, from ``diff: (*B, k, d, n)``
    and ``resp: (*B, k, n)``."""
    weighted = diff * resp.unsqueeze(-2)
    sums = weighted.sum(-1)
    if covariance == "spherical":
        second = (weighted * diff).sum((-2, -1))
    elif covariance == "diag":
        second = (weighted * diff).sum(-1)
    else:
        second = weighted @ diff.mT
    return {"sums": sums, "second": second}


def recentre(sums: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor, covariance: str,
             symmetric: torch.Tensor) -> dict:
    """Natural-form statistics around ``c`` turned into statistics around each mean.

    Args:
        sums: ``(*B, k, m)`` weighted sums of ``T(y)``.
        offsets: ``(*B, k, d)`` each mean minus ``c``; ``counts: (*B, k)``.

    ``sum r (y - a)(y - a)^T = sum r y y^T - a s^T - s a^T + N a a^T`` with ``s = sum r y``.
    """
    d = offsets.shape[-1]
    lin, quad = sums[..., :d], sums[..., d:]
    n = counts.unsqueeze(-1)
    centred = lin - n * offsets
    if covariance == "spherical":
        second = quad[..., 0] - (2 * lin - n * offsets).mul(offsets).sum(-1)
    elif covariance == "diag":
        second = quad - (2 * lin - n * offsets) * offsets
    else:
        full = quad[..., symmetric].unflatten(-1, (d, d))
        column = offsets.unsqueeze(-1)
        cross = column * lin.unsqueeze(-2)
        second = full - cross - cross.mT + n.unsqueeze(-1) * column * offsets.unsqueeze(-2)
    return {"sums": centred, "second": second}
