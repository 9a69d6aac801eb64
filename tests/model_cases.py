"""One table of every registered model (and variant), shared by the invariant tests.

Each case gives a model and well-separated true parameters. A registered model
missing from this table fails ``test_every_registered_model_has_a_case``.
"""

from __future__ import annotations

from models import GaussianMixture, KMeans, TwoCoins

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
}

#: which case stands for each registered model name
REGISTERED = {"kmeans": "kmeans", "two_coins": "two_coins", "gaussian_mixture": "gmm_full"}


def make(name: str):
    """``(model, truth)`` for a case."""
    model, truth = CASES[name]()
    return model, model.params(**truth)
