"""A grouped (hierarchical) mixture: groups share the components but each has its own mix.

    concentration: (k,), learned (empirical Bayes), every entry >= 1
    weights_g ~ Dirichlet(concentration)           for each group g      (a sample site)
    z_n ~ Categorical(weights_{group(n)})          (enumerated)
    x_n | z_n = j ~ family(theta_j)

A data row is ``(group, x...)``: the group index (0 .. groups-1) in the first column.
Both paths maximise the same joint density ``log p(x | weights, theta) + sum_g log
Dirichlet(weights_g | concentration)``. EM by conditional maximisation: the E-step
with each row's own group weights; the family's closed-form M-step on the pooled
statistics; each group's weights in closed form (MAP given the concentration: counts
+ concentration - 1); then the concentration numerically given the weights (the
Dirichlet log-likelihood is concave in it). VI: the weights are ``pyro.sample`` sites
in a plate over groups with an ``AutoDelta`` guide and the concentration a
``pyro.param`` (constrained to >= 1: below 1 the joint mode runs to a boundary).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from .base import ASSIGNMENT, OBSERVATION, EStep, posterior
from .families.base import Family, Prepared
from .families.gaussian import Gaussian
from .mixture import EPS, Mixture
from .params import Params, ParamSpec
from .priors import PriorSite
from .registry import register
from .validation import check_data, check_int, refuse

#: the concentration is kept at or above this (the weights' mode exists)
LOWEST = 1.0
HIGHEST = 1e5  # groups this alike are pooled; beyond it lgamma's round-off swamps the steps


class GroupedRows(NamedTuple):
    """A chunk of grouped data: the family's prepared values and each row's group."""

    values: Prepared
    groups: torch.Tensor


class GroupedMixture(Mixture):
    """``k`` shared components of ``family``; ``groups`` groups with their own weights.

    Args:
        family: the component family.
        k: number of components.
        groups: number of groups (at least 2: one group has no spread to learn from).
        fixed: parameters held fixed, e.g. ``{"concentration": [2.0, 2.0, 2.0]}``.
    """

    name = "grouped_mixture"

    def __init__(self, family: Family, k: int, groups: int = 2, fixed: dict | None = None):
        self.groups = check_int(groups, "groups", low=2, high=1_000_000)
        super().__init__(family, k, fixed=fixed)
        self.prior = {"weights": "Dirichlet(concentration) per group"}
        self._sites = [PriorSite(
            "weights", lambda p: dist.Dirichlet(p["concentration"]).expand(
                (self.groups,)).to_event(1), lambda p: p["weights"], lambda v: {"weights": v})]

    def weight_specs(self, k: int) -> dict:
        return {"weights": ParamSpec((self.groups, k), constraints.simplex,
                                     doc="each group's mixing weights", component_axis=-1),
                "concentration": ParamSpec((k,), constraints.interval(LOWEST, HIGHEST),
                                           doc="Dirichlet concentration shared by the groups")}

    def describe(self) -> str:
        return f"{self.name}(k={self.k}, groups={self.groups}, {self.family.describe()})"

    def log_prior(self, params):
        """``(*batch,)`` sum over groups of ``log Dirichlet(weights_g | concentration)``."""
        concentration = params["concentration"].unsqueeze(-2)
        return dist.Dirichlet(concentration).log_prob(params["weights"]).sum(-1)

    # -- data -------------------------------------------------------------------------
    def check_data(self, data, name="data"):
        rows = check_data(data, name, (1 + self._width(),))
        labels = rows[:, 0]
        bad = (labels != labels.round()) | (labels < 0) | (labels >= self.groups)
        refuse(labels, bad, f"{name}[:, 0]", f"group indices in 0..{self.groups - 1}")
        self.family.check_data(self._values(rows), name)
        return rows

    def _width(self) -> int:
        shape = self.family.event_shape
        return shape[0] if shape else 1

    def _values(self, rows: torch.Tensor) -> torch.Tensor:
        return rows[:, 1:] if self.family.event_shape else rows[:, 1]

    def features(self, data):
        return self.family.features(self._values(data))

    def random_params(self, data, generator):
        values = super().random_params(self._values(data), generator)
        if "weights" not in self.fixed:
            w = 1 + torch.rand(self.groups, self.k, generator=generator, dtype=data.dtype)
            values["weights"] = w / w.sum(-1, keepdim=True)
        if "concentration" not in self.fixed:
            values["concentration"] = 2 + torch.rand(self.k, generator=generator,
                                                     dtype=data.dtype)
        return values

    # -- the generative program -----------------------------------------------------
    def program(self, params, data=None, n=None):
        """Pyro program. ``data: (n, 1 + event)`` rows or ``n``; params may carry a restart
        batch ``(R, ...)`` (weights ``(R, G, k)``), run in a restart plate."""
        n = data.shape[0] if data is not None else n
        groups = (data[:, 0].long() if data is not None
                  else torch.arange(n) * self.groups // n)  # simulation: balanced groups
        weights = params["weights"]
        with ExitStack() as plates:
            if weights.dim() > 2:
                plates.enter_context(pyro.plate("restarts", weights.shape[0], dim=-2))
            plates.enter_context(pyro.plate("data", n, dim=-1))
            z = pyro.sample(ASSIGNMENT, dist.Categorical(weights[..., groups, :]),
                            infer={"enumerate": "parallel"})
            pyro.sample(OBSERVATION, self.family.distribution(params, z, None),
                        obs=None if data is None else self._values(data))
        return groups

    def from_trace(self, trace):
        groups = trace.nodes["_RETURN"]["value"].to(torch.float64)
        values = trace.nodes[OBSERVATION]["value"]
        values = values if values.dim() > 1 else values.unsqueeze(-1)
        return torch.cat([groups.unsqueeze(-1), values], -1)

    # -- EM pieces --------------------------------------------------------------------
    def shift(self, data):
        return self.family.shift(self._values(data))

    def prepare(self, data, shift) -> GroupedRows:
        return GroupedRows(self.family.prepare(self._values(data), shift), data[:, 0].long())

    def _joint(self, prepared: GroupedRows, params):
        joint = self.family.log_densities(prepared.values, params)  # (*B, k, n)
        return joint + params["weights"].log()[..., prepared.groups, :].mT

    def expect(self, prepared, params, hard=False, marginal=True) -> EStep:
        resp, log_lik, objective, top = posterior(self._joint(prepared, params), hard, marginal)
        return EStep(self._stats(prepared, resp, params), log_lik, objective, resp.mT, top)

    def _stats(self, prepared: GroupedRows, resp, params) -> dict:
        by_group = resp.new_zeros(*resp.shape[:-1], self.groups).index_add_(
            -1, prepared.groups, resp).mT  # (*B, groups, k)
        return {"counts": resp.sum(-1), "group_counts": by_group,
                **self.family.accumulate(prepared.values, resp, params)}

    def centers(self, prepared, responsibilities):
        return Params(self.family.centers(prepared.values, responsibilities.mT))

    def maximize(self, stats, params, shift=None) -> Params:
        fixed = frozenset(self.fixed)
        counts = stats["counts"] + 10 * EPS
        family_stats = {**stats, "counts": counts, "reference": shift}
        new = Params(self.family.maximize(family_stats, params, fixed))
        concentration = params.get("concentration", self.fixed.get("concentration"))
        if concentration is None:  # an M-step from responsibilities alone
            concentration = torch.full_like(counts, 2.0)
        weights = params.get("weights")
        if "weights" not in fixed:  # each group's MAP given the concentration
            pseudo = stats["group_counts"] + 10 * EPS + concentration.unsqueeze(-2) - 1
            weights = pseudo / pseudo.sum(-1, keepdim=True)
            new["weights"] = weights
        if "concentration" not in fixed:
            new["concentration"] = dirichlet_concentration(weights, concentration)
        for name in self.specs:
            if name not in new:
                new[name] = params[name] if name in params else self.fixed[name]
        return new

    def diagnose(self, data, params):
        return self.family.diagnose(self._values(data), params, frozenset(self.fixed))


def dirichlet_concentration(weights: torch.Tensor, start: torch.Tensor,
                            iterations: int = 100) -> torch.Tensor:
    """The concentration ``1 <= a <= 1e5`` maximising ``sum_g log Dirichlet(weights_g | a)``.

    Args:
        weights: ``(*B, groups, k)`` points on the simplex; ``start``: ``(*B, k)``.

    The objective is concave in ``a``: projected Newton steps (coordinates at the bound 1
    whose gradient points out of the box stay there), each backtracked until the objective
    does not decrease, so the step never lowers EM's objective. Gradient and Hessian in
    closed form (digamma, trigamma): no autograd, so it runs inside EM's inference mode.
    """
    mean_log = weights.clamp_min(1e-300).log().mean(-2)  # (*B, k)
    groups = weights.shape[-2]

    def objective(a):
        return groups * (torch.lgamma(a.sum(-1)) - torch.lgamma(a).sum(-1)
                         + ((a - 1) * mean_log).sum(-1))

    a = start.clamp(LOWEST, HIGHEST)
    value = objective(a)
    for _ in range(iterations):
        grad = groups * (torch.digamma(a.sum(-1, keepdim=True)) - torch.digamma(a) + mean_log)
        hess = groups * (torch.polygamma(1, a.sum(-1, keepdim=True)).unsqueeze(-1)
                         - torch.diag_embed(torch.polygamma(1, a)))
        free = ((a > LOWEST) | (grad > 0)) & ((a < HIGHEST) | (grad < 0))  # at a bound and
        # pushed out of the box: held there
        eye = torch.diag_embed((~free).to(a.dtype))
        masked = torch.where(free.unsqueeze(-1) & free.unsqueeze(-2), hess, -eye)
        step, info = torch.linalg.solve_ex(masked, -(grad * free).unsqueeze(-1))
        step = step.squeeze(-1).nan_to_num(0.0, 0.0, 0.0)
        ascent = ((step * grad).sum(-1) > 0) & (info == 0)  # else a gradient step
        step = torch.where(ascent.unsqueeze(-1), step, grad * free)
        scale = torch.ones_like(value)
        for _ in range(60):  # backtrack until the objective does not decrease
            candidate = (a + scale.unsqueeze(-1) * step).clamp(LOWEST, HIGHEST)
            new = objective(candidate)
            better = new >= value
            if bool(better.all()):
                break
            scale = torch.where(better, scale, scale / 2)
        moved = torch.where(better.unsqueeze(-1), candidate, a)
        change = float((moved - a).abs().max())
        a, value = moved, torch.where(better, new, value)
        if change < 1e-12:
            break
    return a


@register
class GroupedGaussianMixture(GroupedMixture):
    """Groups (sites, schools, patients) with their own mixes of k shared Gaussians."""

    name = "grouped_gaussian_mixture"

    def __init__(self, k: int = 2, groups: int = 2, dim: int = 1, covariance: str = "full",
                 reg_covar: float = 1e-6, fixed: dict | None = None):
        super().__init__(Gaussian(dim, covariance, reg_covar), k, groups, fixed=fixed)

