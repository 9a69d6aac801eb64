"""How sure a fit is: standard errors and confidence intervals of its parameters.

*Observed information* (the default): the Hessian, by autograd, of the exact marginal
log-likelihood that Pyro's ``TraceEnum_ELBO`` computes from the model's own program with
point-estimate globals (:func:`log_objective`), at the fitted parameters, in the *free
coordinates* of :class:`Coordinates` (each free parameter's unconstrained image under
``biject_to`` of its constraint: stick-breaking for weights, logits for probabilities,
logs for scales and rates, the lower triangle with a log diagonal for Cholesky factors;
fixed parameters are left out). Its inverse is mapped back to the natural parameters by
the delta method, ``cov = J I^-1 J^T`` with ``J`` the Jacobian (autograd) of the
natural values in the free coordinates.

*Louis' method* (:func:`louis_information`) computes the same matrix from the E-step
instead: the complete-data information minus the missing information, from each
observation's complete-data scores (autograd of the model's hand-written log joint)
weighted by its responsibilities. The identity holds at any parameters, so the two agree
to round-off everywhere: a check of both.

Where the information says nothing (:func:`assess`), entries are *unavailable*: their
standard error is ``inf`` (``None`` in JSON), never NaN, and a note says why:

- a *boundary* estimate: a probability or weight within :data:`BOUNDARY` of 0 or 1, or
  a rate of 0; the other entries' errors treat it as fixed at its estimate;
- *not at a stationary point*: a free coordinate along which the log-likelihood still
  rises by more than :data:`STATIONARY` standard errors, alone or in the Newton step
  ``I^-1 g`` to the maximum (a fit short of its maximum, or a component collapsed onto a
  floor such as ``reg_covar``), or a weight at 0 (an empty component); every entry of
  that component is unavailable;
- *singular information*: a direction with (relative) curvature below :data:`RCOND`
  (parameters the data cannot tell apart), or negative curvature (a saddle, not a
  maximum); the entries that move along it are unavailable.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO, config_enumerate
from torch.distributions import biject_to, constraints, transform_to

from ..models.base import ASSIGNMENT
from ..models.params import Params, interior
from ..models.validation import InputError, InputTypeError, check_real

#: a probability or weight this close to 0 or 1 is on the boundary of its support
BOUNDARY = 1e-8
#: eigenvalues of the information (scaled to unit diagonal) below this fraction of the
#: largest are singular
RCOND = 1e-9
#: a free coordinate whose score exceeds this many standard errors is not stationary
STATIONARY = 1.0
#: a natural entry depends on a coordinate when its derivative exceeds this fraction of
#: its largest derivative
MATERIAL = 1e-6
METHODS = ("observed", "louis", "bootstrap")
#: a mixture's mixing weights: a component whose weight is 0 is empty
MIXING = "weights"


# -- the objective -----------------------------------------------------------------------
def program_log_likelihood(model, data, values: Params, assignments=None) -> torch.Tensor:
    """``log p(data | values)`` from the model's Pyro program: ``-TraceEnum_ELBO`` loss with
    every global a point value and the assignment site enumerated (summed out exactly), or
    conditioned on known ``assignments: (n,)``. Differentiable in ``values``."""
    program = config_enumerate(model.program, "parallel")
    if assignments is not None:
        program = poutine.condition(program, data={ASSIGNMENT: assignments})

    def pyro_model(observed):
        program(values, observed)

    def guide(observed):  # no latent globals; the assignments are enumerated
        pass

    with pyro.get_param_store().scope():
        elbo = TraceEnum_ELBO(max_plate_nesting=model.plate_nesting(values))
        return -elbo.differentiable_loss(pyro_model, guide, data)


def log_objective(model, data, values: Params, assignments=None) -> torch.Tensor:
    """What the fit maximised, as a function of the parameters: the log-likelihood of the
    program. A MAP fit (priors) adds its log prior here, and every standard error
    follows (the observed information is then that of the log posterior)."""
    return program_log_likelihood(model, data, values, assignments) + log_prior_of(model, values)


def log_prior_of(model, values: Params) -> torch.Tensor | float:
    """``log p(params)`` under the model's priors (0 without): MAP-EM's extra term."""
    return model.log_prior(values) if model.prior_sites() else 0.0


# -- the free coordinates ----------------------------------------------------------------
def bijection(constraint):
    """The map from unconstrained values onto the support: ``biject_to``, except for
    Cholesky factors (``transform_to``: it reads only the lower triangle, which :func:`_used`
    keeps; the upper one is not a coordinate)."""
    if constraint is constraints.lower_cholesky:
        return transform_to(constraint)
    return biject_to(constraint)


def _used(constraint, shape: torch.Size) -> torch.Tensor:
    """Which entries of an unconstrained tensor the transform reads (a Cholesky factor's
    strict upper triangle is ignored)."""
    if constraint is constraints.lower_cholesky:
        return torch.ones(shape, dtype=torch.bool).tril()
    return torch.ones(shape, dtype=torch.bool)


@dataclass
class Coordinates:
    """The free parametrisation of a model at some parameters.

    Attributes:
        model: the model.
        fixed: the values of its fixed parameters.
        names: the free parameters, in the model's order.
        base: ``name -> unconstrained tensor`` at the estimate (unused entries kept).
        index: ``name -> (m,)`` flat positions of the used unconstrained entries.
        theta: ``(p,)`` the used entries, concatenated: the free coordinates.
        labels: ``(p,)`` a readable name of each coordinate.
    """

    model: object
    fixed: Params
    names: list
    base: dict
    index: dict
    theta: torch.Tensor
    labels: list

    @classmethod
    def at(cls, model, params: Params) -> Coordinates:
        fixed = Params({k: v for k, v in params.items() if model.specs[k].fixed})
        names, base, index, pieces, labels = [], {}, {}, [], []
        for name, spec in model.specs.items():
            if spec.fixed:
                continue
            value = interior(params[name], spec.constraint)
            unconstrained = bijection(spec.constraint).inv(value).detach()
            used = torch.nonzero(_used(spec.constraint, unconstrained.shape).reshape(-1))
            names.append(name)
            base[name], index[name] = unconstrained, used.reshape(-1)
            pieces.append(unconstrained.reshape(-1)[index[name]])
            kind = _coordinate_kind(spec.constraint)
            shape = tuple(unconstrained.shape)
            for i in index[name].tolist():
                at = ",".join(str(int(j)) for j in np.unravel_index(i, shape)) if shape else ""
                labels.append(f"{kind}({name})[{at}]" if kind else f"{name}[{at}]")
        theta = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.float64)
        return cls(model, fixed, names, base, index, theta, labels)

    def free(self, theta: torch.Tensor) -> Params:
        """The free parameters' natural values at ``theta`` (differentiable)."""
        out, at = Params(), 0
        for name in self.names:
            base, index = self.base[name], self.index[name]
            piece = theta[at: at + len(index)]
            at += len(index)
            flat = base.reshape(-1).index_put((index,), piece)
            out[name] = bijection(self.model.specs[name].constraint)(flat.reshape(base.shape))
        return out

    def values(self, theta: torch.Tensor) -> Params:
        """Every parameter (fixed ones as they are) at ``theta``, in the model's order."""
        free = self.free(theta)
        return Params({name: free[name] if name in free else self.fixed[name]
                       for name in self.model.specs})

    def natural(self, theta: torch.Tensor) -> torch.Tensor:
        """``(N,)`` the free parameters' natural values, flattened and concatenated."""
        free = self.free(theta)
        return torch.cat([free[name].reshape(-1) for name in self.names])


