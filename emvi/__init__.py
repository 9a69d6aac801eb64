"""emvi: latent-variable models with discrete assignments, each written once as a Pyro
program and fitted two ways on the same tensors from the same start: closed-form EM and
Pyro's TraceEnum_ELBO.

    import emvi
    model = emvi.GaussianMixture(k=3, dim=1)
    init = emvi.initialize(model, data, method="kmeans++", seed=0)
    em, vi = emvi.fit_em(model, data, init), emvi.fit_vi(model, data, init)
    print(emvi.compare(em, vi).table())

The one import name: the repository's ``models/``, ``inference/`` and ``experiments/``
folders are installed as ``emvi.models``, ``emvi.inference`` and ``emvi.experiments``.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING

#: public name -> the subpackage it comes from; imported on first use, so that
#: ``import emvi.experiments.cli`` (the command) stays light until a command runs
_EXPORTS = {
    **dict.fromkeys([
        "Comparison", "Fit", "Progress", "Uncertainty", "adjusted_rand_index", "bootstrap",
        "compare", "fit_em", "fit_em_distributed", "fit_online_em", "fit_vi",
        "fit_vi_distributed", "initialize", "load",
        "louis_information", "observed_information", "open_npy", "open_shards", "pyro_gradient",
        "pyro_log_likelihood", "pyro_map_assignments", "pyro_posterior", "to_device"],
        ".inference"),
    **dict.fromkeys([
        "COVARIANCE_TYPES", "Bernoulli", "BernoulliMixture", "Binomial", "Categorical",
        "CategoricalMixture", "Exponential", "ExponentialMixture", "Family", "Gaussian",
        "GaussianMixture", "GroupedGaussianMixture", "GroupedMixture", "HMM", "GaussianHMM",
        "CategoricalHMM", "PoissonHMM", "BernoulliHMM", "Sequences", "InputError",
        "InputTypeError", "KMeans", "LatentModel",
        "LinearRegression", "Mixture", "ParamSpec", "Params", "Poisson", "PoissonMixture",
        "PyroModel", "RegressionMixture", "TwoCoins", "build", "register"], ".models"),
}

try:
    __version__ = _metadata.version("emvi")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'emvi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and editors: the same names, eagerly
    from .inference import (  # noqa: F401
        Comparison,
        Fit,
        Progress,
        Uncertainty,
        adjusted_rand_index,
        bootstrap,
        compare,
        fit_em,
        fit_online_em,
        fit_vi,
        initialize,
        load,
        louis_information,
        observed_information,
        open_npy,
        open_shards,
        pyro_gradient,
        pyro_log_likelihood,
        pyro_map_assignments,
        pyro_posterior,
        to_device,
    )
    from .models import (  # noqa: F401
        COVARIANCE_TYPES,
        HMM,
        Bernoulli,
        BernoulliHMM,
        BernoulliMixture,
        Binomial,
        Categorical,
        CategoricalHMM,
        CategoricalMixture,
        Exponential,
        ExponentialMixture,
        Family,
        Gaussian,
        GaussianHMM,
        GaussianMixture,
        GroupedGaussianMixture,
        GroupedMixture,
        InputError,
        InputTypeError,
        KMeans,
        LatentModel,
        LinearRegression,
        Mixture,
        Params,
        ParamSpec,
        Poisson,
        PoissonHMM,
        PoissonMixture,
        PyroModel,
        RegressionMixture,
        Sequences,
        TwoCoins,
        build,
        register,
    )
