"""K-means as a model: an isotropic Gaussian mixture with equal weights and a fixed scale.

    z_n ~ Categorical(1/k, ..., 1/k)
    x_n | z_n = j ~ Normal(locs_j, scale^2 I)

Hard (classification) EM on this model is Lloyd's algorithm: the E-step assigns
each point to its nearest centre, the M-step moves each centre to the mean of
its points, and an empty cluster is moved to the point farthest from its centre.
TraceEnum_ELBO on the same program fits the soft version (the centres of an
equal-weight, fixed-scale Gaussian mixture).
"""

from __future__ import annotations

import torch

from .families.gaussian import Gaussian
from .mixture import Mixture
from .registry import register
from .validation import check_int, check_positive


@register
class KMeans(Mixture):
    """K-means with ``k`` centres in ``dim`` dimensions.

    Args:
        k: number of clusters.
        dim: dimension of the points.
        scale: the fixed standard deviation of every cluster (1 for unit-variance blobs).

    Parameters: ``locs: (k, dim)`` centres (``weights`` and ``scales`` are fixed).
    """

    name = "kmeans"
    default_hard = True

    def __init__(self, k: int = 3, dim: int = 2, scale: float = 1.0):
        k = check_int(k, "k", low=1)
        check_int(dim, "dim", low=1)
        scale = check_positive(scale, "scale")
        fixed = {"weights": torch.full((k,), 1.0 / k, dtype=torch.float64),
                 "scales": torch.full((k,), scale, dtype=torch.float64)}
        super().__init__(Gaussian(dim, "spherical"), k, fixed=fixed)
        self.scale = scale
