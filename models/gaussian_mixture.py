"""Gaussian mixtures in any dimension, with scikit-learn's four covariance types.

    z_n ~ Categorical(weights)
    x_n | z_n = j ~ MultivariateNormal(locs_j, Sigma_j)

``covariance`` picks how ``Sigma_j`` is parametrised (see
:mod:`models.families.gaussian`): ``spherical`` and ``diag`` by standard
deviations ``scales``, ``full`` and ``tied`` by Cholesky factors ``scale_tril``,
which the Pyro program passes to ``MultivariateNormal(scale_tril=...)`` and the
E-step turns into precisions.

Soft EM on one unbatched chunk without missing entries, where the natural form is exact
enough, runs the E-step block by block (:mod:`models.soft_blocks`): the mixture's
E-step and statistics with every ``(k, block)`` intermediate in cache.
"""

from __future__ import annotations

from .base import EStep
from .families.base import Prepared
from .families.gaussian import Gaussian
from .families.gaussian_numerics import recentre
from .mixture import Mixture
from .registry import register
from .soft_blocks import soft_step


@register
class GaussianMixture(Mixture):
    """A mixture of ``k`` Gaussians in ``dim`` dimensions.

    Args:
        k: number of components.
        dim: dimension of the observations.
        covariance: ``full`` (default, as scikit-learn), ``diag``, ``spherical`` or ``tied``.
        reg_covar: added to the covariance diagonal in the M-step.
        fixed: parameters held at given values, e.g. ``{"locs": [[0.0], [5.0]]}``: both
            paths fit the others given them (EM's M-step is the constrained maximiser).
        prior: conjugate priors, e.g. ``{"weights": {"concentration": 2.0},
            "covariances": {"scale": 0.5, "df": 4}}``: EM finds the MAP estimate and
            fit_vi samples the same globals (see :mod:`models.priors`).
    """

    name = "gaussian_mixture"

    def __init__(self, k: int = 2, dim: int = 1, covariance: str = "full", reg_covar: float = 1e-6,
                 fixed: dict | None = None, prior: dict | None = None):
        super().__init__(Gaussian(dim, covariance, reg_covar), k, fixed=fixed, prior=prior)
        self.dim, self.covariance = self.family.dim, covariance

    def expect(self, prepared, params, hard=False, marginal=True) -> EStep:
        """Soft EM on one unbatched chunk without missing entries, in the natural form:
        block by block (same statistics and log-likelihood as the mixture's E-step to
        round-off; responsibilities only when the chunk fits one block, else ``None``:
        a fit computes them on demand). Everything else: the mixture's E-step."""
        if not hard and type(prepared) is Prepared and params["locs"].dim() == 2:
            family = self.family
            standard = family._to_standard(params, prepared.shift, keep=True)
            natural = family._natural_or_none(prepared, standard, params)
            if natural is not None:
                eta, log_norm = natural
                bias = params["weights"].log() - log_norm - family._log_scale(prepared.shift)
                step = soft_step(prepared.statistics, eta, bias)
                stats = {"counts": step.counts,
                         **recentre(step.sums, standard["locs"], step.counts, self.covariance,
                                    family._symmetric)}
                resp = None if step.responsibilities is None else step.responsibilities.mT
                return EStep(stats, step.log_likelihood, step.log_likelihood, resp, step.top)
        return super().expect(prepared, params, hard, marginal)

    def e_step(self, data, params, hard: bool = False):
        """As the mixture's, with the responsibilities always formed (the block-wise E-step
        keeps them only when the points fit one block)."""
        data, params = self.check_data(data), self.check_params(params)
        step = Mixture.expect(self, self.prepare(data, self.shift(data)), params, hard)
        return step.responsibilities, step.log_likelihood
