"""Categorical components: ``dim`` labels per observation, each one of ``categories``
(answers to a survey, letters of a short code): latent class analysis.

Parameters: ``probs: (k, dim, categories)``, a distribution over labels per feature.
``log p(x | p) = sum_f onehot(x_f) . log p_f``. With one feature a mixture of
categoricals is not identifiable (every mixture with the same marginal fits
equally well); with three or more it is. An unanswered item (NaN) has an all-zero
one-hot, so it drops out of the log density; the M-step counts it as ``p_f`` (its
expected one-hot; see :mod:`.missing`).
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
    MaskedCategorical,
    MaskedPrepared,
    expected_sums,
    has_missing,
    masked_log_densities,
    observed_means,
    placeholder,
)

LOG_FLOOR = -745.0  # log of the smallest double: keeps 0 * log(0) from becoming NaN
EPS = torch.finfo(torch.float64).eps


class Categorical(Family):
    """``dim`` labels in ``0 .. categories - 1`` per observation."""

    name = "categorical"
    discrete = True
    value_label = "category"
    supports_missing = True

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
        x = check_data(data, name, self.event_shape, missing=True)
        bad = ((x < 0) | (x >= self.categories) | (x != x.round())) & ~torch.isnan(x)
        return refuse(x, bad, name, f"labels in 0..{self.categories - 1}")

    def statistics(self, data, shift):
        """``(dim * categories, n)`` one-hot labels (all zero for a missing label)."""
        labels, seen = placeholder(data)
        onehot = torch.zeros(len(data), self.dim, self.categories, dtype=data.dtype,
                             device=data.device)
        onehot.scatter_(-1, labels.long().unsqueeze(-1), seen.unsqueeze(-1))
        return onehot.reshape(len(data), -1).T.contiguous()

    # -- unanswered items: the mask joins the statistics ------------------------------------
    def prepare(self, data, shift):
        if not has_missing(data):
            return super().prepare(data, shift)
        seen = (~torch.isnan(data)).to(data.dtype)
        return MaskedPrepared(self.statistics(data, shift), seen.T.contiguous(), None, shift)

    def log_densities(self, prepared, params):
        if not isinstance(prepared, MaskedPrepared):
            return super().log_densities(prepared, params)
        log_p = params["probs"].log().clamp_min(LOG_FLOOR).flatten(-2)
        return masked_log_densities(prepared, log_p, None)

    def accumulate(self, prepared, resp, params):
        if not isinstance(prepared, MaskedPrepared):
            return super().accumulate(prepared, resp, params)
        c = self.categories
        probs = (params["probs"].flatten(-2) if "probs" in params
                 else observed_means(prepared, resp, c, fallback=1.0 / c))
        return {"sums": expected_sums(prepared, resp, probs, repeat=c)}

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
        return MaskedCategorical(probs=pick(params["probs"], z, 2)).to_event(1)

    def features(self, data):
        """One-hot labels; a missing label gets its feature's observed label frequencies."""
        onehot = self.statistics(data, None).T.reshape(len(data), self.dim, self.categories)
        if has_missing(data):
            seen = ~torch.isnan(data)
            frequencies = onehot.sum(0) / seen.sum(0).clamp_min(1).unsqueeze(-1)
            onehot = torch.where(seen.unsqueeze(-1), onehot, frequencies)
        return onehot.reshape(len(data), -1)

    def impute_mean(self, data, params, resp):
        """A label has no expectation: each missing label at its most probable value given
        the row's answers (the mode of ``sum_j r_nj p_jf``)."""
        probs = torch.einsum("nk,kfc->nfc", resp, params["probs"])
        return torch.where(torch.isnan(data), probs.argmax(-1).to(data.dtype), data)

    def impute_draw(self, data, params, labels, generator):
        probs = params["probs"][labels].reshape(-1, self.categories)  # (m * n * dim, c)
        draw = torch.multinomial(probs, 1, generator=generator).reshape(*labels.shape, self.dim)
        return torch.where(torch.isnan(data), draw.to(data.dtype), data)

    def grid(self, data):
        return torch.arange(self.categories, dtype=data.dtype)

    def random_params(self, k, data, generator):
        w = 0.5 + torch.rand(k, self.dim, self.categories, generator=generator, dtype=data.dtype)
        return {"probs": w / w.sum(-1, keepdim=True)}