def _coordinate_kind(constraint) -> str:
    if constraint is constraints.simplex:
        return "stick"
    if constraint is constraints.unit_interval:
        return "logit"
    if constraint is constraints.positive:
        return "log"
    if constraint is constraints.lower_cholesky:
        return "chol"
    return "" if constraint is constraints.real else "free"


def _hessian_and_gradient(function, theta: torch.Tensor):
    """``(H (p, p), g (p,))`` of a scalar function by autograd (rows one backward each)."""
    theta = theta.detach().clone().requires_grad_()
    with torch.enable_grad():
        value = function(theta)
        (grad,) = torch.autograd.grad(value, theta, create_graph=True)
        rows = [torch.autograd.grad(grad[i], theta, retain_graph=True, allow_unused=True)[0]
                for i in range(len(theta))]
    rows = [torch.zeros_like(theta) if r is None else r for r in rows]
    hessian = torch.stack(rows).detach() if rows else theta.new_zeros(0, 0)
    return 0.5 * (hessian + hessian.T), grad.detach()


def natural_jacobian(coords: Coordinates) -> torch.Tensor:
    """``(N, p)`` derivatives of the natural values in the free coordinates."""
    theta = coords.theta.detach()
    if len(theta) == 0:
        return theta.new_zeros(len(coords.natural(theta)), 0)
    with torch.enable_grad():
        return torch.autograd.functional.jacobian(coords.natural, theta)


