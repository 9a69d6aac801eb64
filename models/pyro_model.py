"""Models given only by their Pyro program: EM by enumeration and a numerical M-step.

Write ``program(params, data=None, n=None)`` with the assignment site
``"assignment"`` (marked for enumeration) and the observation site ``"obs"``
inside a ``pyro.plate`` over the data, plus ``check_data``. Then:

- the E-step enumerates the program (``poutine.enum``) to get
  ``log p(x_n, z_n = j)`` and normalises over ``j``;
- the M-step takes safeguarded Newton steps (:mod:`models.newton`) on the expected
  complete-data log-likelihood ``Q(theta) = sum_nj r_nj log p(x_n, z_n = j | theta)`` in
  the unconstrained space of the specs' constraints, from the current parameters. A step
  is kept only when ``Q`` rises (else it is halved), so this is a generalised EM step and
  the log-likelihood never decreases; its fixed points are EM's (``grad Q = grad log L``
  there), and one Newton step per iteration converges at EM's own rate (Lange 1995);
- that step, the EM map ``F``, is accelerated by SQUAREM (Varadhan & Roland 2008) in the same
  coordinates: two ``F`` steps, a jump along them and a stabilising ``F`` step, kept only
  when its log-likelihood is at least that of the two plain steps (``squarem = False``:
  plain steps). Hard EM and models with priors take plain steps.

The program is traced once per ``F`` step: the trace at the parameters a step lands on
(a differentiable function of them) gives ``Q``'s check, the next E-step's joint and the
next step's gradient and Hessian (autograd, no more runs of the program).
The program takes one parameter set; restarts are looped over here.
"""

from __future__ import annotations

from typing import NamedTuple

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import config_enumerate
from torch.distributions import biject_to

from .base import EStep, LatentModel, posterior
from .newton import curvature, derivatives, direction, squarem_jump
from .params import Params, interior
from .validation import check_data

#: halvings of a Newton step before the M-step keeps the current parameters
HALVINGS = 40
#: a line search stops once the gain its step could make is below this fraction of ``Q``
#: (round-off: the comparison would only measure noise)
ROUNDOFF = 1e-15
#: SQUAREM's longest step length starts at this and grows (shrinks, not below 1) by
#: :data:`STEP_FACTOR` each time a step as long is kept (refused), as the R package
#: SQUAREM's ``step.max0`` and ``mstep`` (its 1 took 27 von Mises and 93 Gamma iterations
#: in the benchmark, 4 takes 18 and 84; unbounded, every Gamma jump overshot)
STEP_MAX0, STEP_FACTOR = 4.0, 4.0
#: a Hessian is reused while a whole step gains at least this fraction of its prediction
REUSE = 0.5
#: Newton iterations of an M-step from responsibilities alone (initialisation)
SOLVE_ITERATIONS = 200


class Traced(NamedTuple):
    """One parameter set's enumerated joint as a differentiable function of a flat leaf.

    Attributes:
        data: the data it was traced on; values: the parameters (detached).
        theta: ``(P,)`` leaf: the free parameters, unconstrained and flattened.
        joint: ``(k, n)`` ``log p(x_n, z_n = j)``, with its autograd graph to ``theta``
            when one was recorded.
        hessian: ``(P, P)`` the Hessian of the M-step that led here, to reuse (or None),
            and ``factor`` its :func:`~models.newton.curvature`.
        step_max: the longest SQUAREM step length the next M-step from here may take.
    """

    data: torch.Tensor
    values: Params
    theta: torch.Tensor
    joint: torch.Tensor
    hessian: torch.Tensor | None = None
    factor: tuple | None = None
    step_max: float = STEP_MAX0


