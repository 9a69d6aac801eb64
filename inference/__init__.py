"""Fitting engines (closed-form EM and TraceEnum_ELBO) and their comparison."""

from .bootstrap import bootstrap
from .compare import Comparison, adjusted_rand_index, alignment, compare, permute
from .device import to_device
from .distributed import RankFailed, fit_em_distributed, fit_vi_distributed
from .em import fit_em
from .enumeration import (
    pyro_gradient,
    pyro_log_likelihood,
    pyro_log_posterior,
    pyro_map_assignments,
    pyro_posterior,
    pyro_posterior_gradient,
)
from .fit import Fit, Progress
from .init import INIT_METHODS, initialize
from .ondisk import open_npy, open_shards
from .online import fit_online_em
from .persist import load_fit as load
from .uncertainty import Uncertainty, louis_information, observed_information
from .vi import fit_vi

__all__ = [
    "Comparison", "Fit", "INIT_METHODS", "Progress", "RankFailed", "Uncertainty",
    "adjusted_rand_index", "alignment", "bootstrap", "compare", "fit_em",
    "fit_em_distributed", "fit_online_em", "fit_vi", "fit_vi_distributed",
    "initialize", "load", "open_npy", "open_shards",
    "louis_information", "observed_information", "permute", "pyro_log_likelihood",
    "pyro_gradient", "pyro_log_posterior", "pyro_map_assignments", "pyro_posterior",
    "pyro_posterior_gradient", "to_device",
]