# -- the result ------------------------------------------------------------------------
class StandardErrors(Params):
    """Standard errors of the free parameters, ``name -> tensor`` of the parameter's shape.

    Unavailable entries hold ``inf`` (never NaN); ``unavailable`` marks them and ``notes``
    say why. Entries fixed by the structure (a Cholesky factor's upper triangle, the one
    weight of a single component) hold 0.

    Attributes:
        method: how they were computed.
        unavailable: ``name -> bool tensor`` of the parameter's shape.
        notes: plain-words notes (boundary estimates, collapsed components, ...).
    """

    method: str = ""
    unavailable: Params
    notes: list

    def __init__(self, values=(), method: str = "", unavailable=None, notes=None):
        super().__init__(values)
        self.method = method
        self.unavailable = Params(unavailable or {})
        self.notes = list(notes or [])


@dataclass
class Intervals:
    """Confidence intervals: ``lower`` and ``upper`` bounds, each a ``Params`` of the free
    parameters' shapes (``lower, upper = intervals``). Unavailable entries span the
    whole support of their parameter.

    Attributes:
        level: the nominal coverage, e.g. 0.95.
        method: ``wald`` (estimate +- z se, clipped to the support) or ``percentile``.
        unavailable: ``name -> bool tensor``, as :class:`StandardErrors`.
        notes: as :class:`StandardErrors`.
    """

    lower: Params
    upper: Params
    level: float
    method: str
    unavailable: Params = field(default_factory=Params)
    notes: list = field(default_factory=list)

    def __iter__(self):
        return iter((self.lower, self.upper))

    def covers(self, truth) -> Params:
        """``name -> bool tensor``: where each interval holds the ``truth`` (same labels)."""
        return Params({name: (self.lower[name] <= torch.as_tensor(truth[name]))
                       & (torch.as_tensor(truth[name]) <= self.upper[name])
                       for name in self.lower})


def support(constraint) -> tuple[float, float]:
    """The range of one entry of a parameter with ``constraint`` (for clipping intervals)."""
    if constraint in (constraints.simplex, constraints.unit_interval):
        return 0.0, 1.0
    if constraint is constraints.positive:
        return 0.0, math.inf
    return -math.inf, math.inf


def normal_quantile(q: float) -> float:
    """The standard normal's ``q`` quantile, in float64."""
    return math.sqrt(2.0) * float(torch.special.erfinv(torch.tensor(2 * q - 1,
                                                                     dtype=torch.float64)))


def check_level(level) -> float:
    """A confidence level strictly between 0 and 1."""
    level = check_real(level, "level", low=0.0, open_low=True)
    if level >= 1:
        raise InputError(f"level: expected a number strictly between 0 and 1, got {level:g}")
    return level


