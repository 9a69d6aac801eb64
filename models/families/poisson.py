"""Poisson components: counts (events per hour, reads per gene).

Parameters: ``rates: (k,)``. ``log p(x | r) = x log r - r - log x!``.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..params import ParamSpec
from ..priors import PriorSite
from ..validation import check_data, refuse
from .base import Family, pick

LOG_FLOOR = -745.0
MAX_COUNT = float(2**40)


class Poisson(Family):
    """A non-negative count per observation."""

    name = "poisson"
    event_shape = ()
    discrete = True
    value_label = "count"

    def specs(self, k):
        return {"rates": ParamSpec((k,), constraints.positive, doc="mean count")}

    def check_data(self, data, name="data"):
        x = check_data(data, name, ())
        x = refuse(x, (x < 0) | (x != x.round()), name, "non-negative whole counts")
        # above ~1e12 the log-probability x log r - r - log x! loses its digits to round-off
        return refuse(x, x > MAX_COUNT, name, f"counts up to {MAX_COUNT:.3g} (2^40; larger "
                      "counts have no accurate log-probability in float64: rescale them)")

    def statistics(self, data, shift):
        return data.unsqueeze(0)

    def log_base(self, data):
        return -torch.lgamma(data + 1)

    def natural(self, params, shift):
        rates = params["rates"]
        return rates.log().clamp_min(LOG_FLOOR).unsqueeze(-1), rates

    def maximize(self, stats, params, fixed=frozenset()):
        total, counts = stats["sums"][..., 0], stats["counts"]
        prior = stats.get("prior") or {}
        if "rates" in prior:  # MAP under Gamma(shape, rate): (sum + shape - 1) / (n + rate)
            total = total + prior["rates"]["shape"] - 1
            counts = counts + prior["rates"]["rate"]
        return {"rates": (total / counts).clamp_min(1e-300)}  # zero only at the boundary

    def prior_keys(self):
        return {"rates": "Gamma(shape, rate) on each rate"}

    def prior_sites(self, prior, k):
        if "rates" not in prior:
            return []
        shape, rate = prior["rates"]["shape"], prior["rates"]["rate"]
        return [PriorSite("rates", lambda p: dist.Gamma(shape, rate).expand((k,)).to_event(1),
                          lambda p: p["rates"], lambda v: {"rates": v})]

    def distribution(self, params, z, inputs=None):
        return dist.Poisson(pick(params["rates"], z, 0))

    def grid(self, data):
        return torch.arange(int(data.max()) + 2, dtype=data.dtype)

    def random_params(self, k, data, generator):
        return {"rates": data.mean().clamp_min(0.5) * (0.3 + 1.4 * torch.rand(
            k, generator=generator, dtype=data.dtype))}
