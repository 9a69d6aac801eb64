"""Gaussian mixtures in any dimension, with scikit-learn's four covariance types.

    z_n ~ Categorical(weights)
    x_n | z_n = j ~ MultivariateNormal(locs_j, Sigma_j)

``covariance`` picks how ``Sigma_j`` is parametrised (see
:mod:`models.families.gaussian`): ``spherical`` and ``diag`` by standard
deviations ``scales``, ``full`` and ``tied`` by Cholesky factors ``scale_tril``,
which the Pyro program passes to ``MultivariateNormal(scale_tril=...)`` and the
E-step turns into precisions.
"""

from __future__ import annotations

from .families.gaussian import Gaussian
from .mixture import Mixture
from .registry import register


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
