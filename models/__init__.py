"""Latent-assignment models, each written once as a Pyro program with its closed-form EM."""

from .base import ASSIGNMENT, OBSERVATION, EStep, LatentModel, Simulation
from .families import Binomial, Family, Gaussian
from .families.gaussian import COVARIANCE_TYPES
from .gaussian_mixture import GaussianMixture
from .kmeans import KMeans
from .mixture import Mixture
from .params import DTYPE, Params, ParamSpec
from .registry import REGISTRY, build, model_class, register
from .two_coins import TwoCoins

__all__ = [
    "ASSIGNMENT", "COVARIANCE_TYPES", "OBSERVATION", "DTYPE", "EStep", "LatentModel",
    "Simulation", "Family",
    "Binomial", "Gaussian", "GaussianMixture", "KMeans", "Mixture", "ParamSpec", "Params",
    "REGISTRY", "build", "model_class", "register", "TwoCoins",
]
