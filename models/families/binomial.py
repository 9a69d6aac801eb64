"""Binomial components: heads out of a fixed number of tosses (the seeds' two coins).

Parameters: ``probs: (k,)``, each component's chance of heads.
``log p(x | p) = x logit(p) + tosses log(1 - p) + log C(tosses, x)``.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..params import ParamSpec
from ..priors import PriorSite
from ..validation import check_data, check_int, refuse
from .base import Family, pick

LOGIT_LIMIT = 700.0  # exp(-700) ~ 1e-304: keeps 0 * logit(0) from becoming NaN


class Binomial(Family):
    """Counts of successes out of ``tosses`` trials per observation.

    Args:
        tosses: number of trials behind each observation.
    """

    name = "binomial"
    event_shape = ()
    discrete = True
    value_label = "heads in a trial"

    def __init__(self, tosses: int = 10):
        self.tosses = check_int(tosses, "tosses", low=1, high=10**12)

    def describe(self) -> str:
        return f"binomial(tosses={self.tosses})"

    def grid(self, data):
        """Every possible observation: plots draw the probability mass function."""
        return torch.arange(self.tosses + 1, dtype=data.dtype)

    def specs(self, k):
        return {"probs": ParamSpec((k,), constraints.unit_interval, doc="chance of heads")}

    def check_data(self, data, name="data"):
        x = check_data(data, name, ())
        bad = (x < 0) | (x > self.tosses) | (x != x.round())
        return refuse(x, bad, name, f"whole numbers of heads in [0, tosses={self.tosses}]")

    def statistics(self, data, shift):
        return data.unsqueeze(0)

    def log_base(self, data):
        n = torch.as_tensor(float(self.tosses), dtype=data.dtype)
        return torch.lgamma(n + 1) - torch.lgamma(data + 1) - torch.lgamma(n - data + 1)

    def natural(self, params, shift):
        logits = torch.logit(params["probs"]).clamp(-LOGIT_LIMIT, LOGIT_LIMIT)
        return logits.unsqueeze(-1), self.tosses * torch.nn.functional.softplus(logits)

    def maximize(self, stats, params, fixed=frozenset()):
        heads, trials = stats["sums"][..., 0], stats["counts"] * self.tosses
        prior = stats.get("prior") or {}
        if "probs" in prior:  # MAP under Beta(a, b)
            a, b = prior["probs"]["a"], prior["probs"]["b"]
            heads, trials = heads + a - 1, trials + a + b - 2
        return {"probs": (heads / trials).clamp(0, 1)}

    def prior_keys(self):
        return {"probs": "Beta(a, b) on each coin's chance of heads"}

    def prior_sites(self, prior, k):
        if "probs" not in prior:
            return []
        a, b = prior["probs"]["a"], prior["probs"]["b"]
        return [PriorSite("probs", lambda p: dist.Beta(a, b).expand((k,)).to_event(1),
                          lambda p: p["probs"], lambda v: {"probs": v})]

    def distribution(self, params, z, inputs=None):
        return dist.Binomial(self.tosses, probs=pick(params["probs"], z, 0))

    def features(self, data):
        return (data / self.tosses).unsqueeze(-1)

    def random_params(self, k, data, generator):
        return {"probs": 0.05 + 0.9 * torch.rand(k, generator=generator, dtype=data.dtype)}
