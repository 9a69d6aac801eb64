"""Poisson components: counts (events per hour, reads per gene).

Parameters: ``rates: (k,)`` for one count per observation; with ``dim > 1``,
``rates: (k, dim)``: ``dim`` counts per observation, independent given the component
(reads of ``dim`` genes). ``log p(x | r) = sum_i x_i log r_i - r_i - log x_i!``. A
missing count (NaN) drops its term; the M-step counts it as ``r_i`` (its expectation; see
:mod:`.missing`). A scalar count that is missing is a whole observation missing: a mixture
refuses it, an HMM's step keeps it (it emits with probability one).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..params import ParamSpec
from ..priors import PriorSite
from ..validation import check_data, check_int, refuse
from .base import Family, pick
from .missing import (
    MaskedPoisson,
    MaskedPrepared,
    column_means,
    expected_sums,
    filled,
    has_missing,
    masked_log_densities,
    observed_means,
    placeholder,
)

LOG_FLOOR = -745.0
MAX_COUNT = float(2**40)


class Poisson(Family):
    """Non-negative counts: one per observation, or ``dim`` independent ones.

    Args:
        dim: counts per observation; 1 (the default) is a scalar observation.
    """

    name = "poisson"
    event_shape = ()
    discrete = True
    value_label = "count"
    supports_missing = True

    def __init__(self, dim: int = 1):
        self.dim = check_int(dim, "dim", low=1, high=1_000_000)
        self.event_shape = () if self.dim == 1 else (self.dim,)

    def describe(self) -> str:
        return self.name if self.dim == 1 else f"poisson(dim={self.dim})"

    def specs(self, k):
        return {"rates": ParamSpec((k, *self.event_shape), constraints.positive,
                                   doc="mean count")}

    def check_data(self, data, name="data"):
        x = check_data(data, name, self.event_shape, missing=True)
        seen = ~torch.isnan(x)
        x = refuse(x, ((x < 0) | (x != x.round())) & seen, name, "non-negative whole counts")
        # above ~1e12 the log-probability x log r - r - log x! loses its digits to round-off
        return refuse(x, (x > MAX_COUNT) & seen, name, f"counts up to {MAX_COUNT:.3g} (2^40; "
                      "larger counts have no accurate log-probability in float64: rescale them)")

    def statistics(self, data, shift):
        return data.unsqueeze(0) if self.dim == 1 else data.T.contiguous()

    def log_base(self, data):
        base = -torch.lgamma(data + 1)
        return base if self.dim == 1 else base.sum(-1)

    def natural(self, params, shift):
        rates = params["rates"]
        if self.dim == 1:
            return rates.log().clamp_min(LOG_FLOOR).unsqueeze(-1), rates
        return rates.log().clamp_min(LOG_FLOOR), rates.sum(-1)

    # -- missing counts: the mask joins the statistics ---------------------------------------
    def prepare(self, data, shift):
        if not has_missing(data):
            return super().prepare(data, shift)
        x, seen = placeholder(data)
        return MaskedPrepared(self.statistics(x, shift), seen.reshape(len(x), -1).T.contiguous(),
                              self.log_base(x), shift)

    def _vector(self, rates):
        """``rates`` as ``(*B, k, dim)``, scalar counts included."""
        return rates.unsqueeze(-1) if self.dim == 1 else rates

    def log_densities(self, prepared, params):
        if not isinstance(prepared, MaskedPrepared):
            return super().log_densities(prepared, params)
        rates = self._vector(params["rates"])
        return masked_log_densities(prepared, rates.log().clamp_min(LOG_FLOOR), rates)

    def accumulate(self, prepared, resp, params):
        if not isinstance(prepared, MaskedPrepared):
            return super().accumulate(prepared, resp, params)
        rates = (self._vector(params["rates"]) if "rates" in params
                 else observed_means(prepared, resp))
        return {"sums": expected_sums(prepared, resp, rates)}

    def maximize(self, stats, params, fixed=frozenset()):
        sums = stats["sums"][..., 0] if self.dim == 1 else stats["sums"]
        counts = stats["counts"] if self.dim == 1 else stats["counts"].unsqueeze(-1)
        prior = stats.get("prior") or {}
        if "rates" in prior:  # MAP under Gamma(shape, rate): (sum + shape - 1) / (n + rate)
            sums = sums + prior["rates"]["shape"] - 1
            counts = counts + prior["rates"]["rate"]
        return {"rates": (sums / counts).clamp_min(1e-300)}  # zero only at the boundary

    def prior_keys(self):
        return {"rates": "Gamma(shape, rate) on each rate"}

    def prior_sites(self, prior, k):
        if "rates" not in prior:
            return []
        shape, rate = prior["rates"]["shape"], prior["rates"]["rate"]
        event = (k,) if self.dim == 1 else (k, self.dim)
        return [PriorSite("rates", lambda p: dist.Gamma(shape, rate).expand(event).to_event(
            len(event)), lambda p: p["rates"], lambda v: {"rates": v})]

    def distribution(self, params, z, inputs=None):
        if self.dim == 1:  # a missing count: a missing step of an HMM
            return MaskedPoisson(pick(params["rates"], z, 0))
        return MaskedPoisson(pick(params["rates"], z, 1)).to_event(1)

    def features(self, data):
        return filled(data).reshape(data.shape[0], -1)

    def impute_mean(self, data, params, resp):
        return torch.where(torch.isnan(data), resp @ params["rates"], data)

    def impute_draw(self, data, params, labels, generator):
        draw = torch.poisson(params["rates"][labels], generator=generator)  # (m, n, *event)
        return torch.where(torch.isnan(data), draw, data)

    def grid(self, data):
        return torch.arange(int(data.max()) + 2, dtype=data.dtype)

    def random_params(self, k, data, generator):
        mean = (column_means(data) if self.dim > 1 or has_missing(data)
                else data.mean()).clamp_min(0.5)
        return {"rates": mean * (0.3 + 1.4 * torch.rand(
            k, *self.event_shape, generator=generator, dtype=data.dtype))}
