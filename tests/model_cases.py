"""One table of every registered model (and variant), shared by the invariant tests.

Each case gives a model and well-separated true parameters. A registered model
missing from this table fails ``test_every_registered_model_has_a_case``.
"""

from __future__ import annotations

import torch
from emvi.models import (
    HMM,
    BernoulliHMM,
    BernoulliMixture,
    CategoricalHMM,
    CategoricalMixture,
    Exponential,
    ExponentialMixture,
    GaussianHMM,
    GaussianMixture,
    GroupedGaussianMixture,
    KMeans,
    PoissonHMM,
    PoissonMixture,
    RegressionMixture,
    TwoCoins,
)
from emvi.models.sequences import pad

CASES = {
    "kmeans": lambda: (KMeans(k=3, dim=2), {"locs": [[-6.0, -4.0], [0.0, 6.0], [7.0, -2.0]]}),
    "two_coins": lambda: (
        TwoCoins(k=2, tosses=10),
        {"weights": [0.4, 0.6], "probs": [0.8, 0.2]},
    ),
    "two_coins_fair": lambda: (TwoCoins(k=2, tosses=10, weights=[0.5, 0.5]),
                               {"probs": [0.6, 0.2]}),
    "gmm_1d": lambda: (
        GaussianMixture(k=3, dim=1, covariance="spherical"),
        {"weights": [0.3, 0.3, 0.4], "locs": [[-10.0], [30.0], [3.0]], "scales": [3.0, 7.0, 5.0]},
    ),
    "gmm_full": lambda: (
        GaussianMixture(k=3, dim=2, covariance="full"),
        {"weights": [0.3, 0.3, 0.4], "locs": [[-6.0, 0.0], [6.0, 1.0], [0.0, 8.0]],
         "covariances": [[[2.0, 0.8], [0.8, 1.0]], [[1.0, -0.5], [-0.5, 2.0]],
                         [[1.5, 0.0], [0.0, 0.5]]]},
    ),
    "gmm_diag": lambda: (
        GaussianMixture(k=2, dim=3, covariance="diag"),
        {"weights": [0.5, 0.5], "locs": [[-4.0, 0.0, 2.0], [4.0, 1.0, -2.0]],
         "scales": [[1.0, 2.0, 0.5], [0.7, 1.0, 1.5]]},
    ),
    "gmm_spherical": lambda: (
        GaussianMixture(k=3, dim=2, covariance="spherical"),
        {"weights": [0.2, 0.3, 0.5], "locs": [[-5.0, 0.0], [5.0, 0.0], [0.0, 7.0]],
         "scales": [1.0, 1.5, 0.8]},
    ),
    "gmm_tied": lambda: (
        GaussianMixture(k=3, dim=2, covariance="tied"),
        {"weights": [0.3, 0.3, 0.4], "locs": [[-6.0, 0.0], [6.0, 1.0], [0.0, 8.0]],
         "covariances": [[2.0, 0.5], [0.5, 1.0]]},
    ),
    "bernoulli": lambda: (
        BernoulliMixture(k=3, dim=6),
        {"weights": [0.3, 0.3, 0.4],
         "probs": [[0.9, 0.9, 0.9, 0.1, 0.1, 0.1], [0.1, 0.1, 0.9, 0.9, 0.9, 0.1],
                   [0.8, 0.1, 0.8, 0.1, 0.8, 0.1]]},
    ),
    "categorical": lambda: (
        CategoricalMixture(k=2, categories=3, dim=4),
        {"weights": [0.4, 0.6],
         "probs": [[[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]],
                   [[0.1, 0.2, 0.7], [0.2, 0.6, 0.2], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]]},
    ),
    "poisson": lambda: (
        PoissonMixture(k=3), {"weights": [0.3, 0.3, 0.4], "rates": [1.0, 8.0, 25.0]},
    ),
    "poisson_vector": lambda: (
        PoissonMixture(k=2, dim=3),
        {"weights": [0.4, 0.6], "rates": [[1.0, 6.0, 12.0], [9.0, 2.0, 25.0]]},
    ),
    "exponential": lambda: (
        ExponentialMixture(k=2), {"weights": [0.4, 0.6], "rates": [5.0, 0.3]},
    ),
    "regression": lambda: (
        RegressionMixture(k=2, features=1),
        {"weights": [0.5, 0.5], "coefs": [[1.0, 2.0], [-2.0, -1.0]], "scales": [0.5, 0.8]},
    ),
    "regression_2d": lambda: (
        RegressionMixture(k=2, features=2, intercept=False),
        {"weights": [0.4, 0.6], "coefs": [[1.0, 2.0], [-2.0, 0.5]], "scales": [0.3, 0.6]},
    ),
    "grouped": lambda: (
        GroupedGaussianMixture(k=2, groups=3, dim=2, covariance="diag"),
        {"weights": [[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]], "concentration": [2.0, 3.0],
         "locs": [[-4.0, 0.0], [4.0, 1.0]], "scales": [[1.0, 0.6], [0.7, 1.2]]},
    ),
    # fixed subsets: the M-step must be the constrained maximiser (covariances around the
    # fixed means, residual scales of the fixed lines, ...)
    "gmm_full_fixed_locs": lambda: (
        GaussianMixture(k=3, dim=2, covariance="full",
                        fixed={"locs": [[-6.0, 0.0], [6.0, 1.0], [0.5, 7.5]]}),
        {"weights": [0.3, 0.3, 0.4],
         "covariances": [[[2.0, 0.8], [0.8, 1.0]], [[1.0, -0.5], [-0.5, 2.0]],
                         [[1.5, 0.0], [0.0, 0.5]]]},
    ),
    "gmm_diag_fixed_locs": lambda: (
        GaussianMixture(k=2, dim=2, covariance="diag", fixed={"locs": [[-4.0, 0.5], [3.5, 1.0]]}),
        {"weights": [0.5, 0.5], "scales": [[1.0, 2.0], [0.7, 1.0]]},
    ),
    "gmm_diag_fixed_scales": lambda: (
        GaussianMixture(k=2, dim=2, covariance="diag",
                        fixed={"scales": [[1.0, 2.0], [0.7, 1.0]]}),
        {"weights": [0.5, 0.5], "locs": [[-4.0, 0.0], [4.0, 1.0]]},
    ),
    "gmm_tied_fixed_weights": lambda: (
        GaussianMixture(k=3, dim=2, covariance="tied", fixed={"weights": [0.2, 0.3, 0.5]}),
        {"locs": [[-6.0, 0.0], [6.0, 1.0], [0.0, 8.0]], "covariances": [[2.0, 0.5], [0.5, 1.0]]},
    ),
    "regression_fixed_coefs": lambda: (
        RegressionMixture(k=2, features=1, fixed={"coefs": [[1.0, 2.0], [-2.0, -1.0]]}),
        {"weights": [0.5, 0.5], "scales": [0.5, 0.8]},
    ),
    "regression_fixed_scales": lambda: (
        RegressionMixture(k=2, features=1, fixed={"scales": [0.5, 0.8]}),
        {"weights": [0.5, 0.5], "coefs": [[1.0, 2.0], [-2.0, -1.0]]},
    ),
}

