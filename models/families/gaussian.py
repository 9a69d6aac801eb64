"""Gaussian components: spherical, diagonal, full and tied covariances.

Parameters (k components, dimension d):

=========  ===========================  ===================================
type       covariance parameter         meaning
=========  ===========================  ===================================
spherical  ``scales: (k,)``             standard deviation, same in every axis
diag       ``scales: (k, d)``           standard deviation per axis
full       ``scale_tril: (k, d, d)``    Cholesky factor of the covariance
tied       ``scale_tril: (d, d)``       one Cholesky factor for all components
=========  ===========================  ===================================

The E- and M-step run in standardised coordinates (the data mean removed, each
axis divided by a power of two: exact, and squares stay finite for any finite
input), in the natural-parameter form where its round-off is negligible and in
the centred form where it is not; statistics are formed around each
component's current mean, so the M-step is a two-pass computation. See
:mod:`models.families.gaussian_numerics`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..params import Params, ParamSpec
from ..validation import InputError, as_tensor, check_data, check_int
from . import gaussian_missing as gm
from . import gaussian_prior
from .base import Family, Prepared, pick, shared, upper_triangle
from .gaussian_numerics import (
    EPS,
    LOG_2PI,
    TOLERANCE,
    Reference,
    centred_differences,
    centred_log_densities,
    centred_statistics,
    natural_form_error,
    recentre,
    reference,
    statistics,
    statistics_bound,
)
from .missing import NanMasked, filled, has_missing

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")


class Normal(dist.Normal):
    """Pyro's Normal with the log density computed from ``(x - loc) / scale``, which stays
    finite for any finite input (``(x - loc)**2 / scale**2`` overflows near 1e154)."""

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -0.5 * z * z - self.scale.log() - 0.5 * LOG_2PI


class MaskedNormal(NanMasked, Normal):
    """:class:`Normal` whose NaN observations are missing (log density 0 there)."""

#: the smallest variance ever used, in standardised units (exact zeros with reg_covar = 0)
RESOLUTION_FLOOR = 1e-280


class FitConstants(NamedTuple):
    """Per-fit constants of the Gaussian family (see :meth:`Gaussian._constants`).

    Attributes:
        log_scale: ``()`` ``sum log s``; ``reg``: ``(d,)`` ``reg_covar`` in standardised
        units; ``largest``: ``(m,)`` the largest ``|T(y)|`` per statistic.
    """

    log_scale: torch.Tensor
    reg: torch.Tensor
    largest: torch.Tensor


class Gaussian(Family):
    """Gaussian observations in ``dim`` dimensions.

    Args:
        dim: dimension d of one observation.
        covariance: one of ``full``, ``diag``, ``spherical``, ``tied``.
        reg_covar: added to the covariance diagonal in the M-step (as scikit-learn).
    """

    name = "gaussian"
    supports_missing = True

    def __init__(self, dim: int = 1, covariance: str = "full", reg_covar: float = 1e-6):
        self.dim = check_int(dim, "dim", low=1, high=100_000)
        if covariance not in COVARIANCE_TYPES:
            raise InputError(f"covariance: expected one of {COVARIANCE_TYPES}, got {covariance!r}")
        if isinstance(reg_covar, bool) or not isinstance(reg_covar, (int, float)) or not (
            math.isfinite(reg_covar) and reg_covar >= 0
        ):
            raise InputError(f"reg_covar: expected a finite number >= 0, got {reg_covar!r}")
        self.covariance = covariance
        self._reg_covar = float(reg_covar)
        self.event_shape = (self.dim,)
        d = self.dim
        self._rows, self._cols, self._symmetric = upper_triangle(d)
        self._off = torch.where(self._rows == self._cols, -0.5, -1.0).to(torch.float64)
        self._upper = self._rows * d + self._cols  # upper triangle of a flattened d x d
        self._eye = torch.eye(d, dtype=torch.float64)
        self._last_natural = None  # ((shift, *params), natural form or None)
        self._last_constants = None  # (shift, reg_covar, FitConstants)
        self._last_standard = None  # ((shift, locs, scale), standardised parameters)
        self.reg_covar = reg_covar

    @property
    def reg_covar(self) -> float:
        return self._reg_covar

    @reg_covar.setter
    def reg_covar(self, value: float) -> None:
        self._reg_covar = float(value)
        self._reg_eye = self._reg_covar * self._eye

    def describe(self) -> str:
        return f"gaussian(dim={self.dim}, covariance={self.covariance})"

    @property
    def cov_name(self) -> str:
        return "scales" if self.covariance in ("spherical", "diag") else "scale_tril"

    def specs(self, k: int) -> dict[str, ParamSpec]:
        d = self.dim
        shape, constraint, per_component = {
            "spherical": ((k,), constraints.positive, True),
            "diag": ((k, d), constraints.positive, True),
            "full": ((k, d, d), constraints.lower_cholesky, True),
            "tied": ((d, d), constraints.lower_cholesky, False),
        }[self.covariance]
        return {
            "locs": ParamSpec((k, d), constraints.real, doc="component means"),
            self.cov_name: ParamSpec(
                shape, constraint, per_component=per_component, doc=f"{self.covariance} scale"
            ),
        }

    def check_data(self, data, name: str = "data") -> torch.Tensor:
        return check_data(data, name, self.event_shape, missing=True)

    def canonical(self, values: dict) -> dict:
        values = dict(values)
        if "covariances" in values and self.cov_name == "scale_tril":
            cov = as_tensor(values.pop("covariances"), "covariances")
            chol, info = torch.linalg.cholesky_ex(cov)
            if cov.dim() < 2 or bool((info != 0).any()) or not torch.allclose(cov, cov.mT):
                raise InputError("covariances: expected symmetric positive-definite matrices")
            values["scale_tril"] = chol
        if "variances" in values and self.cov_name == "scales":
            var = as_tensor(values.pop("variances"), "variances")
            if bool((var <= 0).any()):
                raise InputError("variances: expected positive values")
            values["scales"] = var.sqrt()
        return values

    # -- standardised coordinates ----------------------------------------------------
    def shift(self, data: torch.Tensor) -> Reference:
        return reference(data, common=self.covariance == "spherical")

    def _to_standard(self, params, ref: Reference, keep: bool = False,
                     reuse: bool = False) -> Params:
        """Parameters in standardised units: ``mu / s - c / s`` and scales over ``s``.

        ``keep`` (the E-step) stores the answer for these very tensors and ``reuse`` (the
        statistics and the M-step of the same iteration) takes it back, as
        :meth:`_natural_or_none` does: only the E-step stores, so a value changed in place
        between two E-steps is never served stale.
        """
        if not (keep or reuse):
            return self._standard(params, ref)
        key = (ref, params.get("locs"), params.get(self.cov_name))
        last = self._last_standard
        if reuse and last is not None and all(a is b for a, b in zip(last[0], key)):
            return Params(last[1])
        out = self._standard(params, ref)
        if keep:
            self._last_standard = (key, out)  # one assignment: safe across threads
        return Params(out)

    def _standard(self, params, ref: Reference) -> Params:
        out = Params()
        if "locs" in params:
            out["locs"] = params["locs"] / ref.scale - ref.offset
        if self.cov_name in params:
            value = params[self.cov_name]
            if self.covariance == "spherical":
                out["scales"] = value / ref.scale[0]
            elif self.covariance == "diag":
                out["scales"] = value / ref.scale
            else:  # diag(1/s) L: still lower-triangular with a positive diagonal
                out["scale_tril"] = value / ref.scale.unsqueeze(-1)
        return out

    def _constants(self, ref: Reference) -> FitConstants:
        """What every iteration of a fit with reference ``ref`` needs and never changes:
        computed once per reference (a few tensor operations per iteration saved, a tenth
        of an iteration at 3,000 points)."""
        last = self._last_constants
        if last is not None and last[0] is ref and last[1] == self._reg_covar:
            return last[2]
        constants = FitConstants(
            ref.scale.log().sum(), self._reg_covar / ref.scale.square(),
            statistics_bound(ref.extent, self.covariance, self._rows, self._cols))
        self._last_constants = (ref, self._reg_covar, constants)  # one assignment
        return constants

    def _log_scale(self, ref: Reference) -> torch.Tensor:
        return self._constants(ref).log_scale

    def statistics(self, data, shift):
        return statistics(data, shift, self.covariance, self._rows)  # (m, n)

    def natural(self, params, shift):
        """Natural parameters of *standardised* parameters (``mu`` measured from 0)."""
        mu = params["locs"]  # (*B, k, d)
        d = self.dim
        if self.cov_name == "scales":
            var = params["scales"].square()
            if self.covariance == "spherical":
                var = var.unsqueeze(-1)  # (*B, k, 1)
            lin = mu / var
            log_det = var.log().sum(-1) * (d if self.covariance == "spherical" else 1)
            log_norm = 0.5 * ((mu * lin).sum(-1) + log_det + d * LOG_2PI)
            return torch.cat([lin, -0.5 / var], -1), log_norm
        tril = params["scale_tril"]
        batch = mu.shape[:-1]  # (*B, k)
        if self.covariance == "tied":
            tril = tril.unsqueeze(-3).expand(*batch, d, d)
        if len(batch) > 1:  # bmm works on 3-D stacks (far less overhead than matmul)
            tril, mu = tril.reshape(-1, d, d), mu.reshape(-1, d)
        eye, upper, off = self._eye, self._upper, self._off  # made on the CPU
        if tril.device != eye.device:
            eye, upper, off = eye.to(tril.device), upper.to(tril.device), off.to(tril.device)
        inv = torch.linalg.solve_triangular(tril, eye, upper=False)  # L^-1
        white = torch.bmm(inv, mu.unsqueeze(-1))  # L^-1 mu
        lin = torch.bmm(inv.mT, white)  # precision @ mu
        second = torch.bmm(inv.mT, inv).flatten(-2).index_select(-1, upper) * off
        log_norm = torch.diagonal(tril, 0, -2, -1).log().sum(-1)
        log_norm += 0.5 * (white.square().sum((-2, -1)) + d * LOG_2PI)
        eta = torch.cat([lin.squeeze(-1), second], -1)
        if len(batch) == 1:  # already (k, m) and (k,)
            return eta, log_norm
        return eta.reshape(*batch, -1), log_norm.reshape(batch)

    def prepare(self, data, shift):
        """The complete-data statistics; a chunk with missing entries (NaN) is kept as
        standardised values and a mask, its rows grouped by missingness pattern for full
        and tied covariances (see :mod:`models.families.gaussian_missing`)."""
        if has_missing(data):
            return gm.prepare(data, shift, grouped=self.covariance in ("full", "tied"))
        return super().prepare(data, shift)

    def _missing_log_densities(self, prepared, standard):
        if self.cov_name == "scales":
            joint = gm.independent_log_densities(prepared, standard["locs"],
                                                 standard["scales"], self.covariance)
        else:
            joint = gm.full_log_densities(prepared, standard["locs"], standard["scale_tril"],
                                          self.covariance == "tied")
        return joint.sub_(gm.observed_log_scale(prepared))

    def _missing_statistics(self, prepared, resp, standard):
        if self.cov_name == "scales":
            return gm.independent_statistics(prepared, resp, standard["locs"],
                                             standard["scales"], self.covariance)
        return gm.full_statistics(prepared, resp, standard["locs"], standard["scale_tril"],
                                  self.covariance == "tied")

    # -- the E-step: the natural form where it is exact enough, else the centred form ------
    def _natural_or_none(self, prepared: Prepared, standard: Params, params=None,
                         reuse: bool = False):
        """``(eta, log_norm)`` when the natural form's round-off is within tolerance.

        ``params`` (the values ``standard`` came from) keeps the answer for those very
        tensors; ``reuse`` takes the one kept by the E-step just before (its statistics
        ask again for the same parameters, and the bound costs a host synchronisation: a
        third of an iteration at 3,000 points). Only the E-step stores, so a value changed
        in place between two E-steps is never served stale.
        """
        key = None if params is None else (prepared.shift, *params.values())
        last = self._last_natural
        if reuse and key is not None and last is not None and len(last[0]) == len(key) and all(
                a is b for a, b in zip(last[0], key)):
            return last[1]
        eta, log_norm = self.natural(standard, prepared.shift)
        error = natural_form_error(eta, log_norm, prepared.shift.extent, self.covariance,
                                   self._rows, self._cols,
                                   self._constants(prepared.shift).largest)
        natural = (eta, log_norm) if error <= TOLERANCE else None
        if key is not None and not reuse:
            self._last_natural = (key, natural)  # one assignment: safe across threads
        return natural

    def _differences(self, prepared: Prepared, standard: Params):
        return centred_differences(prepared.statistics[: self.dim], standard["locs"])

    def log_densities(self, prepared, params):
        standard = self._to_standard(params, prepared.shift, keep=True)
        if isinstance(prepared, gm.MissingPrepared):
            return self._missing_log_densities(prepared, standard)
        natural = self._natural_or_none(prepared, standard, params)
        if natural is None:
            joint = centred_log_densities(self._differences(prepared, standard),
                                          standard[self.cov_name], self.covariance)
        else:
            eta, log_norm = natural
            if eta.dim() == 2:
                joint = torch.addmm(-log_norm.unsqueeze(-1), eta, prepared.statistics)
            else:
                joint = (eta.reshape(-1, eta.shape[-1]) @ prepared.statistics).reshape(
                    *eta.shape[:-1], -1)
                joint -= log_norm.unsqueeze(-1)
        return joint.sub_(self._log_scale(prepared.shift))

    def accumulate(self, prepared, resp, params):
        """``sums: (*B, k, d)`` and ``second`` (``(*B, k)``, ``(*B, k, d)`` or
        ``(*B, k, d, d)``) around each component's current mean, in standardised units."""
        if isinstance(prepared, gm.MissingPrepared):
            if self.cov_name not in params:  # an M-step straight from responsibilities
                params = {**self._provisional(prepared, resp), **params}
            return self._missing_statistics(prepared, resp,
                                            self._to_standard(params, prepared.shift))
        standard = self._to_standard(params, prepared.shift, reuse=True)
        if self.cov_name not in params or self._natural_or_none(prepared, standard, params,
                                                                reuse=True) is None:
            return centred_statistics(self._differences(prepared, standard), resp,
                                      self.covariance)
        sums = super().accumulate(prepared, resp, params)["sums"]
        offsets = standard["locs"].expand(*sums.shape[:-1], self.dim)
        return recentre(sums, offsets, resp.sum(-1), self.covariance, self._symmetric)

    def centers(self, prepared, resp):
        """Weighted means, the reference of an M-step straight from responsibilities (with
        missing entries: over the observed entries, and a provisional covariance, which the
        expected statistics of the missing entries need)."""
        if isinstance(prepared, gm.MissingPrepared):
            return self._provisional(prepared, resp)
        y = prepared.statistics[: self.dim]
        flat = resp.reshape(-1, resp.shape[-1])
        means = (y @ flat.T).T.reshape(*resp.shape[:-1], self.dim)
        counts = resp.sum(-1, keepdim=True).clamp_min(10 * EPS)
        ref = prepared.shift
        return {"locs": (means / counts + ref.offset) * ref.scale}

    def _provisional(self, prepared, resp) -> dict:
        """Available-case means and diagonal variances (each shrunk towards the data's own
        variance by one pseudo-observation), in the data's units: where an M-step from
        responsibilities alone starts when entries are missing."""
        y, seen = prepared.values, prepared.observed
        ref = prepared.shift
        weight = torch.matmul(resp, seen.T)  # (*B, k, d)
        means = torch.matmul(resp, y.T) / weight.clamp_min(10 * EPS)
        count = seen.sum(-1).clamp_min(1)
        overall = (y.square().sum(-1) - y.sum(-1).square() / count) / count
        spread = (torch.matmul(resp, y.square().T) - 2 * means * torch.matmul(resp, y.T)
                  + means.square() * weight)
        var = ((spread.clamp_min(0) + overall) / (weight + 1)).clamp_min(1e-12)
        out = {"locs": (means + ref.offset) * ref.scale}
        if self.covariance == "spherical":
            out["scales"] = var.mean(-1).sqrt() * ref.scale[0]
        elif self.covariance == "diag":
            out["scales"] = var.sqrt() * ref.scale
        else:
            if self.covariance == "tied":
                var = (var * weight).sum(-2) / weight.sum(-2).clamp_min(10 * EPS)
            out["scale_tril"] = torch.diag_embed(var.sqrt() * ref.scale)
        return out

    # -- the M-step, in standardised units ----------------------------------------------
    def prior_keys(self):
        return gaussian_prior.prior_keys(self.covariance)

    def prior_sites(self, prior, k):
        return gaussian_prior.prior_sites(self, prior, k)

    def maximize(self, stats, params, fixed=frozenset()):
        ref = stats["reference"]
        standard = self._to_standard(params, ref, reuse=True)
        prior = stats.get("prior") or {}
        if any(key in prior for key in ("locs", "covariances", "variances")):
            return gaussian_prior.map_step(self, stats, standard, ref, fixed, prior)
        counts, locs = stats["counts"], standard["locs"]
        n = counts.unsqueeze(-1)
        out = {}
        if "locs" in fixed:  # the covariance around the given means
            delta = torch.zeros_like(stats["sums"])
        else:
            delta = stats["sums"] / n  # new mean minus current mean: (*B, k, d)
            locs = locs + delta
        shifted = locs + ref.offset  # the means in the data's units, over s
        if "locs" not in fixed:
            out["locs"] = shifted * ref.scale
        if self.cov_name in fixed:
            return out
        second, d = stats["second"], self.dim
        reg = self._constants(ref).reg  # reg_covar is in the data's units
        floor = self._resolution(locs, ref, shifted)
        if self.covariance == "spherical":
            var = (second / counts - delta.square().sum(-1)) / d
            out["scales"] = self._floored(var, reg[0], floor).sqrt() * ref.scale[0]
        elif self.covariance == "diag":
            var = second / n - delta.square()
            out["scales"] = self._floored(var, reg, floor.unsqueeze(-1)).sqrt() * ref.scale
        else:
            outer = delta.unsqueeze(-1) * delta.unsqueeze(-2)
            if self.covariance == "full":
                cov = second / n.unsqueeze(-1) - outer
            else:
                cov = (second - n.unsqueeze(-1) * outer).sum(-3) / counts.sum(-1)[..., None,
                                                                                      None]
                floor = floor.amax(-1)
            cov = 0.5 * (cov + cov.mT)
            diag = torch.diagonal(cov, 0, -2, -1)
            diag.copy_(self._floored(diag, reg, floor.unsqueeze(-1)))
            out["scale_tril"] = _cholesky(cov) * ref.scale.unsqueeze(-1)  # diag(s) L'
        return out

    @staticmethod
    def _resolution(locs: torch.Tensor, ref: Reference,
                    shifted: torch.Tensor | None = None) -> torch.Tensor:
        """``(*B, k)`` the smallest variance float64 resolves near each standardised mean:
        a floor that keeps exact zeros (repeated points, ``reg_covar = 0``) from NaN
        (``shifted``: ``locs + ref.offset`` when already at hand)."""
        scale = (locs + ref.offset if shifted is None else shifted).abs().amax(-1)
        return (16 * EPS * scale).square().clamp_min(RESOLUTION_FLOOR)

    @staticmethod
    def _floored(var: torch.Tensor, reg, floor: torch.Tensor) -> torch.Tensor:
        """``max(var, 0) + reg``, and never below ``floor``."""
        return torch.maximum(var.clamp_min(0) + reg, floor)

    def diagnose(self, data, params, fixed=frozenset()):
        """Components whose smallest variance sits at the floor (``reg_covar``, or float64's
        resolution when it is 0): collapsed onto a point or a line. Judged against each
        component's own floor, in standardised units, not against the data's spread."""
        if self.cov_name in fixed:
            return []
        ref = self.shift(data)
        standard = self._to_standard(params, ref)
        scale = standard[self.cov_name]
        if self.cov_name == "scales":
            smallest = scale.square().reshape(scale.shape[0], -1).amin(-1)
            reg = self.reg_covar / ref.scale.square().amax()
        else:
            smallest = torch.linalg.svdvals(scale).amin(-1).square().reshape(-1)
            reg = self.reg_covar / ref.scale.square().amin()
        resolution = self._resolution(standard["locs"], ref)
        if self.covariance == "tied":
            resolution = resolution.amax(-1, keepdim=True)
        floor = reg * (1 + 1e-3) + 100 * resolution
        what = (lambda j: "the shared covariance") if self.covariance == "tied" else (
            lambda j: f"component {j}")
        return [f"{what(j)} collapsed (variance {float(v * ref.scale.square().amin()):.2g} at "
                f"the floor: reg_covar={self.reg_covar:g}); the likelihood is unbounded there, "
                "so use fewer components or a larger reg_covar"
                for j, (v, f) in enumerate(zip(smallest, floor)) if v <= f]

    def distribution(self, params, z, inputs=None):
        """NaN entries of an observation are missing: the independent coordinates drop
        their terms; ``full`` and ``tied`` use the observed block's marginal."""
        loc = pick(params["locs"], z, 1)
        if self.covariance == "spherical":
            return MaskedNormal(loc, pick(params["scales"], z, 0).unsqueeze(-1)).to_event(1)
        if self.covariance == "diag":
            return MaskedNormal(loc, pick(params["scales"], z, 1)).to_event(1)
        if self.covariance == "full":
            return gm.MissingMultivariateNormal(loc, scale_tril=pick(params["scale_tril"], z, 2))
        return gm.MissingMultivariateNormal(loc, scale_tril=shared(params["scale_tril"], 2))

    def features(self, data):
        return filled(data)

    # -- imputation ----------------------------------------------------------------------
    def _conditionals(self, data, params):
        """Standardised prepared data and, per pattern with missing entries, the missing
        block's conditional means ``(k, b, n_p)`` and Cholesky factors ``(k, b, b)``."""
        ref = self.shift(data)
        prepared = gm.prepare(data, ref, grouped=True)
        standard = self._to_standard(params, ref)
        if self.cov_name == "scales":
            scales = standard["scales"]
            if self.covariance == "spherical":
                scales = scales.unsqueeze(-1).expand(-1, self.dim)
            tril = torch.diag_embed(scales)
        else:
            tril = standard["scale_tril"]
        return prepared, gm.conditionals(prepared, standard["locs"], tril,
                                         self.covariance == "tied")

    def impute_mean(self, data, params, resp):
        """``(n, d)``: each missing entry at its conditional expectation, mixture-weighted by
        ``resp: (n, k)``; observed entries as given."""
        if not has_missing(data):
            return data.clone()
        prepared, parts = self._conditionals(data, params)
        out = prepared.values.clone()  # (d, n), standardised
        for pattern, means, _ in parts:
            weights = resp.index_select(0, pattern.rows).T  # (k, n_p)
            expected = (means * weights.unsqueeze(-2)).sum(0)  # (b, n_p)
            out[pattern.missing.unsqueeze(-1), pattern.rows] = expected
        return self._from_standard(out, prepared, data)

    def impute_draw(self, data, params, labels, generator):
        """``(m, n, d)``: each row's missing block drawn from its conditional distribution
        under component ``labels: (m, n)``, ``m`` times."""
        if not has_missing(data):
            return data.expand(len(labels), *data.shape).clone()
        prepared, parts = self._conditionals(data, params)
        out = prepared.values.expand(len(labels), *prepared.values.shape).clone()  # (m, d, n)
        for pattern, means, chol in parts:
            z = labels.index_select(1, pattern.rows)  # (m, n_p)
            noise = torch.randn(*z.shape, len(pattern.missing), 1, generator=generator,
                                dtype=data.dtype)
            rows = torch.arange(len(pattern.rows), device=data.device)
            draw = means[z, :, rows] + (chol[z] @ noise).squeeze(-1)  # (m, n_p, b)
            out[:, pattern.missing.unsqueeze(-1), pattern.rows] = draw.mT
        return self._from_standard(out, prepared, data)

    @staticmethod
    def _from_standard(values, prepared, data):
        """Standardised ``values: (..., d, n)`` in the data's units, observed entries exact."""
        ref = prepared.shift
        out = ((values.mT + ref.offset) * ref.scale)
        return torch.where(torch.isnan(data), out, data)

    def random_params(self, k, data, generator):
        data = filled(data)
        d = self.dim
        ref = self.shift(data)  # a spread that does not overflow for data near 1e300
        spread = ((data / ref.scale).std(0) * ref.scale if data.shape[0] > 1
                  else data.new_ones(d)).clamp_min(1e-3)
        rows = torch.randint(data.shape[0], (k,), generator=generator)
        locs = data[rows] + 0.1 * spread * torch.randn(k, d, generator=generator, dtype=data.dtype)
        size = spread.mean() * (0.5 + torch.rand(k, generator=generator, dtype=data.dtype))
        if self.covariance == "spherical":
            return {"locs": locs, "scales": size}
        if self.covariance == "diag":
            return {"locs": locs, "scales": size[:, None] * (spread / spread.mean())}
        a = torch.randn(k, d, d, generator=generator, dtype=data.dtype) / math.sqrt(d)
        cov = a @ a.mT + torch.eye(d, dtype=data.dtype)
        tril = torch.linalg.cholesky(cov) * size[:, None, None]
        return {"locs": locs, "scale_tril": tril if self.covariance == "full" else tril[0]}


def _cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Cholesky factors of ``cov: (..., d, d)``; where round-off broke positive
    definiteness, growing jitter is added to *that* matrix only (a restart's result
    never depends on the others)."""
    chol, info = torch.linalg.cholesky_ex(cov)
    if not bool(info.any()):
        return chol
    flat_cov, flat = cov.reshape(-1, *cov.shape[-2:]), chol.reshape(-1, *cov.shape[-2:]).clone()
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    for i in torch.nonzero(info.reshape(-1)).flatten().tolist():
        matrix = flat_cov[i]
        jitter = 1e-10 * float(torch.diagonal(matrix).abs().mean().clamp_min(1e-300))
        factor, failed = flat[i], True
        while failed and jitter < 1e300:
            factor, status = torch.linalg.cholesky_ex(matrix + jitter * eye)
            failed, jitter = bool(status), jitter * 10
        flat[i] = factor
    return flat.reshape(cov.shape)
