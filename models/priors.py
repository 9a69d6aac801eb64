"""Conjugate priors, declared once per family and used by both paths.

A prior is given per parameter, e.g. ``prior={"weights": {"concentration": 2.0},
"locs": {"mean": 0.0, "strength": 0.01}, "covariances": {"scale": 1.0, "df": 4}}``.
Each :class:`Prior` names the Pyro sample sites that stand for its parameters (the
same program then has ``pyro.sample`` globals: MAP with ``AutoDelta``, posteriors with
``AutoNormal``), gives their log density (EM maximises the log posterior with it) and
the hyperparameters a family's closed-form MAP M-step reads.

Which prior goes with which parameter (defaults in brackets):

==============================  =========================================================
``weights`` (any mixture)        Dirichlet(concentration [1: flat])
``initial``, ``transition`` (HMM) Dirichlet(concentration [1: flat]) per row
``probs`` (Bernoulli, Binomial)  Beta(a [1], b [1])
``probs`` (Categorical)          Dirichlet(concentration [1]) per feature
``rates`` (Poisson, Exponential) Gamma(shape [1], rate [0: flat])
``locs`` (Gaussian)              Normal(mean [0], covariance / strength [0: flat])
``covariances`` (full, tied)     inverse-Wishart(scale [identity], df [dim + 2])
``variances`` (diag, spherical)  inverse-Gamma(shape [1], rate [1]) per variance
``coefs`` (regression)           Normal(mean [0], sd [1]) per coefficient
==============================  =========================================================

MAP estimates exist only for concentrations and shapes >= 1 (below that the mode is on
the boundary of the support), so those are refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from .validation import InputError, InputTypeError, as_tensor

#: per parameter name: hyperparameter -> (default, lowest allowed value or None)
HYPERPARAMETERS = {
    "weights": {"concentration": (1.0, 1.0)},
    "initial": {"concentration": (1.0, 1.0)},
    "transition": {"concentration": (1.0, 1.0)},
    "probs": {"a": (1.0, 1.0), "b": (1.0, 1.0), "concentration": (1.0, 1.0)},
    "rates": {"shape": (1.0, 1.0), "rate": (1e-6, 1e-300)},
    "locs": {"mean": (0.0, None), "strength": (0.0, 0.0)},
    "covariances": {"scale": (1.0, None), "df": (None, None)},
    "variances": {"shape": (1.0, 0.0), "rate": (1.0, 0.0)},
    "coefs": {"mean": (0.0, None), "sd": (1.0, 0.0)},
}


class Prior(dict):
    """Validated hyperparameters: ``{parameter: {hyperparameter: tensor}}``."""

    def on(self, name: str) -> bool:
        return name in self

    def __getattr__(self, name):  # prior.weights["concentration"]
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def check_prior(values, allowed: Mapping[str, str], model_params, name: str = "prior") -> Prior:
    """Validate a user's prior against the parameters a model has.

    Args:
        values: ``{parameter: {hyperparameter: value}}`` or ``None``.
        allowed: ``{prior key: what it is}`` for this model (e.g. ``{"weights": ...,
            "locs": ..., "covariances": ...}``).
        model_params: ``{name: ParamSpec}`` of the model (fixed ones may take no prior).
    """
    if values is None:
        return Prior()
    if not isinstance(values, Mapping):
        raise InputTypeError(f"{name}: expected a table of parameters, got {values!r:.60}")
    out = Prior()
    for key, hyper in values.items():
        if key not in allowed:
            raise InputError(f"{name}.{key}: this model has no prior on {key!r}; expected one "
                             f"of {sorted(allowed)}")
        target = PRIOR_TARGETS.get(key, (key,))
        fixed = [t for t in target if t in model_params and model_params[t].fixed]
        if fixed:
            raise InputError(f"{name}.{key}: {fixed[0]} is fixed: a fixed parameter takes no "
                             "prior")
        if not isinstance(hyper, Mapping):
            raise InputTypeError(f"{name}.{key}: expected a table of hyperparameters, got "
                                 f"{hyper!r:.60}")
        known = HYPERPARAMETERS[key]
        out[key] = {}
        for hname, value in hyper.items():
            if hname not in known:
                raise InputError(f"{name}.{key}.{hname}: unknown hyperparameter; expected "
                                 f"{sorted(known)}")
            tensor = as_tensor(value, f"{name}.{key}.{hname}")
            if not bool(torch.isfinite(tensor).all()):
                raise InputError(f"{name}.{key}.{hname}: expected finite values")
            low = known[hname][1]
            if low is not None and bool((tensor < low).any()):
                reason = (" (below 1 the mode lies on the boundary: no MAP estimate)"
                          if low == 1.0 else "")
                raise InputError(f"{name}.{key}.{hname}: expected values >= {low:g}{reason}, "
                                 f"got {tensor.tolist()}")
            out[key][hname] = tensor
        for hname, (default, _) in known.items():
            if hname not in out[key] and default is not None:
                out[key][hname] = torch.tensor(default, dtype=torch.float64)
    return out


#: the model parameters each prior key stands for
PRIOR_TARGETS = {"covariances": ("scale_tril",), "variances": ("scales",)}


class InverseWishart(dist.TorchDistribution):
    """Inverse-Wishart over symmetric positive-definite ``(d, d)`` matrices (its density
    only: MAP and guides need ``log_prob``, not draws)."""

    arg_constraints = {"df": constraints.positive, "scale": constraints.positive_definite}
    support = constraints.positive_definite
    has_rsample = False

    def __init__(self, df: torch.Tensor, scale: torch.Tensor, validate_args=None):
        self.df, self.scale = torch.as_tensor(df, dtype=scale.dtype), scale
        d = scale.shape[-1]
        batch = torch.broadcast_shapes(self.df.shape, scale.shape[:-2])
        super().__init__(batch, (d, d), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(InverseWishart, _instance)
        d = self.scale.shape[-1]
        new.df = self.df.expand(batch_shape)
        new.scale = self.scale.expand(*batch_shape, d, d)
        super(InverseWishart, new).__init__(batch_shape, (d, d), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value):
        d = value.shape[-1]
        chol = torch.linalg.cholesky(value)
        log_det = 2 * torch.diagonal(chol, 0, -2, -1).log().sum(-1)
        scale_chol = torch.linalg.cholesky(self.scale)
        scale_log_det = 2 * torch.diagonal(scale_chol, 0, -2, -1).log().sum(-1)
        # tr(Psi Sigma^-1) = |L_Sigma^-1 L_Psi|_F^2
        white = torch.linalg.solve_triangular(chol, scale_chol.expand(
            *chol.shape[:-2], d, d), upper=False)
        trace = white.square().sum((-2, -1))
        df = self.df
        return (0.5 * df * scale_log_det - 0.5 * df * d * math.log(2)
                - torch.mvlgamma(0.5 * df, d) - 0.5 * (df + d + 1) * log_det - 0.5 * trace)


class PriorSite:
    """One ``pyro.sample`` global of a program with priors, and how it maps to parameters.

    Args:
        name: the sample site's name (e.g. ``"covariances"``).
        distribution: ``params -> distribution`` of the site's whole value (event dims
            cover the components), given the other parameters (a mean's prior may scale
            with the covariance).
        value: ``params -> (*batch, ...)`` the site's value at given parameters (EM's log
            prior evaluates the same density there).
        to_params: ``value -> {parameter: tensor}``.
    """

    def __init__(self, name, distribution, value, to_params, targets=None):
        self.name, self.distribution, self.value, self.to_params = (
            name, distribution, value, to_params)
        #: the model parameters the site sets (default: the parameter of its name)
        self.targets = tuple(targets or PRIOR_TARGETS.get(name, (name,)))

    def log_prob(self, params) -> torch.Tensor:
        """``(*batch,)`` log density of the site at ``params``."""
        return self.distribution(params).log_prob(self.value(params))


def simplex_site(name: str, prior: Prior, k: int, rows: int | None = None) -> list[PriorSite]:
    """``[]``, or the site of a ``Dirichlet(concentration)`` prior on parameter ``name``: one
    simplex of size ``k`` (mixing weights, initial probabilities) or ``rows`` of them (a
    transition matrix)."""
    if not prior.on(name):
        return []
    concentration = prior[name]["concentration"].expand(k)
    shape = () if rows is None else (rows,)
    return [PriorSite(name, lambda p: dist.Dirichlet(concentration).expand(shape).to_event(
        len(shape)), lambda p: p[name], lambda v: {name: v})]


def log_prior(sites: list[PriorSite], params) -> torch.Tensor | float:
    """The sum of the sites' log densities at ``params`` (0 without priors)."""
    return sum((site.log_prob(params) for site in sites), 0.0)