#: cases whose data have missing entries (NaN, missing completely at random): the fraction
#: of entries removed; each reuses the complete-data case of its name without ``_missing``
MISSING = {
    "gmm_full_missing": 0.25,
    "gmm_diag_missing": 0.25,
    "gmm_spherical_missing": 0.25,
    "gmm_tied_missing": 0.25,
    "gmm_full_fixed_locs_missing": 0.25,
    "bernoulli_missing": 0.25,
    "categorical_missing": 0.25,
    "poisson_vector_missing": 0.25,
}
CASES.update({name: CASES[name.removesuffix("_missing")] for name in MISSING})
# the complete-data Bernoulli case is at the edge of its recovery tolerance already (its
# weights are weakly identified): with missing entries, a better separated truth
CASES["bernoulli_missing"] = lambda: (
    BernoulliMixture(k=2, dim=8),
    {"weights": [0.4, 0.6], "probs": [[0.9, 0.9, 0.9, 0.9, 0.2, 0.1, 0.2, 0.1],
                                      [0.1, 0.2, 0.1, 0.2, 0.9, 0.8, 0.9, 0.8]]},
)

#: hidden Markov models: the same invariants on sequences (tests/inference/test_hmm_invariants.py)
STICKY = [[0.9, 0.1], [0.15, 0.85]]
HMM_CASES = {
    "hmm_gaussian_diag": lambda: (
        GaussianHMM(k=2, dim=2, covariance="diag"),
        {"initial": [0.6, 0.4], "transition": STICKY, "locs": [[-2.0, 0.0], [2.0, 1.0]],
         "scales": [[1.0, 0.5], [0.7, 1.2]]},
    ),
    "hmm_gaussian_full": lambda: (
        GaussianHMM(k=2, dim=2, covariance="full"),
        {"initial": [0.5, 0.5], "transition": STICKY, "locs": [[-2.0, 0.0], [2.0, 1.0]],
         "covariances": [[[1.0, 0.5], [0.5, 1.0]], [[0.8, -0.3], [-0.3, 0.6]]]},
    ),
    "hmm_gaussian_spherical": lambda: (
        GaussianHMM(k=3, dim=1, covariance="spherical"),
        {"initial": [0.5, 0.3, 0.2],
         "transition": [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]],
         "locs": [[-3.0], [0.0], [4.0]], "scales": [1.0, 0.5, 1.5]},
    ),
    "hmm_gaussian_tied": lambda: (
        GaussianHMM(k=2, dim=2, covariance="tied"),
        {"initial": [0.3, 0.7], "transition": STICKY, "locs": [[-2.0, 0.0], [2.0, 1.5]],
         "covariances": [[1.0, 0.3], [0.3, 0.8]]},
    ),
    "hmm_casino": lambda: (  # Durbin et al.: a fair and a loaded die
        CategoricalHMM(k=2, categories=6),
        {"initial": [0.5, 0.5], "transition": [[0.95, 0.05], [0.1, 0.9]],
         "probs": [[[1 / 6] * 6], [[0.1] * 5 + [0.5]]]},
    ),
    "hmm_poisson": lambda: (
        PoissonHMM(k=3),
        {"initial": [0.4, 0.3, 0.3],
         "transition": [[0.85, 0.1, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]],
         "rates": [1.0, 6.0, 15.0]},
    ),
    "hmm_bernoulli": lambda: (
        BernoulliHMM(k=2, dim=4),
        {"initial": [0.5, 0.5], "transition": STICKY,
         "probs": [[0.9, 0.8, 0.2, 0.1], [0.1, 0.3, 0.7, 0.9]]},
    ),
    "hmm_exponential": lambda: (  # a family no registered HMM uses, as a user's would be
        HMM(Exponential(), 2),
        {"initial": [0.5, 0.5], "transition": STICKY, "rates": [4.0, 0.5]},
    ),
    # a known transition matrix: the M-step fits the emissions given it
    "hmm_fixed_transition": lambda: (
        GaussianHMM(k=2, dim=1, fixed={"transition": STICKY}),
        {"initial": [0.6, 0.4], "locs": [[-1.5], [1.5]], "scales": [[1.0], [0.8]]},
    ),
    "hmm_fixed_locs": lambda: (
        GaussianHMM(k=2, dim=2, covariance="full", fixed={"locs": [[-2.0, 0.0], [2.0, 1.0]]}),
        {"initial": [0.5, 0.5], "transition": STICKY,
         "covariances": [[[1.0, 0.5], [0.5, 1.0]], [[0.8, -0.3], [-0.3, 0.6]]]},
    ),
}

