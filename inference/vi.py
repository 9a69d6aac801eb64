"""Fitting by Pyro's TraceEnum_ELBO over the model's own program.

The globals are ``pyro.param`` sites seeded from the same ``init`` as EM, with
the constraints of the model's specs; the guide is empty and every discrete
latent site of the program is enumerated (as EM's E-step enumerates it), so
``-loss`` is exactly the marginal log-likelihood and the objective is
deterministic: L-BFGS is as legitimate as Adam. Pyro's global param store is
scoped: a fit neither sees nor leaves params.

Pyro validates the program on the first step; warnings raised during a fit
become the fit's ``notes`` rather than being printed or lost.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import pyro
import torch
from pyro import poutine
from pyro.infer import JitTraceEnum_ELBO, TraceEnum_ELBO, config_enumerate

from ..models.hmm import HMM
from ..models.params import Params, interior
from ..models.validation import InputError, check_bool, check_callable, precision_notes
from .device import check_same_device
from .fit import Fit, Progress, warnings_as_notes
from .guides import make_guide, posterior_summary, program_with_priors, site_params
from .intraop import serial_when_small
from .ondisk import Shards, check_rows
from .options import EM, OPTIMIZERS, VI  # noqa: F401 (OPTIMIZERS: public)

DEFAULT_LR = {"adam": 0.05, "lbfgs": 1.0}
DEFAULT_PATIENCE = {"adam": 10, "lbfgs": 1}
#: evaluations of the objective before it is compiled (JitTraceEnum_ELBO): tracing the
#: program costs about 15-20 evaluations and then saves a third to a half of each (the
#: Python of Pyro's machinery), so a fit shorter than this never pays for it
JIT_AFTER = 50


def pyro_objective(model, fixed: Params, free: dict):
    """The ``(model, guide)`` pair: globals as ``pyro.param`` with the specs' constraints.

    Every discrete latent site of the program is enumerated in parallel (a site
    that already says how it is enumerated keeps its setting).

    Args:
        model: the latent model whose ``program`` is used.
        fixed: values passed through as constants (fixed parameters).
        free: ``name -> initial value`` of the parameters to learn.
    """
    program = config_enumerate(model.program, "parallel")

    def pyro_model(data):
        values = Params(fixed)
        for name, value in free.items():
            values[name] = pyro.param(name, value, constraint=model.specs[name].constraint)
        program(values, data)

    def guide(data):  # every global is a point estimate; the assignments are enumerated
        pass

    return pyro_model, guide


@dataclass
class VIOptions:
    """Validated arguments of :func:`fit_vi` (one place for their checks)."""

    optimizer: str
    lr: float
    steps: int
    tol: float | None
    patience: int
    callback: Callable | None
    record_params: bool

    @classmethod
    def check(cls, optimizer, lr, steps, tol, patience, callback, record_params) -> VIOptions:
        optimizer = VI["optimizer"].check(optimizer, "optimizer")
        lr = VI["lr"].check(lr, "lr")
        patience = VI["patience"].check(patience, "patience")
        callback = None if callback is None else check_callable(callback, "callback")
        return cls(optimizer, DEFAULT_LR[optimizer] if lr is None else lr,
                   VI["steps"].check(steps, "steps"), VI["tol"].check(tol, "tol"),
                   DEFAULT_PATIENCE[optimizer] if patience is None else patience, callback,
                   check_bool(record_params, "record_params"))


@dataclass
class VIRun:
    """What one optimisation records: objectives ``(*batch,)`` per step, times, params."""

    objectives: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    trace: list = field(default_factory=list)
    final: Params | None = None
    small: int = 0
    stopped: int | None = None
    converged: bool = False
    evaluations: int = 0
    notes: list = field(default_factory=list)


class Objective:
    """TraceEnum_ELBO of the model's program (with its priors' sample sites and a guide
    when ``posterior`` is not ``"point"``), its leaves and snapshots of the parameters."""

    def __init__(self, model, data, params: Params, posterior: str = "point"):
        self.model, self.data, self.posterior = model, data, posterior
        self.batch = params.batch_shape(model.specs)
        self.fixed = Params({k: v for k, v in params.items() if model.specs[k].fixed})
        self.free = {k: interior(v, model.specs[k].constraint).clone() for k, v in params.items()
                     if not model.specs[k].fixed}
        if not self.free:
            raise InputError("init: the model has no free parameters to fit")
        if posterior == "point":
            self.pyro_model, self.guide = pyro_objective(model, self.fixed, self.free)
        else:
            self.pyro_model = program_with_priors(model, self.fixed, self.free)
            self.guide = make_guide(posterior, self.pyro_model, model, params)
        # one sample of the globals per step for a posterior guide (Adam averages the noise)
        self.elbo = TraceEnum_ELBO(max_plate_nesting=model.plate_nesting(params))
        self.compiled: JitTraceEnum_ELBO | None = None

    def leaves(self) -> list[torch.Tensor]:
        sampled = {name for site in self.model.prior_sites() for name in site.targets}
        for name, value in self.free.items():
            if self.posterior == "point" or name not in sampled:
                pyro.param(name, value, constraint=self.model.specs[name].constraint)
        if self.posterior != "point":
            self.guide(self.data)  # creates the guide's parameters
        return [p for _, p in pyro.get_param_store().named_parameters()]

    def loss(self) -> torch.Tensor:
        elbo = self.compiled or self.elbo
        with torch.jit.optimized_execution(False):  # no profiling runs: traced once, run as is
            return elbo.differentiable_loss(self.pyro_model, self.guide, self.data)

    def compile(self, leaves: list[torch.Tensor], loss: torch.Tensor) -> bool:
        """Switch to the compiled objective (JitTraceEnum_ELBO) if it is the same function.

        Only a deterministic objective (a point or MAP fit) is compiled. ``loss`` and the
        leaves' gradients are those of the current point: the compiled objective is kept
        only if it gives them bitwise (a Gaussian's ``d log(2 pi)`` kept in single
        precision by the tracer, say, fails this). The trace freezes the program's Python
        branches on the data (missing-entry patterns), which stay fixed during a fit; the
        tracer's warnings about them are dropped. Leaves the gradients as they were.

        Returns:
            Whether the objective is compiled from now on.
        """
        if self.posterior not in ("point", "map"):
            return False
        elbo = JitTraceEnum_ELBO(max_plate_nesting=self.elbo.max_plate_nesting)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                same = self._agrees(elbo, leaves, loss)
        except Exception:  # a program the tracer cannot follow: keep Pyro's plain objective
            same = False
        self.compiled = elbo if same else None
        return same

    def _agrees(self, elbo, leaves: list[torch.Tensor], loss: torch.Tensor) -> bool:
        """Whether ``elbo`` gives ``loss`` and the leaves' gradients, bitwise (the leaves'
        gradients are restored)."""
        grads = [None if leaf.grad is None else leaf.grad.clone() for leaf in leaves]
        for leaf in leaves:
            leaf.grad = None
        try:
            with torch.jit.optimized_execution(False), pyro.validation_enabled(False):
                other = elbo.differentiable_loss(self.pyro_model, self.guide, self.data)
                other.backward()
            return torch.equal(other.detach(), loss.detach()) and all(
                _same(leaf.grad, grad) for leaf, grad in zip(leaves, grads))
        finally:
            for leaf, grad in zip(leaves, grads):
                leaf.grad = grad

    def verify(self, leaves: list[torch.Tensor], loss: torch.Tensor) -> bool:
        """Whether Pyro's plain objective still agrees with the compiled one at the current
        point (``loss`` and gradients from the compiled one); if not, the plain one is used
        from now on."""
        if self._agrees(self.elbo, leaves, loss):
            return True
        self.compiled = None
        return False

    def backward(self, loss: torch.Tensor, leaves: list[torch.Tensor]) -> torch.Tensor:
        """Gradients of ``loss`` into ``leaves``; returns the objective's loss (a
        distributed objective sums both over processes: inference/distributed.py)."""
        loss.backward()
        return loss

    def n_observations(self) -> int:
        """Observations of the whole objective (the unit of the convergence rule)."""
        return self.model.n_observations(self.data)

    def snapshot(self) -> Params:
        """The current parameters (for a posterior guide: its medians)."""
        with torch.no_grad():
            store = dict(pyro.get_param_store().items())  # each constrained once
            values = Params(self.fixed)
            for name in self.free:
                if name in store:
                    values[name] = store[name].detach().clone()
            if self.posterior != "point":
                medians = {k: v.detach().clone() for k, v in self.guide.median().items()}
                values.update(site_params(self.model, medians))
            return Params({k: values[k] for k in self.model.specs})

    def per_restart(self, loss: torch.Tensor, values: Params) -> torch.Tensor:
        """The objective of each restart: ``-loss`` for one start; for a restart plate,
        the program's own enumerated trace summed per restart (the ELBO is their sum)."""
        if not self.batch:
            return -loss.detach()
        with torch.no_grad():
            return restart_log_likelihoods(self.model, self.data, values)


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


