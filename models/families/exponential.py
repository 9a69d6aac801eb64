"""Exponential components: waiting times, lifetimes, sizes of things.

Parameters: ``rates: (k,)``. ``log p(x | r) = log r - r x``.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..params import ParamSpec
from ..priors import PriorSite
from ..validation import InputError, check_data, refuse
from .base import Family, pick

MAX_VALUE = 1e150


class Exponential(Family):
    """A non-negative real number per observation."""

    name = "exponential"
    event_shape = ()

    def specs(self, k):
        return {"rates": ParamSpec((k,), constraints.positive, doc="events per unit")}

    def check_data(self, data, name="data"):
        x = check_data(data, name, ())
        x = refuse(x, x < 0, name, "non-negative values")
        x = refuse(x, x > MAX_VALUE, name, f"values up to {MAX_VALUE:g} (sums of larger ones "
                   "overflow float64: rescale them)")
        if not bool((x > 0).any()):
            raise InputError(f"{name}: every value is 0: an exponential likelihood grows "
                             "without bound there (no rate fits); expected some positive values")
        return x

    def statistics(self, data, shift):
        return data.unsqueeze(0)

    def natural(self, params, shift):
        rates = params["rates"]
        return -rates.unsqueeze(-1), -rates.log()

    def maximize(self, stats, params, fixed=frozenset()):
        counts, total = stats["counts"], stats["sums"][..., 0]
        prior = stats.get("prior") or {}
        if "rates" in prior:  # MAP under Gamma(shape, rate): (n + shape - 1) / (sum + rate)
            counts = counts + prior["rates"]["shape"] - 1
            total = total + prior["rates"]["rate"]
        return {"rates": counts / total.clamp_min(1e-300)}

    def prior_keys(self):
        return {"rates": "Gamma(shape, rate) on each rate"}

    def prior_sites(self, prior, k):
        if "rates" not in prior:
            return []
        shape, rate = prior["rates"]["shape"], prior["rates"]["rate"]
        return [PriorSite("rates", lambda p: dist.Gamma(shape, rate).expand((k,)).to_event(1),
                          lambda p: p["rates"], lambda v: {"rates": v})]

    def distribution(self, params, z, inputs=None):
        return dist.Exponential(pick(params["rates"], z, 0))

    def grid(self, data):
        return torch.linspace(0.0, 1.05 * float(data.max()), 400, dtype=data.dtype)

    def random_params(self, k, data, generator):
        return {"rates": (0.3 + 1.4 * torch.rand(k, generator=generator, dtype=data.dtype))
                / data.mean().clamp_min(1e-6)}
