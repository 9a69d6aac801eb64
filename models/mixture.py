"""A finite mixture over any component family: the Pyro program and its closed-form EM.

    z_n ~ Categorical(weights)                 (enumerated: summed out exactly)
    x_n | z_n = j ~ family(theta_j)

E-step: ``joint = T(x) @ eta.T - A + log w + log h(x)`` then a softmax over
components. M-step: weights from summed responsibilities, components from the
family's closed form on ``counts`` and ``sums = resp.T @ T(x)``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from .base import ASSIGNMENT, OBSERVATION, EStep, LatentModel, posterior
from .families.base import Family
from .params import Params, ParamSpec
from .validation import InputTypeError

EPS = torch.finfo(torch.float64).eps


class Prepared(NamedTuple):
    """A chunk of data reduced to what the E-step needs.

    Attributes:
        statistics: ``(m, n)`` sufficient statistics ``T(x)``, one column per point
            (components-by-points is the layout in which the E-step's reductions
            over components run as fast elementwise passes).
        log_base: ``(n,)`` log base measure, or ``None`` where it is zero.
        shift: the reference point the statistics were formed around (or None).
    """

    statistics: torch.Tensor
    log_base: torch.Tensor | None
    shift: torch.Tensor | None


class Mixture(LatentModel):
    """``k`` components of one family with learned (or fixed) mixing weights.

    Args:
        family: the component family, e.g. ``Gaussian(dim=2)``.
        k: number of components.
        fixed: parameters held fixed, e.g. ``{"weights": [0.5, 0.5]}``.
    """

    name = "mixture"

    def __init__(self, family: Family, k: int, fixed: dict | None = None):
        if not isinstance(family, Family):
            raise InputTypeError(f"family: expected a Family, got {type(family).__name__}")
        self.family = family
        specs = {"weights": ParamSpec((k,), constraints.simplex, doc="mixing weights")}
        specs.update(family.specs(k))
        super().__init__(k, specs, fixed)

    def describe(self) -> str:
        fixed = ", ".join(self.fixed)
        return f"{self.name}(k={self.k}, {self.family.describe()}" + (
            f", fixed: {fixed})" if fixed else ")")

    # -- the generative program --------------------------------------------------------
    def program(self, params, data=None, n=None):
        """Pyro program. ``data: (n, *event)``; params may carry a restart batch ``(R, ...)``."""
        n = data.shape[0] if data is not None else n
        weights = params["weights"]
        with ExitStack() as plates:
            if weights.dim() > 1:
                plates.enter_context(pyro.plate("restarts", weights.shape[0], dim=-2))
                weights = weights.unsqueeze(-2)
            plates.enter_context(pyro.plate("data", n, dim=-1))
            inputs = self.family.inputs(data, n)  # covariates, for regressions
            z = pyro.sample(ASSIGNMENT, dist.Categorical(weights), infer={"enumerate": "parallel"})
            pyro.sample(OBSERVATION, self.family.distribution(params, z, inputs),
                        obs=self.family.observed(data))
            return inputs

    # -- data and parameters ---------------------------------------------------------
    def check_data(self, data, name="data"):
        return self.family.check_data(data, name)

    def from_trace(self, trace) -> torch.Tensor:
        return self.family.assemble(trace.nodes["_RETURN"]["value"],
                                    trace.nodes[OBSERVATION]["value"])

    def canonical(self, values):
        return self.family.canonical(values)

    def check_params(self, values, name="params"):
        params = super().check_params(values, name)
        self.family.check_params(params, name)
        return params

    def features(self, data):
        return self.family.features(data)

    def diagnose(self, data, params):
        notes = [f"component {j} is empty (weight {float(w):.2g}, under half a point)"
                 for j, w in enumerate(params["weights"].reshape(-1)) if w * len(data) < 0.5]
        return notes + self.family.diagnose(data, params)

    def random_params(self, data, generator):
        w = 1 + torch.rand(self.k, generator=generator, dtype=data.dtype)  # away from zero
        values = {"weights": w / w.sum(), **self.family.random_params(self.k, data, generator)}
        return Params({k: v for k, v in values.items() if k not in self.fixed})

    # -- EM pieces ---------------------------------------------------------------------
    def shift(self, data):
        return self.family.shift(data)

    def prepare(self, data, shift) -> Prepared:
        log_base = self.family.log_base(data)
        return Prepared(self.family.statistics(data, shift), log_base, shift)

    def _joint(self, prepared: Prepared, params) -> torch.Tensor:
        """``log p(x_n, z_n = j)`` in the E-step's layout: ``(*batch, k, n)``."""
        eta, log_norm = self.family.natural(params, prepared.shift)
        offset = (params["weights"].log() - log_norm).unsqueeze(-1)  # (*B, k, 1)
        stats = prepared.statistics
        if eta.dim() == 2:
            joint = torch.addmm(offset, eta, stats)
        else:  # all restarts in one matrix product
            joint = (eta.reshape(-1, eta.shape[-1]) @ stats).reshape(*eta.shape[:-1], -1)
            joint += offset
        if prepared.log_base is not None:
            joint += prepared.log_base
        return joint

    def joint(self, prepared: Prepared, params) -> torch.Tensor:
        """``log p(x_n, z_n = j)``: ``(*batch, n, k)``."""
        return self._joint(prepared, params).mT

    def expect(self, prepared, params, hard=False, marginal=True) -> EStep:
        """E-step on one chunk; ``marginal=False`` skips the marginal log-likelihood
        (hard EM does not need it: its objective is the classification likelihood)."""
        resp, log_lik, objective, top = posterior(self._joint(prepared, params), hard, marginal)
        return EStep(self._stats(prepared, resp), log_lik, objective, resp.mT, top)

    @staticmethod
    def _stats(prepared: Prepared, resp: torch.Tensor) -> dict:
        """``counts (*B, k)`` and ``sums (*B, k, m)`` from ``resp: (*B, k, n)``; one matrix
        product ``T @ resp.T`` (the faster operand order for BLAS) for every restart."""
        flat = resp.reshape(-1, resp.shape[-1])
        sums = (prepared.statistics @ flat.T).T.reshape(*resp.shape[:-1], -1)
        return {"counts": resp.sum(-1), "sums": sums}

    def summarize(self, prepared, responsibilities) -> dict:
        """Additive statistics from ``responsibilities: (*B, n, k)``:
        ``counts (*B, k)`` and ``sums (*B, k, m)``."""
        return self._stats(prepared, responsibilities.mT)

    def maximize(self, stats, params, shift) -> Params:
        counts = stats["counts"] + 10 * EPS  # as scikit-learn: no division by zero
        new = Params(weights=counts / counts.sum(-1, keepdim=True))
        new.update(self.family.maximize(counts, stats["sums"], shift, params))
        for name in self.fixed:
            new[name] = params[name] if name in params else self.fixed[name]
        return new

    def empty_components(self, stats) -> torch.Tensor:
        """``(*batch, k)`` mask of components no point is assigned to (hard EM)."""
        return stats["counts"] <= 0

    def move_points(self, stats, restart, targets, indices, data, params, shift) -> None:
        """Hard EM: move points ``data[indices]`` to components ``targets`` in ``stats``
        (in place, for restart ``restart`` or unbatched ``None``).

        Statistics are linear in the responsibilities, so the move adds
        ``summarize(rows, new - old)``.
        """
        prepared = self.prepare(data[indices], shift)
        old = self.expect(prepared, params, True, False).responsibilities
        new = torch.nn.functional.one_hot(targets, self.k).to(old.dtype)
        delta = self.summarize(prepared, new - old)
        for key, value in delta.items():
            (stats[key] if restart is None else stats[key][restart]).add_(value)