def restart_log_likelihoods(model, data, params: Params) -> torch.Tensor:
    """``(R,)`` each restart's marginal log-likelihood, from one enumerated trace of the
    program on its restart plate: log-probabilities of every site summed, the (single)
    enumerated assignment summed out, the data plate summed."""
    if isinstance(model, HMM):  # a chain of enumerated states: its DiscreteHMM program
        # sums them out in one trace, every restart at once (the markov program would
        # take one trace per restart)
        trace = poutine.trace(model.discrete_hmm_program).get_trace(params, data)
        trace.compute_log_prob()
        total = sum(site["log_prob"] for site in trace.nodes.values()
                    if site["type"] == "sample")
        return total.reshape(params.batch_shape(model.specs)[0], -1).sum(-1)
    nesting = model.plate_nesting(params)
    program = poutine.enum(config_enumerate(model.program, "parallel"),
                           first_available_dim=-1 - nesting)
    trace = poutine.trace(program).get_trace(params, data)
    trace.compute_log_prob()
    sites = [site for site in trace.nodes.values() if site["type"] == "sample"]
    enumerated = {site["infer"].get("_enumerate_dim") for site in sites} - {None}
    if len(enumerated) != 1:  # a chain of enumerated states (an HMM): each restart alone
        return torch.stack([_one_restart(model, data, params.select(r, model.specs))
                            for r in range(params.batch_shape(model.specs)[0])])
    total = sum(site["log_prob"] for site in sites)
    return total.logsumexp(enumerated.pop()).sum(-1).reshape(-1)


