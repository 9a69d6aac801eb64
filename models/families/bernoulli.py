"""Bernoulli components: vectors of binary features (pixels of binary images, answers yes/no).

Parameters: ``probs: (k, dim)``, each component's chance of a 1 in each feature.
``log p(x | p) = x . logit(p) + sum log(1 - p)``.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..params import ParamSpec
from ..priors import PriorSite
from ..validation import check_data, check_int, refuse
from .base import Family, pick

LOGIT_LIMIT = 700.0  # keeps 0 * logit(0) from becoming NaN; exp(-700) is 0 for all purposes


class Bernoulli(Family):
    """``dim`` independent binary features per observation."""

    name = "bernoulli"

    def __init__(self, dim: int = 2):
        self.dim = check_int(dim, "dim", low=1, high=1_000_000)
        self.event_shape = (self.dim,)

    def describe(self) -> str:
        return f"bernoulli(dim={self.dim})"

    def specs(self, k):
        return {"probs": ParamSpec((k, self.dim), constraints.unit_interval,
                                   doc="chance of a 1 per feature")}

    def check_data(self, data, name="data"):
        x = check_data(data, name, self.event_shape)
        return refuse(x, (x != 0) & (x != 1), name, "binary values 0 or 1")

    def statistics(self, data, shift):
        return data.T.contiguous()

    def natural(self, params, shift):
        logits = torch.logit(params["probs"]).clamp(-LOGIT_LIMIT, LOGIT_LIMIT)
        return logits, torch.nn.functional.softplus(logits).sum(-1)

    def maximize(self, stats, params, fixed=frozenset()):
        sums, counts = stats["sums"], stats["counts"].unsqueeze(-1)
        prior = stats.get("prior") or {}
        if "probs" in prior:  # MAP under Beta(a, b): (heads + a - 1) / (n + a + b - 2)
            a, b = prior["probs"]["a"], prior["probs"]["b"]
            sums, counts = sums + a - 1, counts + a + b - 2
        return {"probs": (sums / counts).clamp(0, 1)}

    def prior_keys(self):
        return {"probs": "Beta(a, b) on each probability"}

    def prior_sites(self, prior, k):
        if "probs" not in prior:
            return []
        a, b = prior["probs"]["a"], prior["probs"]["b"]
        return [PriorSite("probs", lambda p: dist.Beta(a, b).expand((k, self.dim)).to_event(2),
                          lambda p: p["probs"], lambda v: {"probs": v})]

    def distribution(self, params, z, inputs=None):
        return dist.Bernoulli(probs=pick(params["probs"], z, 1)).to_event(1)

    def random_params(self, k, data, generator):
        return {"probs": 0.2 + 0.6 * torch.rand(k, self.dim, generator=generator,
                                                dtype=data.dtype)}
