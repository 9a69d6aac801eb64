"""Models given only by their Pyro program: EM by enumeration and a numerical M-step.

Write ``program(params, data=None, n=None)`` with the assignment site
``"assignment"`` (marked for enumeration) and the observation site ``"obs"``
inside a ``pyro.plate`` over the data, plus ``check_data``. Then:

- the E-step enumerates the program (``poutine.enum``) to get
  ``log p(x_n, z_n = j)`` and normalises over ``j``;
- the M-step maximises the expected complete-data log-likelihood
  ``Q(theta) = sum_nj r_nj log p(x_n, z_n = j | theta)`` with L-BFGS in the
  unconstrained space of the specs' constraints: a generalised EM step, so the
  log-likelihood still never decreases.

The program takes one parameter set; restarts are looped over here.
"""

from __future__ import annotations

import math

import pyro.poutine as poutine
import torch
from pyro.infer import config_enumerate
from torch.distributions import biject_to

from .base import EStep, LatentModel, posterior
from .params import Params, interior
from .validation import check_data


class PyroModel(LatentModel):
    """Base class for a model defined by its program alone (see the module docstring).

    Args:
        k: number of values of the assignment.
        specs: the parameters, ``name -> ParamSpec``.
        fixed: parameters held fixed.
        event_shape: shape of one observation, for the default ``check_data``.
    """

    name = "pyro_model"
    m_step_kind = "generic"
    chunkable = False  # the M-step needs every point's responsibilities
    #: L-BFGS iterations per M-step
    m_step_iterations = 100

    def __init__(self, k, specs, fixed=None, event_shape: tuple = ()):
        super().__init__(k, specs, fixed)
        self.event_shape = tuple(event_shape)

    def check_data(self, data, name="data"):
        return check_data(data, name, self.event_shape)

    def plate_nesting(self, params) -> int:
        return 1  # the program is written for one parameter set

    # -- the E-step, by enumerating the program ---------------------------------------
    def _enumerated(self, data, params) -> torch.Tensor:
        """``log p(x_n, z_n = j)`` for one parameter set: ``(k, n)``."""
        program = poutine.enum(config_enumerate(self.program, "parallel"), first_available_dim=-2)
        trace = poutine.trace(program).get_trace(params, data)
        total = 0.0
        for site in trace.nodes.values():
            if site["type"] == "sample":
                total = total + site["fn"].log_prob(site["value"])
        return total.expand(self.k, data.shape[0])

    def _joint(self, data, params) -> torch.Tensor:
        """``(*batch, k, n)``, looping over a restart batch."""
        batch = params.batch_shape(self.specs)
        if not batch:
            return self._enumerated(data, params)
        return torch.stack([self._enumerated(data, params.select(b, self.specs))
                            for b in range(batch[0])])

    def shift(self, data):
        return None

    def prepare(self, data, shift):
        return data

    def joint(self, prepared, params):
        return self._joint(prepared, params).mT

    def expect(self, prepared, params, hard=False, marginal=True) -> EStep:
        with torch.no_grad():
            resp, log_lik, objective, top = posterior(self._joint(prepared, params), hard,
                                                      marginal)
        return EStep({"data": prepared, "resp": resp}, log_lik, objective, resp.mT, top)

    def summarize(self, prepared, responsibilities, params=None) -> dict:
        """The "statistics" of a generic model are the data and responsibilities themselves
        (nothing smaller is known), so its EM runs on all the data at once."""
        return {"data": prepared, "resp": responsibilities.mT}

    def empty_components(self, stats):
        return stats["resp"].sum(-1) <= 0

    def move_points(self, stats, restart, targets, indices, data, params, shift) -> None:
        resp = stats["resp"] if restart is None else stats["resp"][restart]
        resp[:, indices] = 0.0
        resp[targets, indices] = 1.0

    # -- the M-step, numerically ------------------------------------------------------
    def _from_unconstrained(self, draw) -> Params:
        out = Params()
        for name, spec in self.specs.items():
            transform = biject_to(spec.constraint)
            out[name] = transform(draw(transform.inverse_shape(torch.Size(spec.shape))))
        return out

    def default_params(self) -> Params:
        """A neutral starting point: the image of zero under each constraint's bijection."""
        return self._from_unconstrained(lambda shape: torch.zeros(shape, dtype=torch.float64))

    def random_params(self, data, generator) -> Params:
        """Random unconstrained values (standard normal) mapped through the constraints."""
        values = self._from_unconstrained(
            lambda shape: torch.randn(shape, generator=generator, dtype=torch.float64))
        return Params({k: v for k, v in values.items() if not self.specs[k].fixed})

    def maximize(self, stats, params, shift=None) -> Params:
        data, resp = stats["data"], stats["resp"]
        batch = resp.shape[:-2]
        if batch:
            return Params.stack([self._maximize(data, resp[b], params.select(b, self.specs)
                                                if params.batch_shape(self.specs) else params)
                                 for b in range(batch[0])])
        return self._maximize(data, resp, params)

    def _maximize(self, data, resp, params) -> Params:
        start = self.default_params()
        start.update({k: v for k, v in params.items() if k in self.specs})
        start.update(self.fixed)
        free = {name: biject_to(spec.constraint).inv(interior(start[name], spec.constraint))
                .detach().clone().requires_grad_()
                for name, spec in self.specs.items() if not spec.fixed}
        if not free:
            return start
        resp = resp.detach()

        def values() -> Params:
            return Params({name: biject_to(spec.constraint)(free[name]) if name in free
                           else start[name] for name, spec in self.specs.items()})

        optimizer = torch.optim.LBFGS(list(free.values()), lr=1.0,
                                      max_iter=self.m_step_iterations, history_size=20,
                                      tolerance_grad=1e-12, tolerance_change=1e-15,
                                      line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = -(resp * self._enumerated(data, values())).sum()
            loss.backward()
            return loss

        initial = {name: value.detach().clone() for name, value in free.items()}
        with torch.enable_grad():
            optimizer.step(closure)
        with torch.no_grad():
            return self._inside_support(free, initial, values,
                                        lambda v: float((resp * self._enumerated(data, v)).sum()))

    def _inside_support(self, free: dict, initial: dict, values, expected) -> Params:
        """The optimiser's point, or the last point on the way back to the start that lies
        inside every constraint's support with an expected log-likelihood no lower than
        the start's (an unbounded likelihood, e.g. a Gamma on identical points, sends the
        optimiser off to infinity).

        Args:
            free: the unconstrained leaves (moved in place); ``initial``: their start.
            values: maps the current leaves to constrained parameters.
            expected: the expected complete-data log-likelihood of parameters.
        """
        final = {name: value.detach().clone() for name, value in free.items()}

        def at(t: float) -> Params:
            for name in free:
                free[name].copy_(initial[name] + t * (final[name] - initial[name]))
            return values().map(lambda v: v.detach().clone())

        def inside(candidate: Params) -> bool:
            return all(bool(torch.isfinite(v).all()) and bool(
                self.specs[k].constraint.check(v).all()) for k, v in candidate.items())

        start = at(0.0)
        baseline = expected(start)
        for t in (0.5**i for i in range(60)):
            candidate = at(t)
            if inside(candidate):
                value = expected(candidate)
                if math.isfinite(value) and value >= baseline:
                    return candidate
        return start