def _one_restart(model, data, params: Params) -> torch.Tensor:
    """``-TraceEnum_ELBO`` of the program at one parameter set (no guide sites)."""
    def guide(*args, **kwargs):
        pass

    elbo = TraceEnum_ELBO(max_plate_nesting=model.plate_nesting(params))
    program = config_enumerate(model.program, "parallel")
    value = -elbo.loss(lambda d: program(params, d), guide, data)
    return torch.as_tensor(value, dtype=next(iter(params.values())).dtype)


def make_optimizer(options: VIOptions, leaves):
    if options.optimizer == "adam":
        return torch.optim.Adam(leaves, lr=options.lr)
    return torch.optim.LBFGS(leaves, lr=options.lr, max_iter=1, max_eval=25, history_size=20,
                             tolerance_grad=1e-14, tolerance_change=1e-15,
                             line_search_fn="strong_wolfe")


def _finite(loss, values: Params) -> bool:
    """Loss and every parameter finite: one host round-trip (a GPU waits once)."""
    flags = [torch.isfinite(loss).all()] + [torch.isfinite(v).all() for v in values.values()]
    return bool(torch.stack(flags).all())


def _record(run: VIRun, objective: Objective, loss, values: Params, options: VIOptions,
            seconds: float, method: str) -> None:
    """One step's numbers; ``seconds``: since the start, when its objective was computed."""
    run.objectives.append(objective.per_restart(loss, values))
    run.seconds.append(seconds)
    if options.record_params:
        run.trace.append(values)
    run.final = values
    if options.callback is not None:
        value = run.objectives[-1]
        best = float(value.max()) if value.dim() else float(value)
        options.callback(Progress(method, len(run.objectives) - 1, options.steps, best,
                                  run.seconds[-1]))


def _small_change(run: VIRun, options: VIOptions, n: int) -> bool:
    """Unit-free rule (as EM's): the objective per observation changed by at most ``tol``."""
    if options.tol is None or len(run.objectives) < 2:
        return False
    change = float((run.objectives[-1] - run.objectives[-2]).abs().max()) / n
    run.small = run.small + 1 if change <= options.tol else 0
    return run.small >= options.patience