@dataclass
class Uncertainty:
    """How sure a fit is about its free parameters.

    Attributes:
        method: ``observed information``, ``louis`` or ``bootstrap (...)``.
        estimates: the free parameters at the fit.
        standard_errors: :class:`StandardErrors`.
        covariance: ``(N, N)`` of the flattened free parameters (natural units); rows and
            columns of unavailable entries are ``inf``.
        information: ``(p, p)`` observed information in the free coordinates (``None``
            for the bootstrap).
        coordinates: ``(p,)`` labels of the free coordinates.
        notes: why entries are unavailable, and anything else worth knowing.
        replicates: the bootstrap's aligned fits, ``name -> (B, *shape)`` (else ``None``).
    """

    method: str
    model: object = field(repr=False)
    estimates: Params = field(repr=False)
    standard_errors: StandardErrors = field(repr=False)
    covariance: torch.Tensor = field(repr=False)
    information: torch.Tensor | None = field(default=None, repr=False)
    coordinates: list = field(default_factory=list, repr=False)
    notes: list = field(default_factory=list)
    replicates: Params | None = field(default=None, repr=False)
    #: every parameter at the estimate, fixed ones included
    params: Params | None = field(default=None, repr=False)
    #: observed information: the free coordinates, those kept and their covariance
    _coords: Coordinates | None = field(default=None, repr=False)
    _keep: list = field(default_factory=list, repr=False)
    _theta_covariance: torch.Tensor | None = field(default=None, repr=False)

    def derived(self, function) -> tuple[torch.Tensor, torch.Tensor]:
        """A quantity computed from the parameters and its standard error: by the delta
        method (its Jacobian in the free coordinates, by autograd), or for the bootstrap
        the spread of its value over the replicates. ``inf`` where it moves along a
        coordinate whose standard error is unavailable.

        Args:
            function: ``Params -> tensor``, e.g. ``lambda p: p["scale_tril"] @
                p["scale_tril"].mT`` (covariances).

        Returns:
            ``(value, standard error)``, both of the function's shape.
        """
        if self.params is None:
            raise InputError("function: this result keeps no parameters to evaluate it at")
        value = torch.as_tensor(function(self.params)).detach()
        if self.replicates is not None:
            fixed = {k: v for k, v in self.params.items() if k not in self.replicates}
            count = len(next(iter(self.replicates.values())))
            values = torch.stack([torch.as_tensor(function(Params(
                {**fixed, **{k: v[b] for k, v in self.replicates.items()}}))).detach()
                for b in range(count)])
            return value, values.std(0)
        coords = self._coords
        theta = coords.theta.detach()

        def flat(th):
            return torch.as_tensor(function(coords.values(th))).reshape(-1)

        with torch.enable_grad():
            jac = torch.autograd.functional.jacobian(flat, theta).reshape(-1, len(theta))
        keep = self._keep
        covariance = jac[:, keep] @ self._theta_covariance @ jac[:, keep].T
        se = torch.diagonal(covariance).clamp_min(0).sqrt()
        dropped = [i for i in range(len(theta)) if i not in keep]
        if dropped:
            size = jac.abs().amax(1).clamp_min(1e-300)
            moves = (jac[:, dropped].abs() > MATERIAL * size[:, None]).any(1)
            se = torch.where(moves, torch.full_like(se, math.inf), se)
        return value, se.reshape(value.shape)

    def intervals(self, level: float = 0.95) -> Intervals:
        """Wald intervals ``estimate +- z se``, clipped to each parameter's support; the
        bootstrap gives percentile intervals of its replicates."""
        level = check_level(level)
        if self.replicates is not None:
            return self._percentile(level)
        z = normal_quantile(0.5 + level / 2)
        lower, upper = Params(), Params()
        for name, value in self.estimates.items():
            low, high = support(self.model.specs[name].constraint)
            se = self.standard_errors[name]
            lower[name] = (value - z * se).clamp(low, high)
            upper[name] = (value + z * se).clamp(low, high)
            lower[name] = torch.where(se.isinf(), torch.full_like(value, low), lower[name])
            upper[name] = torch.where(se.isinf(), torch.full_like(value, high), upper[name])
        return Intervals(lower, upper, level, "wald", self.standard_errors.unavailable,
                         self.notes)

    def _percentile(self, level: float) -> Intervals:
        tail = (1 - level) / 2
        q = torch.tensor([tail, 1 - tail], dtype=torch.float64)
        lower, upper = Params(), Params()
        for name, reps in self.replicates.items():
            bounds = torch.quantile(reps, q, dim=0)
            lower[name], upper[name] = bounds[0], bounds[1]
        return Intervals(lower, upper, level, "percentile", self.standard_errors.unavailable,
                         self.notes)


