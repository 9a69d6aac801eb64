"""Exponential components: waiting times, lifetimes, sizes of things.

Parameters: ``rates: (k,)``. ``log p(x | r) = log r - r x``.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..params import ParamSpec
from ..validation import check_data, refuse
from .base import Family, pick


class Exponential(Family):
    """A non-negative real number per observation."""

    name = "exponential"
    event_shape = ()

    def specs(self, k):
        return {"rates": ParamSpec((k,), constraints.positive, doc="events per unit")}

    def check_data(self, data, name="data"):
        x = check_data(data, name, ())
        return refuse(x, x < 0, name, "non-negative values")

    def statistics(self, data, shift):
        return data.unsqueeze(0)

    def natural(self, params, shift):
        rates = params["rates"]
        return -rates.unsqueeze(-1), -rates.log()

    def maximize(self, counts, sums, shift, params):
        return {"rates": counts / sums[..., 0].clamp_min(1e-300)}

    def distribution(self, params, z, inputs=None):
        return dist.Exponential(pick(params["rates"], z, 0))

    def grid(self, data):
        return torch.linspace(0.0, 1.05 * float(data.max()), 400, dtype=data.dtype)

    def random_params(self, k, data, generator):
        return {"rates": (0.3 + 1.4 * torch.rand(k, generator=generator, dtype=data.dtype))
                / data.mean().clamp_min(1e-6)}
