"""The model's Pyro program, queried through Pyro's own enumeration machinery.

These are the reference answers the hand-written EM is checked against:
``-TraceEnum_ELBO().loss``, ``TraceEnum_ELBO.compute_marginals`` and
``infer_discrete`` at temperature 0.
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO, infer_discrete

from ..models.params import Params
from .vi import pyro_objective


def _pair(model, params: Params):
    params = model.check_params(params)
    fixed = Params({k: v for k, v in params.items() if model.specs[k].fixed})
    free = {k: v for k, v in params.items() if not model.specs[k].fixed}
    return params, pyro_objective(model, fixed, free)


def pyro_log_likelihood(model, data, params) -> float:
    """``-TraceEnum_ELBO().loss`` of the program with point-estimate globals at ``params``."""
    data = model.check_data(data)
    params, (pyro_model, guide) = _pair(model, params)
    with pyro.get_param_store().scope():
        elbo = TraceEnum_ELBO(max_plate_nesting=model.plate_nesting(params))
        return -elbo.loss(pyro_model, guide, data)


def pyro_posterior(model, data, params) -> torch.Tensor:
    """Pyro's enumerated posterior marginals of the assignment site: ``(*batch, n, k)``."""
    data = model.check_data(data)
    params, (pyro_model, guide) = _pair(model, params)
    with pyro.get_param_store().scope():
        elbo = TraceEnum_ELBO(max_plate_nesting=model.plate_nesting(params))
        marginals = elbo.compute_marginals(pyro_model, guide, data)
        logits = {name: m.logits.detach() for name, m in marginals.items()}
        return torch.softmax(model.pyro_assignments(logits, data), -1)


def pyro_map_assignments(model, data, params) -> torch.Tensor:
    """MAP assignments from ``infer_discrete`` at temperature 0: ``(*batch, n)``."""
    data = model.check_data(data)
    params, (pyro_model, _) = _pair(model, params)
    with pyro.get_param_store().scope():
        first = -1 - model.plate_nesting(params)
        decoder = infer_discrete(pyro_model, first_available_dim=first, temperature=0)
        trace = poutine.trace(decoder).get_trace(data)
        values = {name: site["value"].detach() for name, site in trace.nodes.items()
                  if site["type"] == "sample"}
        return model.pyro_assignments(values, data)


def pyro_gradient(model, data, params) -> dict[str, torch.Tensor]:
    """Gradient of TraceEnum_ELBO's loss in the unconstrained space ``pyro.param`` optimises.

    At an EM fixed point every entry is ~0: the two paths share their optima.
    """
    data = model.check_data(data)
    params, (pyro_model, guide) = _pair(model, params)
    with pyro.get_param_store().scope():
        for name, value in params.items():
            if not model.specs[name].fixed:
                pyro.param(name, value, constraint=model.specs[name].constraint)
        named = dict(pyro.get_param_store().named_parameters())
        elbo = TraceEnum_ELBO(max_plate_nesting=model.plate_nesting(params))
        loss = elbo.differentiable_loss(pyro_model, guide, data)
        grads = torch.autograd.grad(loss, list(named.values()))
        return {name: g.detach() for name, g in zip(named, grads)}


def _map_pair(model, params: Params):
    """The program with the model's priors as sample sites and an AutoDelta guide at
    ``params`` (the log posterior, as MAP-EM maximises it)."""
    from .guides import make_guide, program_with_priors

    params = model.check_params(params)
    fixed = Params({k: v for k, v in params.items() if model.specs[k].fixed})
    free = {k: v for k, v in params.items() if not model.specs[k].fixed}
    pyro_model = program_with_priors(model, fixed, free)
    return params, pyro_model, make_guide("map", pyro_model, model, params)


def pyro_log_posterior(model, data, params) -> float:
    """``-TraceEnum_ELBO().loss`` with the priors' sites at ``params`` (an AutoDelta guide):
    ``log p(data | params) + log p(params)``."""
    data = model.check_data(data)
    with pyro.get_param_store().scope():
        params, pyro_model, guide = _map_pair(model, params)
        elbo = TraceEnum_ELBO(max_plate_nesting=model.plate_nesting(params))
        return -elbo.loss(pyro_model, guide, data)


def pyro_posterior_gradient(model, data, params) -> dict[str, torch.Tensor]:
    """Gradient of the negative log posterior in the unconstrained spaces Pyro optimises
    (the AutoDelta guide's locations and the remaining ``pyro.param`` globals); ~0 at
    MAP-EM's fixed point."""
    data = model.check_data(data)
    with pyro.get_param_store().scope():
        params, pyro_model, guide = _map_pair(model, params)
        guide(data)
        sampled = {name for site in model.prior_sites() for name in site.targets}
        for name, value in params.items():
            if not model.specs[name].fixed and name not in sampled:
                pyro.param(name, value, constraint=model.specs[name].constraint)
        named = dict(pyro.get_param_store().named_parameters())
        elbo = TraceEnum_ELBO(max_plate_nesting=model.plate_nesting(params))
        loss = elbo.differentiable_loss(pyro_model, guide, data)
        grads = torch.autograd.grad(loss, list(named.values()))
        return {name: g.detach() for name, g in zip(named, grads)}
