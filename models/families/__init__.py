"""Component families: one observation distribution each, with closed-form weighted MLE."""

from .base import Family, pick, shared
from .bernoulli import Bernoulli
from .binomial import Binomial
from .categorical import Categorical
from .exponential import Exponential
from .gaussian import COVARIANCE_TYPES, Gaussian
from .poisson import Poisson
from .regression import LinearRegression

__all__ = ["Family", "pick", "shared", "Bernoulli", "Binomial", "Categorical", "Exponential",
           "Gaussian", "LinearRegression", "Poisson", "COVARIANCE_TYPES"]
