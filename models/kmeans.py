"""K-means as a model: an isotropic Gaussian mixture with equal weights and a fixed scale.

    z_n ~ Categorical(1/k, ..., 1/k)
    x_n | z_n = j ~ Normal(locs_j, scale^2 I)

Hard (classification) EM on this model is Lloyd's algorithm: the E-step assigns
each point to its nearest centre, the M-step moves each centre to the mean of
its points, and an empty cluster is moved to the point farthest from its centre.
TraceEnum_ELBO on the same program fits the soft version (the centres of an
equal-weight, fixed-scale Gaussian mixture).

Hard EM runs a dedicated Lloyd step (:mod:`models.lloyd`): the same E-step and
statistics as the mixture's, computed in cache-sized blocks with the assignment as
``joint == max`` instead of an argmax and a scatter. It falls back to the mixture's
E-step for a restart batch, missing entries, the centred form, and ties.
"""

from __future__ import annotations

import torch

from .base import EStep
from .families.base import Prepared
from .families.gaussian import Gaussian
from .families.gaussian_numerics import recentre
from .lloyd import lloyd_step
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

    def expect(self, prepared, params, hard=False, marginal=True) -> EStep:
        """Hard EM on one unbatched chunk without missing entries: Lloyd's step (same
        statistics, objective and scores as the mixture's E-step; responsibilities only
        when the chunk fits one block, else ``None``: a fit computes them on demand)."""
        step = None
        if hard and type(prepared) is Prepared and params["locs"].dim() == 2:
            family = self.family
            standard = family._to_standard(params, prepared.shift)
            natural = family._natural_or_none(prepared, standard)
            if natural is not None:
                eta, log_norm = natural
                bias = params["weights"].log() - log_norm - family._log_scale(prepared.shift)
                # every centre has the fixed scale: the |y|^2 coefficient is common
                step = lloyd_step(prepared.statistics, eta, bias, marginal, common_last=True)
        if step is None:
            return super().expect(prepared, params, hard, marginal)
        stats = {"counts": step.counts, **recentre(step.sums, standard["locs"], step.counts,
                                                   "spherical", family._symmetric)}
        resp = None if step.responsibilities is None else step.responsibilities.mT
        return EStep(stats, step.log_likelihood, step.top.sum(), resp, step.top)

    def e_step(self, data, params, hard: bool = False):
        """As the mixture's, with the responsibilities always formed (the mixture's E-step:
        Lloyd's step keeps them only when the points fit one block)."""
        data, params = self.check_data(data), self.check_params(params)
        step = Mixture.expect(self, self.prepare(data, self.shift(data)), params, hard)
        return step.responsibilities, step.log_likelihood