#: hidden Markov models whose steps have missing entries (NaN, missing completely at random):
#: the fraction of entries removed. A step may lose every entry (a scalar one always does): it
#: stays in its sequence. Each reuses the complete-data case of its name without ``_missing``
HMM_MISSING = {
    "hmm_gaussian_full_missing": 0.3,
    "hmm_gaussian_diag_missing": 0.3,
    "hmm_gaussian_spherical_missing": 0.3,
    "hmm_gaussian_tied_missing": 0.3,
    "hmm_casino_missing": 0.3,
    "hmm_poisson_missing": 0.3,
    "hmm_bernoulli_missing": 0.3,
}
HMM_CASES.update({name: HMM_CASES[name.removesuffix("_missing")] for name in HMM_MISSING})

#: which case stands for each registered model name
REGISTERED = {"kmeans": "kmeans", "two_coins": "two_coins", "gaussian_mixture": "gmm_full",
              "bernoulli_mixture": "bernoulli", "categorical_mixture": "categorical",
              "poisson_mixture": "poisson", "exponential_mixture": "exponential",
              "regression_mixture": "regression", "grouped_gaussian_mixture": "grouped",
              "gaussian_hmm": "hmm_gaussian_diag", "categorical_hmm": "hmm_casino",
              "poisson_hmm": "hmm_poisson", "bernoulli_hmm": "hmm_bernoulli"}