class Evaluations:
    """The closure of the optimiser: loss and gradients at the current point, remembered.

    L-BFGS evaluates the point it starts a step from, and that point is the one its
    previous line search accepted (and evaluated); the final evaluation after convergence
    is that point again. An evaluation at a point seen in this or the previous step (the
    leaves bitwise equal) is answered from memory: the same loss and gradients, so the
    iterates are exactly those of evaluating again. The first evaluation runs with Pyro's
    validation on (the program checked once, at the initial point), later ones without
    (line searches may try points off the support). After :data:`JIT_AFTER`
    evaluations the objective is compiled, if the compiled one is the same function
    (:meth:`Objective.compile`).

    Attributes:
        count: evaluations of the objective (answers from memory not counted).
        compiled: whether the objective is compiled; it is checked against Pyro's plain
            one every :data:`JIT_AFTER` evaluations.
        diverged: the evaluation at which the compiled objective stopped agreeing with
            the plain one (the plain one is used from there on), if it did.
        known_at: when (``time.perf_counter``) the value the step started from was
            computed: for L-BFGS, during the previous step's line search. A step's
            objective is timed then, as EM's is timed by the E-step that computes it.
    """

    def __init__(self, objective: Objective, leaves: list[torch.Tensor], remember: bool):
        self.objective, self.leaves, self.remember = objective, leaves, remember
        self.count = 0
        self.compiled = False
        self.diverged: int | None = None
        self.known_at = 0.0
        self._first = True
        self._previous: list = []
        self._current: list = []

    def new_step(self) -> None:
        """Forget the points of the step before last."""
        self._previous, self._current = self._current, []
        self._first = True

    def _recall(self):
        for point, loss, grads, at in self._current + self._previous:
            if all(torch.equal(a, b) for a, b in zip(point, self.leaves)):
                return loss, grads, at
        return None

    def __call__(self) -> torch.Tensor:
        first, self._first = self._first, False
        known = self._recall() if self.remember else None
        if known is not None:
            loss, grads, at = known
            for leaf, grad in zip(self.leaves, grads):
                leaf.grad = None if grad is None else grad.clone()
            if first:
                self.known_at = at
            return loss
        for leaf in self.leaves:
            leaf.grad = None
        with pyro.validation_enabled(self.count == 0):
            loss = self.objective.loss()
        loss = self.objective.backward(loss, self.leaves)
        self.count += 1
        if self.count == JIT_AFTER:
            self.compiled = self.objective.compile(self.leaves, loss)
        elif self.compiled and self.count % JIT_AFTER == 0:  # the same function still?
            self.compiled = self.objective.verify(self.leaves, loss)
            self.diverged = None if self.compiled else self.count
        at = time.perf_counter()
        if first:
            self.known_at = at
        if self.remember:
            self._current.append(([leaf.detach().clone() for leaf in self.leaves],
                                  loss.detach(), [None if leaf.grad is None else
                                                  leaf.grad.clone() for leaf in self.leaves], at))
        return loss


def _optimize(objective: Objective, options: VIOptions, run: VIRun, method: str) -> None:
    """The steps; L-BFGS evaluates at the current point first, and that value is recorded."""
    leaves = objective.leaves()
    opt = make_optimizer(options, leaves)
    closure = Evaluations(objective, leaves, remember=options.optimizer == "lbfgs")
    n = objective.n_observations()
    start = time.perf_counter()
    for step in range(options.steps + 1):
        values = objective.snapshot()
        closure.new_step()
        if options.optimizer == "adam" or step == options.steps:
            loss = closure()
        else:
            loss = opt.step(closure)
        if not _finite(loss, values):  # the likelihood is unbounded: stop, keep the last
            run.stopped = step
            break
        _record(run, objective, loss, values, options, closure.known_at - start, method)
        if step == options.steps:
            break
        if _small_change(run, options, n):
            run.converged = True
            if options.optimizer == "lbfgs":  # the point after the last step
                values = objective.snapshot()
                closure.new_step()
                loss = closure()
                if _finite(loss, values):
                    _record(run, objective, loss, values, options, closure.known_at - start,
                            method)
            break
        if options.optimizer == "adam":
            opt.step()
    run.evaluations = closure.count
    if closure.diverged is not None:
        run.notes.append(f"the compiled objective (JitTraceEnum_ELBO) stopped agreeing with "
                         f"Pyro's at evaluation {closure.diverged}; Pyro's was used from there")