# -- from an information matrix to standard errors -------------------------------------
def _entries(model, names: list) -> list[tuple[str, tuple]]:
    """``(name, index)`` of every flattened natural entry of the free parameters."""
    out = []
    for name in names:
        shape = model.specs[name].shape
        out += [(name, tuple(i)) for i in torch.cartesian_prod(
            *[torch.arange(s) for s in shape]).reshape(-1, len(shape)).tolist()] if shape else [
            (name, ())]
    return out


def _show(name: str, index: tuple) -> str:
    return f"{name}[{','.join(map(str, index))}]" if index else name


def _boundary_coordinates(coords: Coordinates, params: Params) -> dict[int, str]:
    """Free coordinates whose estimate lies on the boundary of the support, with a note."""
    out, at = {}, 0
    for name in coords.names:
        constraint = coords.model.specs[name].constraint
        index = coords.index[name]
        value = params[name]
        flat = coords.base[name].reshape(-1)[index]
        if constraint is constraints.unit_interval:
            edge = ((value <= BOUNDARY) | (value >= 1 - BOUNDARY)).reshape(-1)[index]
        elif constraint is constraints.simplex:
            k = value.shape[-1]
            offset = torch.arange(k - 1, 0, -1, dtype=flat.dtype).log()  # stick-breaking's
            fraction = torch.sigmoid(coords.base[name] - offset).reshape(-1)[index]
            edge = (fraction <= BOUNDARY) | (fraction >= 1 - BOUNDARY)
        elif constraint is constraints.positive:
            edge = (value <= 1e-300).reshape(-1)[index]
        else:
            edge = torch.zeros(len(index), dtype=torch.bool)
        for i in torch.nonzero(edge).reshape(-1).tolist():
            out[at + i] = "boundary"
        at += len(index)
    return out


def _entry_of(coords: Coordinates, coordinate: int) -> tuple[str, int]:
    """``(parameter name, flat index in its unconstrained tensor)`` of a free coordinate."""
    at = 0
    for name in coords.names:
        m = len(coords.index[name])
        if coordinate < at + m:
            return name, int(coords.index[name][coordinate - at])
        at += m
    raise IndexError(coordinate)


def _component_of(coords: Coordinates, coordinate: int) -> int | None:
    """The mixture component a free coordinate belongs to (``None``: a shared parameter,
    or the mixing weights, whose stick-breaking coordinates span components)."""
    name, flat = _entry_of(coords, coordinate)
    spec = coords.model.specs[name]
    if not spec.per_component or name == MIXING:
        return None
    return flat // math.prod(coords.base[name].shape[1:])


