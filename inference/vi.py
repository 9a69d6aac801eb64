"""Fitting by Pyro's TraceEnum_ELBO over the model's own program.

The globals are ``pyro.param`` sites seeded from the same ``init`` as EM, with
the constraints of the model's specs; the guide is empty and the assignment
site is enumerated in the model, so ``-loss`` is exactly the marginal
log-likelihood and the objective is deterministic: L-BFGS is as legitimate as
Adam. Pyro's global param store is scoped: a fit neither sees nor leaves params.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import pyro
import torch
from pyro.infer import TraceEnum_ELBO

from models.params import Params, interior
from models.validation import InputError, check_int, check_k, precision_notes

from .fit import Fit, Progress

OPTIMIZERS = ("adam", "lbfgs")
DEFAULT_LR = {"adam": 0.05, "lbfgs": 1.0}


def pyro_objective(model, fixed: Params, free: dict):
    """The ``(model, guide)`` pair: globals as ``pyro.param`` with the specs' constraints.

    Args:
        model: the latent model whose ``program`` is used.
        fixed: values passed through as constants (fixed parameters).
        free: ``name -> initial value`` of the parameters to learn.
    """

    def pyro_model(data):
        values = Params(fixed)
        for name, value in free.items():
            values[name] = pyro.param(name, value, constraint=model.specs[name].constraint)
        model.program(values, data)

    def guide(data):  # every global is a point estimate; the assignment is enumerated
        pass

    return pyro_model, guide


def fit_vi(model, data, init, *, optimizer: str = "adam", lr: float | None = None,
           steps: int = 1000, tol: float | None = 1e-9, patience: int | None = None,
           callback: Callable[[Progress], None] | None = None, record_params: bool = True) -> Fit:
    """Fit ``model`` to ``data`` by maximising TraceEnum_ELBO from ``init``.

    Args:
        model: a model (see :mod:`models.base`).
        data: ``(n, ...)`` observations.
        init: initial parameters; a restart batch ``(R, ...)`` becomes a restart
            plate, so one program fits every restart at once.
        optimizer: ``adam`` or ``lbfgs`` (strong-Wolfe line search).
        lr: learning rate (default 0.05 for Adam, 1.0 for L-BFGS).
        steps: most optimiser steps.
        tol: stop when the relative change of the objective stays at most ``tol``
            for ``patience`` consecutive steps (``None``: run all steps).
        patience: consecutive small changes required (default 1 for L-BFGS, 10 for Adam).
        callback: called with a :class:`Progress` after every step.
        record_params: keep the parameters of every step in ``param_trace``.
    """
    notes = precision_notes(data)
    data = model.check_data(data)
    check_k(model.k, data.shape[0])
    params = model.check_params(init, "init")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}")
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise InputError(f"lr: expected a positive number, got {lr!r}")
    steps = check_int(steps, "steps", low=0)
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float))
                            or not tol >= 0):
        raise InputError(f"tol: expected a number >= 0 or None, got {tol!r}")
    patience = check_int(patience if patience is not None else (1 if optimizer == "lbfgs" else 10),
                         "patience", low=1)
    batch = params.batch_shape(model.specs)
    if batch and model.plate_nesting(params) < 2:
        raise InputError("init: this model's program takes one parameter set; fit_vi needs "
                         "a single start (restarts = 1)")
    fixed = Params({k: v for k, v in params.items() if model.specs[k].fixed})
    free = {k: interior(v, model.specs[k].constraint).clone() for k, v in params.items()
            if not model.specs[k].fixed}
    if not free:
        raise InputError("init: the model has no free parameters to fit")
    method = f"vi-{optimizer}"
    pyro_model, guide = pyro_objective(model, fixed, free)
    elbo = TraceEnum_ELBO(max_plate_nesting=model.plate_nesting(params))
    prepared = model.prepare(data, model.shift(data)) if batch else None

    with pyro.get_param_store().scope():
        for name, value in free.items():
            pyro.param(name, value, constraint=model.specs[name].constraint)
        leaves = [p for _, p in pyro.get_param_store().named_parameters()]

        if optimizer == "adam":
            opt = torch.optim.Adam(leaves, lr=lr)
        else:
            opt = torch.optim.LBFGS(leaves, lr=lr, max_iter=1, max_eval=25, history_size=20,
                                    tolerance_grad=1e-14, tolerance_change=1e-15,
                                    line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = elbo.differentiable_loss(pyro_model, guide, data)
            loss.backward()
            return loss

        def snapshot() -> Params:
            with torch.no_grad():
                values = {k: pyro.param(k).detach().clone() for k in free}
                return Params({k: values[k] if k in values else fixed[k] for k in model.specs})

        objectives, seconds, trace, small = [], [], [], 0
        start = time.perf_counter()

        def record(loss, values: Params):
            if batch:  # per-restart objective, from the (exactly equal) hand E-step
                with torch.no_grad():
                    objectives.append(model.expect(prepared, values).log_likelihood)
            else:
                objectives.append(-loss.detach())
            seconds.append(time.perf_counter() - start)
            if record_params:
                trace.append(values)
            if callback is not None:
                it = len(objectives) - 1
                callback(Progress(method, it, steps, float(objectives[-1].max()), seconds[-1]))

        def converged() -> bool:
            nonlocal small
            if tol is None or len(objectives) < 2:
                return False
            new, old = objectives[-1].sum(), objectives[-2].sum()
            small = small + 1 if abs(float(new - old)) <= tol * abs(float(old)) else 0
            return small >= patience

        def finite(loss, values) -> bool:
            return bool(torch.isfinite(loss)) and all(bool(torch.isfinite(v).all())
                                                      for v in values.values())

        final, stopped = None, None
        with pyro.validation_enabled(False), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Encountered NaN")  # handled below, with a note
            for step in range(steps + 1):
                values = snapshot()
                if optimizer == "adam" or step == steps:
                    loss = closure()
                else:  # L-BFGS evaluates at the current point first: that value is recorded
                    loss = opt.step(closure)
                if not finite(loss, values):  # the likelihood is unbounded: stop, keep the last
                    stopped = step
                    break
                record(loss, values)
                final = values
                if step == steps or converged():
                    if optimizer == "lbfgs" and step < steps:  # the point after the last step
                        values = snapshot()
                        loss = closure()
                        if finite(loss, values):
                            record(loss, values)
                            final = values
                    break
                if optimizer == "adam":
                    opt.step()
    if final is None:
        raise InputError("init: TraceEnum_ELBO's objective is not finite at the initial "
                         "parameters")
    if stopped is not None:
        notes.append(f"stopped at step {stopped}: the objective became non-finite (the "
                     "likelihood is unbounded, e.g. a component collapsing onto a point); "
                     "the last finite parameters are reported")

    done = tol is not None and small >= patience and stopped is None
    table = torch.stack(objectives)  # (T, *batch)
    resp, log_lik = model.e_step(data, final)
    best = int(log_lik.argmax()) if batch else 0
    notes += model.diagnose(data, final.select(best, model.specs))
    pick = (lambda t: t[:, best]) if batch else (lambda t: t)
    return Fit(
        model=model,
        method=method,
        params=final.select(best, model.specs),
        log_likelihood=float(log_lik[best] if batch else log_lik),
        objective=pick(table),
        log_likelihood_trace=pick(table),
        seconds=torch.tensor(seconds, dtype=torch.float64),
        iterations=len(objectives) - 1,
        converged=done,
        responsibilities=resp[best] if batch else resp,
        param_trace=[p.select(best, model.specs) for p in trace] if record_params else None,
        restart_log_likelihoods=log_lik.reshape(-1).detach(),
        best_restart=best,
        m_step="none",
        notes=notes,
    )
