"""The model's program with its priors: globals as ``pyro.sample`` sites, and the guides.

Without priors every global is a ``pyro.param`` (maximum likelihood: ``posterior =
"point"``). With priors (:mod:`emvi.models.priors`) the parameters a prior covers are
``pyro.sample`` sites of the same program, and

- ``"map"``: an ``AutoDelta`` guide: TraceEnum_ELBO's ``-loss`` is the log posterior
  density ``log p(x | theta) + log p(theta)``, the quantity MAP-EM maximises (the
  objective stays deterministic, so L-BFGS works);
- ``"normal"`` / ``"mvn"``: ``AutoNormal`` / ``AutoMultivariateNormal`` over the sites
  (in their unconstrained spaces): a real posterior approximation, fitted with Adam,
  summarised by posterior means and standard deviations.

The assignments are enumerated in every case (the guides are built on the program with
the assignment sites hidden).
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta, AutoMultivariateNormal, AutoNormal, init_to_value

from ..models.params import Params
from ..models.validation import InputError

POSTERIORS = ("point", "map", "normal", "mvn")


def program_with_priors(model, fixed: Params, free: dict):
    """``pyro_model(data)``: free parameters without a prior are ``pyro.param``; those with
    one come from their prior's ``pyro.sample`` site (in the order the model gives)."""
    program = config_enumerate(model.program, "parallel")
    sites = model.prior_sites()
    sampled = {name for site in sites for name in site.targets}

    def pyro_model(data):
        values = Params(fixed)
        for name, value in free.items():
            if name not in sampled:
                values[name] = pyro.param(name, value, constraint=model.specs[name].constraint)
        for site in sites:
            values.update(site.to_params(pyro.sample(site.name, site.distribution(values))))
        program(values, data)

    return pyro_model


def make_guide(kind: str, pyro_model, model, start: Params):
    """An autoguide over the model's prior sites, started at ``start``'s values."""
    sites = model.prior_sites()
    init = init_to_value(values={site.name: site.value(start).detach() for site in sites})
    exposed = poutine.block(pyro_model, expose=[site.name for site in sites])
    if kind == "map":
        return AutoDelta(exposed, init_loc_fn=init)
    if kind == "normal":
        return AutoNormal(exposed, init_loc_fn=init, init_scale=0.01)
    if kind == "mvn":
        return AutoMultivariateNormal(exposed, init_loc_fn=init, init_scale=0.01)
    raise InputError(f"posterior: expected one of {POSTERIORS}, got {kind!r}")


def site_params(model, values: dict) -> Params:
    """Model parameters from prior-site values (``{site: value}``)."""
    out = Params()
    for site in model.prior_sites():
        if site.name in values:
            out.update(site.to_params(values[site.name]))
    return out


def posterior_summary(guide, model, others: Params, draws: int = 1000,
                      seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{parameter: (posterior mean, posterior sd)}`` of the parameters with priors, from
    ``draws`` draws of the guide (a private RNG stream)."""
    samples: dict[str, list] = {}
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for _ in range(draws):
            values = {name: value for name, value in guide().items()}
            for name, value in site_params(model, values).items():
                samples.setdefault(name, []).append(value)
    return {name: (torch.stack(v).mean(0), torch.stack(v).std(0))
            for name, v in samples.items() if name in model.specs or name in others}