def assess(coords: Coordinates, params: Params, information: torch.Tensor,
           gradient: torch.Tensor, method: str) -> Uncertainty:
    """Standard errors from an information matrix in the free coordinates.

    Args:
        coords: the free coordinates at ``params``.
        params: the estimate (every parameter).
        information: ``(p, p)`` minus the Hessian of the log-likelihood.
        gradient: ``(p,)`` its gradient at ``params`` (~0 at a stationary point).
        method: a name for reports.
    """
    model = coords.model
    p = len(coords.theta)
    entries = _entries(model, coords.names)
    jac = natural_jacobian(coords)  # (N, p)
    flags = _boundary_coordinates(coords, params)
    notes: list[str] = []
    if not bool(torch.isfinite(information).all()) or not bool(torch.isfinite(gradient).all()):
        bad = ~(torch.isfinite(information).all(0) & torch.isfinite(gradient))
        flags.update({i: "singular" for i in torch.nonzero(bad).reshape(-1).tolist()
                      if i not in flags})
        information = torch.nan_to_num(information, nan=0.0, posinf=0.0, neginf=0.0)
        gradient = torch.nan_to_num(gradient, nan=0.0, posinf=0.0, neginf=0.0)
    diag = torch.diagonal(information)
    for i in range(p):
        if i in flags:
            continue
        if diag[i] <= 0:
            flags[i] = "stationary" if abs(float(gradient[i])) > 0 else "singular"
        elif abs(float(gradient[i])) > STATIONARY * math.sqrt(float(diag[i])):
            flags[i] = "stationary"
    while True:  # drop singular directions until the rest is positive definite
        keep = [i for i in range(p) if i not in flags]
        if not keep:
            break
        sub = information[keep][:, keep]
        scale = torch.diagonal(sub).sqrt()
        values, vectors = torch.linalg.eigh(sub / scale[:, None] / scale[None, :])
        top = float(values.abs().max())
        bad = values <= RCOND * top
        if not bool(bad.any()):
            break
        for kind, which in (("saddle", values < -RCOND * top), ("singular", bad)):
            loads = vectors[:, which].abs()
            hit = (loads >= 0.1 * loads.amax(0, keepdim=True)).any(1) if bool(which.any()) \
                else torch.zeros(len(keep), dtype=torch.bool)
            for j in torch.nonzero(hit).reshape(-1).tolist():
                flags.setdefault(keep[j], kind)
    keep = [i for i in range(p) if i not in flags]
    cov_theta = theta_covariance(information, keep)
    # short of the maximum: the Newton step to it exceeds a standard error (taken with the
    # coordinates whose own score failed, where the information stays positive definite)
    rising = sorted(keep + [i for i, r in flags.items() if r == "stationary"])
    step_on = rising if positive_definite(information, rising) else keep
    if step_on:
        step_cov = theta_covariance(information, step_on)
        newton = step_cov @ gradient[step_on]
        spread = torch.diagonal(step_cov).clamp_min(0).sqrt()
        short = [step_on[j] for j in torch.nonzero(newton.abs() > STATIONARY * spread)
                 .reshape(-1).tolist() if step_on[j] not in flags]
        if short:
            flags.update({i: "stationary" for i in short})
            keep = [i for i in range(p) if i not in flags]
            cov_theta = theta_covariance(information, keep)
    j_keep = jac[:, keep]
    covariance = j_keep @ cov_theta @ j_keep.T
    unavailable = torch.zeros(len(entries), dtype=torch.bool)
    # an entry moving (materially) along a flagged coordinate has no standard error
    size = jac.abs().amax(1, keepdim=True).clamp_min(1e-300)
    for i in flags:
        unavailable |= jac[:, i].abs() > MATERIAL * size[:, 0]
    # ... nor does every entry of a collapsed or empty component
    components = {_component_of(coords, i) for i, r in flags.items() if r == "stationary"}
    if any(r == "boundary" and _entry_of(coords, i)[0] == MIXING for i, r in flags.items()):
        weights = params[MIXING]  # an empty component: nothing identifies its parameters
        components |= {j for j in range(weights.shape[-1]) if weights[j] <= BOUNDARY}
    components.discard(None)
    for e, (name, index) in enumerate(entries):
        if index and index[0] in components and model.specs[name].per_component:
            unavailable[e] = True
    notes += _notes(coords, params, entries, flags, unavailable, components)
    se = torch.diagonal(covariance).clamp_min(0).sqrt()
    se = torch.where(unavailable, torch.full_like(se, math.inf), se)
    covariance = torch.where(unavailable[:, None] | unavailable[None, :],
                             torch.full_like(covariance, math.inf), covariance)
    estimates = Params({name: params[name] for name in coords.names})
    standard = StandardErrors(_unflatten(model, coords.names, se), method,
                              _unflatten(model, coords.names, unavailable), notes)
    return Uncertainty(method, model, estimates, standard, covariance, information,
                       list(coords.labels), notes, None, Params(params), coords, keep, cov_theta)


def positive_definite(information: torch.Tensor, keep: list[int]) -> bool:
    """Whether the information restricted to ``keep`` is (numerically) positive definite."""
    if not keep:
        return False
    sub = information[keep][:, keep]
    scale = torch.diagonal(sub).clamp_min(1e-300).sqrt()
    _, info = torch.linalg.cholesky_ex(sub / scale[:, None] / scale[None, :])
    return bool(info == 0) and bool((torch.diagonal(sub) > 0).all())


