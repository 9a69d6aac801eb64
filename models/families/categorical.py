"""Categorical components: ``dim`` labels per observation, each one of ``categories``
(answers to a survey, letters of a short code): latent class analysis.

Parameters: ``probs: (k, dim, categories)``, a distribution over labels per feature.
``log p(x | p) = sum_f onehot(x_f) . log p_f``. With one feature a mixture of
categoricals is not identifiable (every mixture with the same marginal fits
equally well); with three or more it is.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..params import ParamSpec
from ..priors import PriorSite
from ..validation import check_data, check_int, refuse
from .base import Family, pick

LOG_FLOOR = -745.0  # log of the smallest double: keeps 0 * log(0) from becoming NaN
EPS = torch.finfo(torch.float64).eps


class Categorical(Family):
    """``dim`` labels in ``0 .. categories - 1`` per observation."""

    name = "categorical"
    discrete = True
    value_label = "category"

    def __init__(self, categories: int = 3, dim: int = 1):
        self.categories = check_int(categories, "categories", low=2, high=1_000_000)
        self.dim = check_int(dim, "dim", low=1, high=1_000_000)
        self.event_shape = (self.dim,)

    def describe(self) -> str:
        return f"categorical(categories={self.categories}, dim={self.dim})"

    def specs(self, k):
        return {"probs": ParamSpec((k, self.dim, self.categories), constraints.simplex,
                                   doc="label probabilities per feature")}

    def check_data(self, data, name="data"):
        x = check_data(data, name, self.event_shape)
        bad = (x < 0) | (x >= self.categories) | (x != x.round())
        return refuse(x, bad, name, f"labels in 0..{self.categories - 1}")

    def statistics(self, data, shift):
        onehot = torch.zeros(len(data), self.dim, self.categories, dtype=data.dtype)
        onehot.scatter_(-1, data.long().unsqueeze(-1), 1.0)
        return onehot.reshape(len(data), -1).T.contiguous()

    def natural(self, params, shift):
        log_p = params["probs"].log().clamp_min(LOG_FLOOR).flatten(-2)
        return log_p, log_p.new_zeros(log_p.shape[:-1])

    def maximize(self, stats, params, fixed=frozenset()):
        # a pseudo-count of 10 eps spread over the labels (as the mixing weights get): a
        # component no point belongs to becomes uniform instead of all zeros (off the simplex)
        sums = stats["sums"].unflatten(-1, (self.dim, self.categories))
        sums = sums + 10 * EPS / self.categories
        prior = stats.get("prior") or {}
        if "probs" in prior:  # MAP under Dirichlet(c): counts + c - 1
            sums = sums + prior["probs"]["concentration"] - 1
        return {"probs": sums / sums.sum(-1, keepdim=True)}

    def prior_keys(self):
        return {"probs": "Dirichlet(concentration) on each feature's label probabilities"}

    def prior_sites(self, prior, k):
        if "probs" not in prior:
            return []
        concentration = prior["probs"]["concentration"].expand(self.categories)
        return [PriorSite("probs", lambda p: dist.Dirichlet(concentration).expand(
            (k, self.dim)).to_event(2), lambda p: p["probs"], lambda v: {"probs": v})]

    def distribution(self, params, z, inputs=None):
        return dist.Categorical(probs=pick(params["probs"], z, 2)).to_event(1)

    def features(self, data):
        return self.statistics(data, None).T

    def grid(self, data):
        return torch.arange(self.categories, dtype=data.dtype)

    def random_params(self, k, data, generator):
        w = 0.5 + torch.rand(k, self.dim, self.categories, generator=generator, dtype=data.dtype)
        return {"probs": w / w.sum(-1, keepdim=True)}
