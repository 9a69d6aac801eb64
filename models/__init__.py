"""Latent-assignment models, each written once as a Pyro program with its closed-form EM."""

from .base import ASSIGNMENT, OBSERVATION, EStep, LatentModel, Simulation
from .families import (
    Bernoulli,
    Binomial,
    Categorical,
    Exponential,
    Family,
    Gaussian,
    LinearRegression,
    Poisson,
)
from .families.gaussian import COVARIANCE_TYPES
from .gaussian_mixture import GaussianMixture
from .grouped import GroupedGaussianMixture, GroupedMixture
from .hmm import HMM
from .hmms import BernoulliHMM, CategoricalHMM, GaussianHMM, PoissonHMM
from .kmeans import KMeans
from .mixture import Mixture
from .mixtures import (
    BernoulliMixture,
    CategoricalMixture,
    ExponentialMixture,
    PoissonMixture,
    RegressionMixture,
)
from .params import DTYPE, Params, ParamSpec
from .pyro_model import PyroModel
from .registry import REGISTRY, build, model_class, register
from .sequences import Sequences
from .two_coins import TwoCoins
from .validation import InputError, InputTypeError

__all__ = [
    "ASSIGNMENT", "COVARIANCE_TYPES", "OBSERVATION", "DTYPE", "EStep", "LatentModel",
    "Simulation", "Family",
    "Binomial", "Gaussian", "GaussianMixture", "KMeans", "Mixture", "ParamSpec", "Params",
    "REGISTRY", "build", "model_class", "register", "TwoCoins", "Bernoulli", "Categorical",
    "Exponential", "LinearRegression", "Poisson", "BernoulliMixture", "CategoricalMixture",
    "ExponentialMixture", "PoissonMixture", "RegressionMixture", "PyroModel", "InputError",
    "InputTypeError", "GroupedMixture", "GroupedGaussianMixture", "HMM", "GaussianHMM",
    "CategoricalHMM", "PoissonHMM", "BernoulliHMM", "Sequences",
]