class PyroModel(LatentModel):
    """Base class for a model defined by its program alone (see the module docstring).

    The latest E- or M-step's traces (with their autograd graphs) stay on the model until
    the next step replaces them; copies and pickles leave them behind.

    Args:
        k: number of values of the assignment.
        specs: the parameters, ``name -> ParamSpec``.
        fixed: parameters held fixed.
        event_shape: shape of one observation, for the default ``check_data``.
    """

    name = "pyro_model"
    m_step_kind = "generic"
    chunkable = False  # the M-step needs every point's responsibilities
    #: Newton iterations per M-step (1: the EM gradient algorithm; more: closer to a full
    #: maximisation of Q each iteration, at one trace of the program per extra iteration)
    m_step_iterations = 1
    #: an M-step stops early once a Newton step changes Q by at most this, relatively
    m_step_tol = 1e-12
    #: accelerate soft EM by SQUAREM (see :meth:`_accelerated`); False: plain GEM steps
    squarem = True

    def __init__(self, k, specs, fixed=None, event_shape: tuple = ()):
        super().__init__(k, specs, fixed)
        self.event_shape = tuple(event_shape)

    def __getstate__(self):  # copies and pickles leave the caches behind
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_enumerable", "_traces", "_free_layout", "_hard")}

    def check_data(self, data, name="data"):
        return check_data(data, name, self.event_shape)

    def plate_nesting(self, params) -> int:
        return 1  # the program is written for one parameter set

    # -- the E-step, by enumerating the program ---------------------------------------
    def _enumerated(self, data, params) -> torch.Tensor:
        """``log p(x_n, z_n = j)`` for one parameter set: ``(k, n)``."""
        if "_enumerable" not in self.__dict__:  # wrapped once, not per call
            self._enumerable = poutine.enum(config_enumerate(self.program, "parallel"),
                                            first_available_dim=-2)
        trace = poutine.trace(self._enumerable).get_trace(params, data)
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

    def _restarts(self, params) -> list[Params]:
        batch = params.batch_shape(self.specs)
        return [params.select(b, self.specs) for b in range(batch[0])] if batch else [params]

    def expect(self, prepared, params, hard=False, marginal=True) -> EStep:
        traces = [self._traced(prepared, one) for one in self._restarts(params)]
        self._traces = traces  # the M-step that follows differentiates these
        self._hard = hard  # the M-step after a hard E-step is not accelerated
        joint = torch.stack([t.joint.detach() for t in traces])
        joint = joint if params.batch_shape(self.specs) else joint[0]
        with torch.no_grad():
            resp, log_lik, objective, top = posterior(joint, hard, marginal)
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

    # -- the unconstrained coordinates of the free parameters -----------------------------
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

    def _free(self) -> list[str]:
        return [name for name, spec in self.specs.items() if not spec.fixed]

    def _flatten(self, params: Params) -> torch.Tensor:
        """``(P,)`` the free parameters of one set, unconstrained and concatenated."""
        parts = [biject_to(self.specs[name].constraint).inv(
            interior(params[name], self.specs[name].constraint)).reshape(-1)
            for name in self._free()]
        if not parts:
            return torch.zeros(0, dtype=torch.float64)
        return torch.cat(parts).detach()

    def _layout(self) -> list:
        """``[(name, transform, unconstrained shape, offset in theta)]`` of the free
        parameters, built once."""
        if "_free_layout" not in self.__dict__:
            layout, at = [], 0
            for name in self._free():
                transform = biject_to(self.specs[name].constraint)
                shape = transform.inverse_shape(torch.Size(self.specs[name].shape))
                layout.append((name, transform, shape, at))
                at += shape.numel()
            self._free_layout = layout
        return self._free_layout

    def _unflatten(self, theta: torch.Tensor, params: Params) -> Params:
        """The parameters at ``theta`` (differentiably), the others taken from ``params``."""
        out = Params({name: params[name] if name in params else self.fixed[name]
                      for name, spec in self.specs.items() if spec.fixed})
        for name, transform, shape, at in self._layout():
            out[name] = transform(theta[at: at + shape.numel()].reshape(shape))
        return Params({name: out[name] for name in self.specs})

    def _trace_at(self, data, theta: torch.Tensor, params: Params) -> Traced:
        """Run the program once at ``theta``, recording the graph when autograd may."""
        theta = theta.detach().clone()
        graph = not torch.is_inference_mode_enabled()
        with torch.enable_grad() if graph else torch.no_grad():
            theta.requires_grad_(graph)
            values = self._unflatten(theta, params)
            joint = self._enumerated(data, values)
        return Traced(data, values.map(lambda v: v.detach()), theta, joint)

    def _traced(self, data, params: Params) -> Traced:
        """The trace of one parameter set: the latest iteration's when it is the same data
        and the same values (an M-step's accepted point is the next E-step's), else a new
        one."""
        for traced in self.__dict__.get("_traces", ()):
            if traced.data is data and all(
                    torch.equal(traced.values[name], params[name]) for name in self._free()):
                return traced
        full = self.default_params()
        full.update({k: v for k, v in params.items() if k in self.specs})
        full.update(self.fixed)
        return self._trace_at(data, self._flatten(full), full)

    # -- the M-step, numerically ------------------------------------------------------
    def maximize(self, stats, params, shift=None) -> Params:
        accelerate = self.squarem and not self.__dict__.get("_hard", False) and not self.prior
        return self._maximize_sets(stats, params, self.m_step_iterations, accelerate)

    def m_step(self, data, responsibilities, params=None) -> Params:
        """From responsibilities alone (initialisation): ``Q`` maximised to convergence
        (at most :data:`SOLVE_ITERATIONS` Newton iterations) rather than one step."""
        data = self.check_data(data)
        params = Params(self.fixed if params is None else self.check_params(params))
        return self._maximize_sets(self.summarize(data, responsibilities, params), params,
                                   SOLVE_ITERATIONS)

    def _maximize_sets(self, stats, params, iterations: int, accelerate: bool = False) -> Params:
        data, resp = stats["data"], stats["resp"]
        sets = self._restarts(params)
        batched = bool(resp.shape[:-2])
        step = self._accelerated if accelerate else self._maximize
        traces = [step(data, resp[b] if batched else resp, one, iterations)
                  for b, one in enumerate(sets)]
        self._traces = traces  # the next E-step is at these points
        if batched:
            return Params.stack([t.values for t in traces])
        return traces[0].values

    def _maximize(self, data, resp, params, iterations: int) -> Traced:
        """Newton steps on ``Q`` from ``params`` (one set): the trace at the point reached.

        The Hessian of the previous M-step is reused while its steps are taken whole and
        gain at least half what its quadratic model predicts (``Q`` changes little from one
        iteration to the next); otherwise it is computed afresh (a failed search is
        retried with it at once, a poor one on the next step).
        """
        return self._newton(data, resp, self._traced(data, params), iterations)

    def _newton(self, data, resp, current: Traced, iterations: int) -> Traced:
        """Newton steps on ``Q`` (responsibilities ``resp``) from the trace ``current``."""
        if not self._free():
            return current
        resp = resp.detach()
        for _ in range(iterations):
            if not current.joint.requires_grad:  # traced under no_grad: trace it again
                current = self._trace_at(data, current.theta, current.values)
            hessian, factor = current.hessian, current.factor
            with torch.enable_grad():
                value = (resp * current.joint).sum()
                level = float(value.detach())
                if hessian is None:
                    grad, hessian = derivatives(value, current.theta)
                    factor = curvature(hessian)
                else:
                    (grad,) = torch.autograd.grad(value, current.theta, retain_graph=True)
            accepted = self._line_search(data, resp, current, level, grad, hessian, factor)
            if accepted is None and current.hessian is not None:  # stale: try a fresh one
                with torch.enable_grad():
                    grad, hessian = derivatives(value, current.theta)
                accepted = self._line_search(data, resp, current, level, grad, hessian,
                                             curvature(hessian))
            if accepted is None:
                break
            current, gain = accepted
            if gain <= self.m_step_tol * abs(level):
                break
        return current

    def _update(self, data, current: Traced, iterations: int) -> Traced:
        """The EM map at a trace: its E-step's responsibilities, then :meth:`_newton`."""
        with torch.no_grad():
            resp = posterior(current.joint.detach(), False)[0]
        return self._newton(data, resp, current, iterations)

    def _accelerated(self, data, resp, params, iterations: int) -> Traced:
        """One SQUAREM cycle (Varadhan & Roland 2008, scheme S3) on the EM map ``F`` (this
        model's GEM step) in the unconstrained coordinates ``theta`` of one set:
        ``t1 = F(t0)``, ``t2 = F(t1)``, the jump :func:`~models.newton.squarem_jump` and one
        stabilising ``F`` step from it. That point is kept only when its log-likelihood is
        at least ``t2``'s, else ``t2`` (two plain steps): the log-likelihood never
        decreases, and the fixed points are EM's. Costs about three plain iterations. The
        step length is capped (``step_max``, carried by the trace to the next M-step):
        from :data:`STEP_MAX0`, times :data:`STEP_FACTOR` after a kept step at the cap,
        divided after a refused one (Varadhan & Roland's adaptive bound).
        """
        start = self._traced(data, params)
        first = self._maximize(data, resp, params, iterations)
        if first is start or not self._free():
            return first
        second = self._update(data, first, iterations)
        if second is first:
            return second
        cap = start.step_max
        jump = squarem_jump(start.theta.detach(), first.theta.detach(), second.theta.detach(),
                            cap)
        if jump is None:
            return second._replace(step_max=cap)
        theta, step = jump
        at_cap = step >= cap
        with pyro.validation_enabled(False):
            jumped = self._trace_at(data, theta, start.values)
        stable = None
        if self._inside(jumped.values):
            jumped = jumped._replace(hessian=second.hessian, factor=second.factor)
            stable = self._update(data, jumped, iterations)
        if stable is not None and _log_likelihood(stable) >= _log_likelihood(second):
            best = stable._replace(step_max=cap * STEP_FACTOR if at_cap else cap)
        else:  # refused: two plain steps, and a shorter longest step next time
            best = second._replace(step_max=max(cap / STEP_FACTOR, 1.0) if at_cap else cap)
        # at the optimum two GEM steps may lose round-off: the E-step must not record it
        return best if _log_likelihood(best) >= _log_likelihood(start) else start

    def _line_search(self, data, resp, current: Traced, value: float, grad, hessian, factor):
        """The first of ``theta + step / 2**i`` (``step``: the Newton ascent direction) inside
        every support with a finite ``Q`` no lower than ``value`` (an unbounded likelihood,
        e.g. a Gamma on identical points, sends Newton off to infinity): ``(trace there,
        gain)`` with the Hessian to reuse (``None``: compute it afresh next), or ``None``."""
        step = direction(grad, factor)
        if not bool(step.abs().max() > 0):
            return None
        predicted = float(grad @ step + 0.5 * step @ hessian @ step)
        slope, noise = float(grad @ step), ROUNDOFF * abs(value)
        for i in range(HALVINGS):
            theta = current.theta.detach() + step / 2.0**i
            if bool((theta == current.theta.detach()).all()) or slope / 2.0**i <= noise:
                return None  # the step, or the most it could gain, is below round-off
            with pyro.validation_enabled(False):  # as VI after its first step: checked once
                traced = self._trace_at(data, theta, current.values)
            if not self._inside(traced.values):
                continue
            trial = float((resp * traced.joint.detach()).sum())
            if trial == trial and trial >= value and trial != float("inf"):
                good = i == 0 and trial - value >= REUSE * predicted
                return traced._replace(hessian=hessian if good else None,
                                       factor=factor if good else None), trial - value
        return None

    def _inside(self, values: Params) -> bool:
        return all(bool(torch.isfinite(v).all()) and bool(
            self.specs[k].constraint.check(v).all()) for k, v in values.items())


def _log_likelihood(traced: Traced) -> float:
    """``sum_n log sum_j p(x_n, z_n = j)`` of a trace, computed as the E-step records it
    (NaN compares false: never kept)."""
    with torch.no_grad():
        return float(posterior(traced.joint.detach(), False)[1])
