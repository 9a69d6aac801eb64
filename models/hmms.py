"""Hidden Markov models of the shipped families, registered so configs can name them.

Each is ``HMM(family, k)`` and nothing more: the Pyro programs, forward–backward and the
M-step come from :class:`models.hmm.HMM` and the family. Every one takes ``fixed``
(parameters held at given values, e.g. a known transition matrix) and ``program``
(``markov``, the reference, or ``discrete_hmm``, vectorised over time for fast VI).
"""

from __future__ import annotations

from .families import Bernoulli, Categorical, Gaussian, Poisson
from .hmm import HMM
from .registry import register


@register
class GaussianHMM(HMM):
    """Real-valued (vector) observations, a Gaussian per state (regime-switching series)."""

    name = "gaussian_hmm"

    def __init__(self, k: int = 2, dim: int = 1, covariance: str = "diag",
                 reg_covar: float = 1e-6, fixed: dict | None = None, program: str = "markov",
                 prior: dict | None = None):
        super().__init__(Gaussian(dim, covariance, reg_covar), k, fixed=fixed, program=program,
                         prior=prior)
        self.dim, self.covariance = self.family.dim, covariance


@register
class CategoricalHMM(HMM):
    """Symbols ``0 .. categories - 1`` (``dim`` per step), a distribution per state (the
    dishonest casino's die faces)."""

    name = "categorical_hmm"

    def __init__(self, k: int = 2, categories: int = 6, dim: int = 1,
                 fixed: dict | None = None, program: str = "markov",
                 prior: dict | None = None):
        super().__init__(Categorical(categories, dim), k, fixed=fixed, program=program,
                         prior=prior)


@register
class PoissonHMM(HMM):
    """Counts per step, a Poisson rate per state."""

    name = "poisson_hmm"

    def __init__(self, k: int = 2, fixed: dict | None = None, program: str = "markov",
                 prior: dict | None = None):
        super().__init__(Poisson(), k, fixed=fixed, program=program,
                         prior=prior)


@register
class BernoulliHMM(HMM):
    """Binary vectors per step, probabilities of a 1 per state and feature."""

    name = "bernoulli_hmm"

    def __init__(self, k: int = 2, dim: int = 2, fixed: dict | None = None,
                 program: str = "markov", prior: dict | None = None):
        super().__init__(Bernoulli(dim), k, fixed=fixed, program=program,
                         prior=prior)
