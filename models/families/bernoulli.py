"""Bernoulli components: vectors of binary features (pixels of binary images, answers yes/no).

Parameters: ``probs: (k, dim)``, each component's chance of a 1 in each feature.
``log p(x | p) = x . logit(p) + sum log(1 - p)``. A missing feature (NaN) drops its
term; the M-step counts it as ``p`` ones (its expectation; see :mod:`.missing`).
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
    MaskedBernoulli,
    MaskedPrepared,
    expected_sums,
    filled,
    has_missing,
    masked_log_densities,
    observed_means,
    placeholder,
)

LOGIT_LIMIT = 700.0  # keeps 0 * logit(0) from becoming NaN; exp(-700) is 0 for all purposes


class Bernoulli(Family):
    """``dim`` independent binary features per observation."""

    name = "bernoulli"
    supports_missing = True

    def __init__(self, dim: int = 2):
        self.dim = check_int(dim, "dim", low=1, high=1_000_000)
        self.event_shape = (self.dim,)

    def describe(self) -> str:
        return f"bernoulli(dim={self.dim})"

    def specs(self, k):
        return {"probs": ParamSpec((k, self.dim), constraints.unit_interval,
                                   doc="chance of a 1 per feature")}

    def check_data(self, data, name="data"):
        x = check_data(data, name, self.event_shape, missing=True)
        return refuse(x, (x != 0) & (x != 1) & ~torch.isnan(x), name, "binary values 0 or 1")

    def statistics(self, data, shift):
        return data.T.contiguous()

    def natural(self, params, shift):
        logits = torch.logit(params["probs"]).clamp(-LOGIT_LIMIT, LOGIT_LIMIT)
        return logits, torch.nn.functional.softplus(logits).sum(-1)

    # -- missing features: the mask joins the statistics -----------------------------------
    def prepare(self, data, shift):
        if not has_missing(data):
            return super().prepare(data, shift)
        x, seen = placeholder(data)
        return MaskedPrepared(x.T.contiguous(), seen.T.contiguous(), None, shift)

    def log_densities(self, prepared, params):
        if not isinstance(prepared, MaskedPrepared):
            return super().log_densities(prepared, params)
        logits = torch.logit(params["probs"]).clamp(-LOGIT_LIMIT, LOGIT_LIMIT)
        return masked_log_densities(prepared, logits, torch.nn.functional.softplus(logits))

    def accumulate(self, prepared, resp, params):
        if not isinstance(prepared, MaskedPrepared):
            return super().accumulate(prepared, resp, params)
        probs = params["probs"] if "probs" in params else observed_means(prepared, resp)
        return {"sums": expected_sums(prepared, resp, probs)}

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
        return MaskedBernoulli(probs=pick(params["probs"], z, 1)).to_event(1)

    def features(self, data):
        return filled(data)

    def impute_mean(self, data, params, resp):
        return torch.where(torch.isnan(data), resp @ params["probs"], data)

    def impute_draw(self, data, params, labels, generator):
        draw = torch.bernoulli(params["probs"][labels], generator=generator)  # (m, n, d)
        return torch.where(torch.isnan(data), draw, data)

    def random_params(self, k, data, generator):
        return {"probs": 0.2 + 0.6 * torch.rand(k, self.dim, generator=generator,
                                                dtype=data.dtype)}