def make(name: str):
    """``(model, truth)`` for a case (of either table)."""
    model, truth = {**CASES, **HMM_CASES}[name]()
    return model, model.params(**truth)


def remove_entries(data: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """``data`` with about ``fraction`` of its entries set to NaN at random (never a whole
    row or column: each keeps an entry chosen at random)."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    missing = torch.rand(data.shape, generator=gen) < fraction
    keep = torch.randint(data.shape[1], (len(data),), generator=gen)
    missing[torch.arange(len(data)), keep] = False
    keep = torch.randint(len(data), (data.shape[1],), generator=gen)
    missing[keep, torch.arange(data.shape[1])] = False
    return data.masked_fill(missing, float("nan"))


def observe(name: str, data: torch.Tensor, seed: int) -> torch.Tensor:
    """The data a case's fits see: for a missing-data case, with entries removed."""
    if name not in MISSING:
        return data
    return remove_entries(data, MISSING[name], seed)


def remove_step_entries(data, fraction: float, seed: int):
    """Sequences ``data`` with about ``fraction`` of the entries of its steps set to NaN at
    random: a step may lose all of them, every coordinate keeps one entry."""
    flat = data.flat()
    entries = flat.reshape(len(flat), -1)
    gen = torch.Generator().manual_seed(20_000 + seed)
    missing = torch.rand(entries.shape, generator=gen) < fraction
    keep = torch.randint(len(entries), (entries.shape[1],), generator=gen)
    missing[keep, torch.arange(entries.shape[1])] = False
    return pad(flat.masked_fill(missing.reshape(flat.shape), float("nan")), data.lengths)


def observe_steps(name: str, data, seed: int):
    """The sequences an HMM case's fits see: for a missing-data case, with entries removed."""
    if name not in HMM_MISSING:
        return data
    return remove_step_entries(data, HMM_MISSING[name], seed)


def parameter_distance(model, truth, params) -> float:
    """The sum over parameters of the Frobenius norm of the error, after label alignment
    (many entries at once: steadier than the largest one)."""
    from emvi.inference.compare import alignment, permute

    aligned = permute(model, params, alignment(model, truth, params))
    return sum(float((aligned[name] - truth[name]).norm()) for name in truth)


def forced_missing_path(family, data: torch.Tensor, shift):
    """A complete chunk ``data: (n, *event)`` prepared by ``family`` as if it had missing
    entries (the missing-data code path, which must then equal the complete one)."""
    from emvi.models.families import gaussian_missing
    from emvi.models.families.missing import MaskedPrepared, placeholder

    if family.name == "gaussian":
        return gaussian_missing.prepare(data, shift,
                                        grouped=family.covariance in ("full", "tied"))
    x, seen = placeholder(data)
    base = family.log_base(x) if family.name == "poisson" else None
    return MaskedPrepared(family.statistics(x, shift), seen.reshape(len(x), -1).T.contiguous(),
                          base, shift)
