"""Mixtures of the shipped families, registered so configs can name them.

Each is ``Mixture(family, k)`` and nothing more: the Pyro program, the E-step and
the M-step come from :class:`models.mixture.Mixture` and the family. Every one
takes ``fixed`` (parameters held at given values while the others are fitted) and
``prior`` (conjugate priors: MAP-EM; see :mod:`models.priors`).
"""

from __future__ import annotations

from .families import Bernoulli, Categorical, Exponential, LinearRegression, Poisson
from .mixture import Mixture
from .registry import register


@register
class BernoulliMixture(Mixture):
    """Binary vectors (e.g. binary images) from k prototypes of pixel probabilities."""

    name = "bernoulli_mixture"

    def __init__(self, k: int = 2, dim: int = 2, fixed: dict | None = None,
                 prior: dict | None = None):
        super().__init__(Bernoulli(dim), k, fixed=fixed, prior=prior)


@register
class CategoricalMixture(Mixture):
    """Latent classes: ``dim`` labels per observation, each from its class's distribution."""

    name = "categorical_mixture"

    def __init__(self, k: int = 2, categories: int = 3, dim: int = 4, fixed: dict | None = None,
                 prior: dict | None = None):
        super().__init__(Categorical(categories, dim), k, fixed=fixed, prior=prior)


@register
class PoissonMixture(Mixture):
    """Counts from k Poisson rates; ``dim > 1``: vectors of ``dim`` independent counts
    (rates ``(k, dim)``), which may have missing entries (NaN)."""

    name = "poisson_mixture"

    def __init__(self, k: int = 2, dim: int = 1, fixed: dict | None = None,
                 prior: dict | None = None):
        super().__init__(Poisson(dim), k, fixed=fixed, prior=prior)


@register
class ExponentialMixture(Mixture):
    """Waiting times from k exponential rates."""

    name = "exponential_mixture"

    def __init__(self, k: int = 2, fixed: dict | None = None,
                 prior: dict | None = None):
        super().__init__(Exponential(), k, fixed=fixed, prior=prior)


@register
class RegressionMixture(Mixture):
    """A mixture of k linear regressions of y on ``features`` covariates."""

    name = "regression_mixture"

    def __init__(self, k: int = 2, features: int = 1, intercept: bool = True,
                 reg_covar: float = 1e-6, fixed: dict | None = None,
                 prior: dict | None = None):
        super().__init__(LinearRegression(features, intercept, reg_covar=reg_covar), k,
                         fixed=fixed, prior=prior)