def theta_covariance(information: torch.Tensor, keep: list[int]) -> torch.Tensor:
    """``(m, m)`` inverse of the information restricted to the ``keep`` coordinates (the
    others held at their estimates), through a Cholesky factor of the scaled matrix."""
    if not keep:
        return information.new_zeros(0, 0)
    sub = information[keep][:, keep]
    scale = torch.diagonal(sub).sqrt()
    factor = torch.linalg.cholesky(sub / scale[:, None] / scale[None, :])
    eye = torch.eye(len(keep), dtype=sub.dtype)
    inverse = torch.cholesky_solve(eye, factor)
    return inverse / scale[:, None] / scale[None, :]


def _unflatten(model, names: list, flat: torch.Tensor) -> Params:
    out, at = Params(), 0
    for name in names:
        shape = model.specs[name].shape
        size = math.prod(shape)
        out[name] = flat[at: at + size].reshape(shape)
        at += size
    return out


def _notes(coords, params, entries, flags, unavailable, components) -> list[str]:
    """Plain words for the user: what is unavailable and why."""
    notes = []
    edges = []
    for name, index in entries:
        value = float(params[name][index])
        constraint = coords.model.specs[name].constraint
        bounded = constraint in (constraints.unit_interval, constraints.simplex)
        if (bounded and (value <= BOUNDARY or value >= 1 - BOUNDARY)) or (
                constraint is constraints.positive and value <= 1e-300):
            edges.append((name, index, value))

    def which(reason):
        return [coords.labels[i] for i, r in sorted(flags.items()) if r == reason]

    if which("boundary"):
        notes.append("standard errors: estimate(s) on the boundary of their support ("
                     + ", ".join(f"{_show(n, i)} = {v:.3g}" for n, i, v in edges)
                     + "): no standard error there; the others treat them as fixed")
    if components:
        along = ", ".join(which("stationary"))
        notes.append("standard errors: "
                     + (f"not at a stationary point along {along} (the log-likelihood still "
                        "rises there by more than a standard error: the fit is short of its "
                        "maximum, or a component sits on a floor such as reg_covar); "
                        if along else "a weight at 0 (an empty component); ")
                     + "component(s) " + ", ".join(map(str, sorted(components)))
                     + " are unavailable")
    if which("singular"):
        notes.append("standard errors: the information is singular or near-singular along "
                     + ", ".join(which("singular")) + " (the data cannot tell these "
                     "parameters apart): entries moving along it are unavailable")
    if which("saddle"):
        notes.append("standard errors: the log-likelihood curves upwards along "
                     + ", ".join(which("saddle")) + " (a saddle point, not a maximum: a "
                     "better fit exists nearby): entries moving along it are unavailable")
    if bool(unavailable.any()):
        shown = [_show(n, i) for (n, i), u in zip(entries, unavailable.tolist()) if u]
        more = f" and {len(shown) - 12} more" if len(shown) > 12 else ""
        notes.append("standard errors unavailable (reported as inf; null in JSON): "
                     + ", ".join(shown[:12]) + more)
    return notes


# -- the two ways to the information -----------------------------------------------------
def _prepare(model, data, params, name: str = "params"):
    data = model.check_data(data)
    params = model.check_params(params, name)
    if params.batch_shape(model.specs):
        raise InputError(f"{name}: expected one parameter set, got a restart batch")
    coords = Coordinates.at(model, params)
    if len(coords.theta) == 0 and not coords.names:
        raise InputError(f"{name}: the model has no free parameters (all are fixed)")
    return data, params, coords


def observed_information(model, data, params, assignments=None) -> Uncertainty:
    """Standard errors from the Hessian of the program's log-likelihood (see the module).

    Args:
        model: a model.
        data: ``(n, ...)`` the data the parameters were fitted to.
        params: the estimate (one parameter set).
        assignments: ``(n,)`` known component labels: the program is conditioned on them
            (complete-data maximum likelihood), else they are summed out.
    """
    data, params, coords = _prepare(model, data, params)
    if assignments is not None:
        labels = torch.as_tensor(assignments)
        if labels.shape != (model.n_observations(data),) or labels.is_floating_point() or bool(
                ((labels < 0) | (labels >= model.k)).any()):
            raise InputError(f"assignments: expected {model.n_observations(data)} labels in "
                             f"[0, {model.k})")
        assignments = labels.long()

    def objective(theta):
        return log_objective(model, data, coords.values(theta), assignments)

    hessian, gradient = _hessian_and_gradient(objective, coords.theta)
    return assess(coords, params, -hessian, gradient, "observed information")