def fit_vi(model, data, init, *, optimizer: str = VI["optimizer"].default,
           lr: float | None = VI["lr"].default, steps: int = VI["steps"].default,
           tol: float | None = VI["tol"].default, patience: int | None = VI["patience"].default,
           posterior: str | None = VI["posterior"].default,
           batch_size: int | None = VI["batch_size"].default, seed: int = VI["seed"].default,
           chunk_size: int | None = None, callback: Callable[[Progress], None] | None = None,
           record_params: bool = True) -> Fit:
    """Fit ``model`` to ``data`` by maximising TraceEnum_ELBO from ``init``.

    Args:
        model: a model (see :mod:`models.base`).
        data: ``(n, ...)`` observations.
        init: initial parameters; a restart batch ``(R, ...)`` becomes a restart
            plate, so one program fits every restart at once (a program written for
            one parameter set fits them one after another).
        optimizer: ``lbfgs`` (strong-Wolfe line search; the default) or ``adam``.
        lr: learning rate (default 1.0 for L-BFGS, 0.05 for Adam).
        steps: most optimiser steps.
        tol: stop when the objective per observation changes by at most ``tol``
            (unit-free, as EM) for ``patience`` consecutive steps (``None``: run all).
        patience: consecutive small changes required (default 1 for L-BFGS, 10 for Adam).
        posterior: ``point`` (globals as ``pyro.param``: maximum likelihood), ``map`` (the
            model's priors as ``pyro.sample`` sites with an ``AutoDelta`` guide: MAP, as
            MAP-EM), ``normal`` / ``mvn`` (``AutoNormal`` / ``AutoMultivariateNormal``
            posteriors; ``fit.posterior`` holds means and sds). Default: ``map`` when the
            model has priors, else ``point``.
        batch_size: mini-batch VI (Adam; ``point`` or ``map``): each step sees this many
            random rows, the terms of the program's data plate scaled by ``n / batch_size``
            (an unbiased loss and gradient); ``steps`` then counts mini-batches, ``tol`` does
            not apply, and the objective is the full data's after every pass (see
            :mod:`inference.minibatch`). ``None``: all rows every step.
        seed: the order of the mini-batches (a private generator).
        chunk_size: mini-batch VI: observations per chunk of the full-data objective after
            each pass (as :func:`fit_em`'s); ignored without ``batch_size``.
        callback: called with a :class:`Progress` after every step.
        record_params: keep the parameters of every step in ``param_trace``.
    """
    notes = precision_notes(data)
    data = check_rows(model, data)
    model.check_fit_data(data)
    params = model.check_params(init, "init")
    check_same_device(data, params)
    options = VIOptions.check(optimizer, lr, steps, tol, patience, callback, record_params)
    posterior = check_posterior(model, VI["posterior"].check(posterior, "posterior"), options)
    batch_size = VI["batch_size"].check(batch_size, "batch_size")
    seed = VI["seed"].check(seed, "seed")
    if batch_size is None and isinstance(data, Shards):
        raise InputError("batch_size: data in several files (shards) are fitted by mini-batch "
                         "VI only: give batch_size")
    minibatch = None if batch_size is None else (
        batch_size, seed, EM["chunk_size"].check(chunk_size, "chunk_size"))
    return run_vi(model, data, params, options, posterior, notes, minibatch=minibatch)


