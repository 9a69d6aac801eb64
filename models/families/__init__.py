"""Component families: one observation distribution each, with closed-form weighted MLE."""

from .base import Family, pick, shared
from .binomial import Binomial
from .gaussian import COVARIANCE_TYPES, Gaussian

__all__ = ["Family", "pick", "shared", "Binomial", "Gaussian", "COVARIANCE_TYPES"]