def louis_information(model, data, params) -> Uncertainty:
    """Standard errors from Louis' method: complete-data information minus the missing
    information, both from the E-step (the model's hand-written ``joint``).

    With ``s_nj`` the score of ``log p(x_n, z_n = j)`` and ``r_nj`` the responsibilities,
    ``I = -sum r_nj d2 log p(x_n, z_n = j) - sum_n (sum_j r_nj s_nj s_nj^T - g_n g_n^T)``
    where ``g_n = sum_j r_nj s_nj`` is observation n's score.
    """
    data, params, coords = _prepare(model, data, params)
    prepared = model.prepare(data, model.shift(data))

    def joint(theta):  # (n, k)
        return model.joint(prepared, coords.values(theta))

    theta = coords.theta.detach().clone().requires_grad_()
    with torch.enable_grad(), warnings.catch_warnings():
        # models may read a float off a tensor (a round-off bound): harmless here
        warnings.filterwarnings("ignore", "Converting a tensor with requires_grad")
        table = joint(theta)
        resp = torch.softmax(table.detach(), -1)
        probe = torch.zeros_like(table, requires_grad=True)
        (pulled,) = torch.autograd.grad(table, theta, grad_outputs=probe, create_graph=True)
        scores = [torch.autograd.grad(pulled[i], probe, retain_graph=True)[0]
                  for i in range(len(theta))]
    scores = torch.stack(scores, -1) if scores else table.new_zeros(*table.shape, 0)  # (n,k,p)

    def expected(theta):  # with priors: plus the log prior (its curvature and score)
        return (resp * joint(theta)).sum() + log_prior_of(model, coords.values(theta))

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Converting a tensor with requires_grad")
        complete, score = _hessian_and_gradient(expected, coords.theta)
    per_point = torch.einsum("nk,nkp->np", resp, scores)  # (n, p)
    missing = (torch.einsum("nk,nkp,nkq->pq", resp, scores, scores)
               - per_point.T @ per_point)
    information = -complete - missing
    information = 0.5 * (information + information.T)
    return assess(coords, params, information, score, "louis")


# -- from a fit -----------------------------------------------------------------------------
def uncertainty(fit, method: str = "observed", data=None, **options) -> Uncertainty:
    """How sure ``fit`` is (cached on the fit per method and options).

    Args:
        fit: a :class:`~inference.fit.Fit`.
        method: ``observed`` (observed information, the default), ``louis`` or
            ``bootstrap`` (see :func:`inference.bootstrap.bootstrap` for its options).
        data: the training data, for a fit that does not keep them (a loaded fit).

    Notes about unavailable entries are added to ``fit.notes`` (once).
    """
    if method not in METHODS:
        raise InputError(f"method: expected one of {list(METHODS)}, got {method!r}")
    if method != "bootstrap" and options:
        raise InputTypeError(f"{method} standard errors take no options "
                             f"{sorted(options)}")
    if data is None:
        data = fit.data
        if data is None:
            raise InputError("data: this fit keeps no training data (a loaded fit); pass the "
                             "data it was fitted to")
    cache = fit.__dict__.setdefault("_uncertainty", {})
    key = (method, tuple(sorted(options.items())), id(data))
    if key not in cache:
        if method == "observed":
            result = observed_information(fit.model, data, fit.params)
        elif method == "louis":
            result = louis_information(fit.model, data, fit.params)
        else:
            from .bootstrap import bootstrap

            result = bootstrap(fit.model, data, fit.params, **options)
        if getattr(fit, "hard", False):
            note = ("standard errors: a hard-EM fit maximises the classification likelihood; "
                    "these are of the marginal likelihood at its estimate")
            result.notes.append(note)
            result.standard_errors.notes.append(note)
        cache[key] = result
    result = cache[key]
    for note in result.notes:
        if note not in fit.notes:
            fit.notes.append(note)
    return result