def run_vi(model, data, params: Params, options: VIOptions, posterior: str, notes: list,
           objective_type=None, minibatch: tuple | None = None) -> Fit:
    """The optimisation on checked ``data`` and ``params`` (see :func:`fit_vi`);
    ``objective_type``: the :class:`Objective` class (a distributed one sums over
    processes), ``None`` for :class:`Objective`; ``minibatch``: ``(batch_size, seed,
    chunk_size)`` for mini-batch VI, ``None`` for all rows every step."""
    objective_type = objective_type or Objective
    batch = params.batch_shape(model.specs)
    if len(batch) > 1:
        raise InputError(f"init: expected at most one restart dimension, got batch {batch}")
    if batch and (model.plate_nesting(params) < 2 or posterior != "point"):
        # a program written for one parameter set, or sampled globals: one start at a time
        fits = [run_vi(model, data, params.select(b, model.specs), options, posterior,
                       list(notes), objective_type, minibatch) for b in range(batch[0])]
        return one_of(fits)
    if minibatch is not None:
        from .minibatch import fit_minibatch

        batch_size, seed, chunk_size = minibatch
        elements = (batch[0] if batch else 1) * model.k * min(batch_size,
                                                              model.n_observations(data))
        with warnings_as_notes(notes), serial_when_small(elements):
            return fit_minibatch(model, data, params, options, posterior, batch_size, seed,
                                 notes, chunk_size)
    method = f"vi-{options.optimizer}" if posterior == "point" else (
        f"vi-{posterior}-{options.optimizer}")
    run, summary = VIRun(), None
    elements = (batch[0] if batch else 1) * model.k * model.n_observations(data)
    with pyro.get_param_store().scope(), warnings_as_notes(notes), serial_when_small(elements):
        objective = objective_type(model, data, params, posterior)
        _optimize(objective, options, run, method)
        if posterior in ("normal", "mvn") and run.final is not None:
            summary = posterior_summary(objective.guide, model, run.final)
    notes += run.notes
    if run.final is None:
        raise InputError("init: TraceEnum_ELBO's objective is not finite at the initial "
                         "parameters")
    if run.stopped is not None:
        notes.append(f"stopped at step {run.stopped}: the objective became non-finite (the "
                     "likelihood is unbounded, e.g. a component collapsing onto a point); "
                     "the last finite parameters are reported")
    elif options.tol is not None and not run.converged:
        notes.append(f"not converged: {options.steps} steps taken before the objective per "
                     f"observation changed by at most tol={options.tol:g}; raise steps")
    fit = _result(model, data, run, batch, method, notes)
    if posterior != "point":  # the objective is the log posterior (or an ELBO): report the
        from .enumeration import pyro_log_likelihood  # log-likelihood itself beside it

        fit.log_likelihood = pyro_log_likelihood(model, data, fit.params)
        fit.posterior = summary
    return fit


def check_posterior(model, posterior: str | None, options: VIOptions) -> str:
    """The posterior kind for ``model``: ``map`` by default with priors, else ``point``."""
    if posterior is None:
        return "map" if model.prior else "point"
    if posterior != "point" and not model.prior:
        raise InputError(f"posterior: {posterior!r} needs priors: build the model with "
                         "prior={...} (see emvi.models.priors), or use 'point'")
    if posterior in ("normal", "mvn") and options.optimizer == "lbfgs":
        raise InputError(f"optimizer: the {posterior} posterior's objective is stochastic "
                         "(it samples the globals): use optimizer='adam'")
    return posterior


def _result(model, data, run: VIRun, batch, method: str, notes: list) -> Fit:
    from .em import best_restart

    table = torch.stack(run.objectives)  # (T, *batch)
    final = table[-1].reshape(-1)
    best = best_restart(final)
    pick = (lambda t: t[:, best]) if batch else (lambda t: t)
    params = run.final.select(best, model.specs)
    notes += model.diagnose(data, params)
    return Fit(
        model=model,
        method=method,
        params=params,
        log_likelihood=float(final[best]),
        objective=pick(table),
        log_likelihood_trace=pick(table),
        seconds=torch.tensor(run.seconds, dtype=torch.float64),
        iterations=len(run.objectives) - 1,
        converged=run.converged and run.stopped is None,
        data=data,
        param_trace=[p.select(best, model.specs) for p in run.trace] if run.trace else None,
        restart_log_likelihoods=final.detach().clone(),
        restart_objectives=final.detach().clone(),
        restart_converged=[run.converged and run.stopped is None] * final.numel(),
        best_restart=best,
        m_step="none",
        notes=notes,
    )


def one_of(fits: list[Fit]) -> Fit:
    """The best of separately fitted restarts, with every restart's numbers kept."""
    from .em import best_restart

    finals = torch.tensor([f.log_likelihood for f in fits], dtype=torch.float64)
    best = best_restart(finals)
    chosen = fits[best]
    chosen.restart_log_likelihoods = finals
    chosen.restart_objectives = finals.clone()
    chosen.restart_converged = [f.converged for f in fits]
    chosen.best_restart = best
    return chosen

