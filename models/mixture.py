"""A finite mixture over any component family: the Pyro program and its closed-form EM.

    z_n ~ Categorical(weights)                 (enumerated: summed out exactly)
    x_n | z_n = j ~ family(theta_j)

E-step: ``joint = T(x) @ eta.T - A + log w + log h(x)`` then a softmax over
components. M-step: weights from summed responsibilities, components from the
family's closed form on ``counts`` and ``sums = resp.T @ T(x)``.
"""

from __future__ import annotations

from contextlib import ExitStack

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from .base import ASSIGNMENT, OBSERVATION, EStep, LatentModel, posterior
from .families.base import Family, Prepared
from .params import Params, ParamSpec
from .priors import PriorSite, check_prior, simplex_site
from .validation import InputError, InputTypeError

EPS = torch.finfo(torch.float64).eps


class Mixture(LatentModel):
    """``k`` components of one family with learned (or fixed) mixing weights.

    Args:
        family: the component family, e.g. ``Gaussian(dim=2)``.
        k: number of components.
        fixed: parameters held fixed, e.g. ``{"weights": [0.5, 0.5]}``.
    """

    name = "mixture"

    def __init__(self, family: Family, k: int, fixed: dict | None = None,
                 prior: dict | None = None):
        if not isinstance(family, Family):
            raise InputTypeError(f"family: expected a Family, got {type(family).__name__}")
        missing = family.missing_methods()
        if missing:
            raise InputError(f"family: {type(family).__name__} does not define "
                             f"{', '.join(missing)}")
        self.family = family
        specs = self.weight_specs(k)
        specs.update(family.specs(k))
        super().__init__(k, specs, fixed)
        allowed = {"weights": "Dirichlet(concentration) on the mixing weights",
                   **family.prior_keys()}
        self.prior = check_prior(prior, allowed, self.specs)
        self._sites = self._prior_sites()

    def weight_specs(self, k: int) -> dict[str, ParamSpec]:
        """The specs of the mixing weights (a grouped mixture has one row per group)."""
        return {"weights": ParamSpec((k,), constraints.simplex, doc="mixing weights")}

    def _prior_sites(self) -> list[PriorSite]:
        return (simplex_site("weights", self.prior, self.k)
                + self.family.prior_sites(self.prior, self.k))

    def prior_sites(self) -> list[PriorSite]:
        return self._sites

    def describe(self) -> str:
        fixed = ", ".join(self.fixed)
        prior = ", ".join(self.prior)
        return f"{self.name}(k={self.k}, {self.family.describe()}" + (
            f", fixed: {fixed}" if fixed else "") + (f", prior: {prior}" if prior else "") + ")"

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
        return notes + self.family.diagnose(data, params, frozenset(self.fixed))

    def impute(self, data, params, draws=None, generator=None):
        """Missing entries (NaN) filled in, given the observed ones.

        Args:
            data: ``(n, *event)`` with NaN for missing entries.
            params: one parameter set.
            draws: ``None`` for the conditional expectation (mixture-weighted by each row's
                posterior); ``m`` for ``m`` draws: the component from the posterior, then
                the missing entries from their conditional distribution under it.
            generator: the random stream of the draws.

        Returns:
            ``(n, *event)``, or ``(draws, n, *event)``; observed entries as given.
        """
        data = self.check_data(data)
        params = self.check_params(params)
        if params.batch_shape(self.specs):
            raise InputError("params: expected one parameter set, got a restart batch")
        resp = self.e_step(data, params)[0]
        if draws is None:
            return self.family.impute_mean(data, params, resp)
        labels = torch.multinomial(resp, draws, replacement=True, generator=generator).T
        return self.family.impute_draw(data, params, labels, generator)

    def random_params(self, data, generator):
        w = 1 + torch.rand(self.k, generator=generator, dtype=data.dtype)  # away from zero
        values = {"weights": w / w.sum(), **self.family.random_params(self.k, data, generator)}
        return Params({k: v for k, v in values.items() if k not in self.fixed})

    # -- EM pieces ---------------------------------------------------------------------
    def shift(self, data):
        return self.family.shift(data)

    def prepare(self, data, shift) -> Prepared:
        return self.family.prepare(data, shift)

    def _joint(self, prepared: Prepared, params) -> torch.Tensor:
        """``log p(x_n, z_n = j)`` in the E-step's layout: ``(*batch, k, n)``."""
        joint = self.family.log_densities(prepared, params)
        return joint.add_(params["weights"].log().unsqueeze(-1))

    def joint(self, prepared: Prepared, params) -> torch.Tensor:
        """``log p(x_n, z_n = j)``: ``(*batch, n, k)``."""
        return self._joint(prepared, params).mT

    def expect(self, prepared, params, hard=False, marginal=True) -> EStep:
        """E-step on one chunk; ``marginal=False`` skips the marginal log-likelihood
        (hard EM does not need it: its objective is the classification likelihood)."""
        resp, log_lik, objective, top = posterior(self._joint(prepared, params), hard, marginal)
        return EStep(self._stats(prepared, resp, params), log_lik, objective, resp.mT, top)

    def _stats(self, prepared: Prepared, resp: torch.Tensor, params) -> dict:
        """``counts (*B, k)`` and the family's statistics from ``resp: (*B, k, n)``."""
        return {"counts": resp.sum(-1), **self.family.accumulate(prepared, resp, params)}

    def summarize(self, prepared, responsibilities, params) -> dict:
        """Additive statistics from ``responsibilities: (*B, n, k)`` at ``params``
        (statistics may be formed around the current parameters)."""
        return self._stats(prepared, responsibilities.mT, params)

    def centers(self, prepared, responsibilities) -> Params:
        """Reference values for an M-step straight from ``responsibilities: (*B, n, k)``."""
        return Params(self.family.centers(prepared, responsibilities.mT))

    def maximize(self, stats, params, shift=None) -> Params:
        """The constrained M-step: fixed parameters keep their values and the free ones
        maximise the expected complete-data log-likelihood given them. The family sees the
        fit's ``shift`` as ``stats["reference"]`` (not a statistic: never summed)."""
        fixed = frozenset(self.fixed)
        counts = stats["counts"] + 10 * EPS  # as scikit-learn: no division by zero
        new = Params()
        if "weights" not in fixed:  # MAP under Dirichlet(a): counts + a - 1
            pseudo = counts + (self.prior["weights"]["concentration"] - 1 if self.prior.on(
                "weights") else 0.0)
            new["weights"] = pseudo / pseudo.sum(-1, keepdim=True)
        family_stats = {**stats, "counts": counts, "reference": shift, "prior": self.prior}
        new.update(self.family.maximize(family_stats, params, fixed))
        for name in self.specs:
            if name in fixed or name not in new:
                new[name] = params[name] if name in params else self.fixed[name]
        return new

    def empty_components(self, stats) -> torch.Tensor:
        """``(*batch, k)`` mask of components no point is assigned to (hard EM)."""
        return stats["counts"] <= 0

    def move_points(self, stats, restart, targets, indices, data, params, shift) -> None:
        """Hard EM: move points ``data[indices]`` to components ``targets`` in ``stats``
        (in place, for restart ``restart`` or unbatched ``None``; ``params`` are that
        restart's).

        Statistics are linear in the responsibilities, so the move adds
        ``summarize(rows, new - old)``.
        """
        prepared = self.prepare(data[indices], shift)
        old = self.expect(prepared, params, True, False).responsibilities
        new = torch.nn.functional.one_hot(targets, self.k).to(old.dtype)
        delta = self.summarize(prepared, new - old, params)
        for key, value in delta.items():
            (stats[key] if restart is None else stats[key][restart]).add_(value)
