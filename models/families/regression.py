"""Linear-regression components: each component is a line (plane) with Gaussian noise.

A data row is ``(x_1, ..., x_p, y)``; given component ``j``,
``y ~ Normal(x~ . coefs_j, scales_j)`` with ``x~ = (1, x)`` when ``intercept``.
The covariates are conditioned on, not modelled: when simulating, the program
draws them from ``Uniform(low, high)``. The M-step is weighted least squares
from the additive statistics ``sum r y^2``, ``sum r y x~`` and ``sum r x~ x~^T``.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..params import ParamSpec
from ..priors import PriorSite
from ..validation import InputError, InputTypeError, check_data, check_int, refuse
from .base import Family, pick, upper_triangle

LOG_2PI = math.log(2 * math.pi)
EPS = torch.finfo(torch.float64).eps
MAX_VALUE = 1e100


class LinearRegression(Family):
    """``y`` linear in ``features`` covariates, one line per component.

    Args:
        features: number of covariates p (the row holds p covariates, then y).
        intercept: add a constant covariate (coefs[..., 0] is the intercept).
        low, high: range of the covariates drawn when simulating.
        reg_covar: added to each noise variance in the M-step (as the Gaussian family).
    """

    name = "regression"

    def __init__(self, features: int = 1, intercept: bool = True, low: float = -5.0,
                 high: float = 5.0, reg_covar: float = 1e-6):
        self.n_covariates = check_int(features, "features", low=1, high=10_000)
        if not isinstance(intercept, bool):
            raise InputTypeError(f"intercept: expected true or false, got {intercept!r}")
        if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high):
            raise InputError(f"low, high: expected numbers with low < high, got {low}, {high}")
        if isinstance(reg_covar, bool) or not isinstance(reg_covar, (int, float)) or not (
            math.isfinite(reg_covar) and reg_covar >= 0
        ):
            raise InputError(f"reg_covar: expected a finite number >= 0 (added to each noise "
                             f"variance), got {reg_covar!r}")
        self.intercept, self.low, self.high, self.reg_covar = intercept, low, high, float(reg_covar)
        self.event_shape = (self.n_covariates + 1,)
        self.width = self.n_covariates + int(intercept)  # length of x~
        self._rows, self._cols, self._symmetric = upper_triangle(self.width)
        self._double = torch.where(self._rows == self._cols, 1.0, 2.0).to(torch.float64)

    def describe(self) -> str:
        return f"regression(features={self.n_covariates}, intercept={self.intercept})"

    def specs(self, k):
        return {"coefs": ParamSpec((k, self.width), constraints.real,
                                   doc="intercept and slopes" if self.intercept else "slopes"),
                "scales": ParamSpec((k,), constraints.positive, doc="noise standard deviation")}

    def check_data(self, data, name="data"):
        x = check_data(data, name, self.event_shape)
        return refuse(x, x.abs() > MAX_VALUE, name, f"values up to {MAX_VALUE:g} in magnitude "
                      "(the statistics hold products of values, which overflow float64 beyond "
                      "that: rescale them)")

    def _design(self, covariates: torch.Tensor) -> torch.Tensor:
        if not self.intercept:
            return covariates
        return torch.cat([covariates.new_ones(*covariates.shape[:-1], 1), covariates], -1)

    def statistics(self, data, shift):
        x = self._design(data[:, :-1]).T  # (w, n)
        y = data[:, -1]
        return torch.cat([(y * y).unsqueeze(0), y * x, x[self._rows] * x[self._cols]])

    def natural(self, params, shift):
        coefs, var = params["coefs"], params["scales"].square()
        precision = 1 / var.unsqueeze(-1)
        outer = (coefs[..., self._rows] * coefs[..., self._cols]) * self._double
        eta = torch.cat([-0.5 * precision, coefs * precision, -0.5 * outer * precision], -1)
        return eta, 0.5 * (var.log() + LOG_2PI)

    def maximize(self, stats, params, fixed=frozenset()):
        w, sums, counts = self.width, stats["sums"], stats["counts"]
        yy, xy = sums[..., 0], sums[..., 1 : 1 + w]
        gram = sums[..., 1 + w :][..., self._symmetric].unflatten(-1, (w, w))
        prior = stats.get("prior") or {}
        if "coefs" in fixed:  # the residual scale of the given lines, not of the best ones
            coefs = params["coefs"]
        elif "coefs" in prior:
            # MAP under Normal(mean, sd) given the current noise variance (a conditional
            # maximisation: the noise scale follows given these lines; still monotone)
            mean = prior["coefs"]["mean"].expand(w)
            precision = prior["coefs"]["sd"].expand(w).square().reciprocal()
            if "scales" in params:
                var = params["scales"].square()[..., None]
            else:  # an M-step from responsibilities alone: the least-squares noise variance
                ls = (torch.linalg.pinv(gram, hermitian=True) @ xy.unsqueeze(-1)).squeeze(-1)
                var = ((yy - (ls * xy).sum(-1)).clamp_min(0) / counts + self.reg_covar)[..., None]
            system = gram / var.unsqueeze(-1) + torch.diag_embed(precision.expand_as(xy))
            coefs = torch.linalg.solve(system, xy / var + mean * precision)
        else:
            # the weighted normal equations; the pseudo-inverse gives an exact maximiser even
            # when a component has fewer points than coefficients (then any solution is one)
            coefs = (torch.linalg.pinv(gram, hermitian=True) @ xy.unsqueeze(-1)).squeeze(-1)
        # sum r (y - x.b)^2 = yy - 2 b.xy + b' G b (for the least-squares b: yy - b.xy)
        fitted = (coefs.unsqueeze(-2) @ gram @ coefs.unsqueeze(-1)).squeeze((-2, -1))
        residual = (yy - 2 * (coefs * xy).sum(-1) + fitted).clamp_min(0) / counts
        out = {"coefs": coefs}
        if "scales" not in fixed:  # never below the resolution of y (reg_covar may be 0)
            resolution = (16 * EPS) ** 2 * (yy / counts).clamp_min(1e-280 / EPS**2)
            out["scales"] = torch.maximum(residual + self.reg_covar, resolution).sqrt()
        return out

    def diagnose(self, data, params, fixed=frozenset()):
        if "scales" in fixed:
            return []
        resolution = (16 * EPS) ** 2 * float(data[:, -1].square().max())
        floor = self.reg_covar * (1 + 1e-3) + 100 * resolution
        return [f"component {j} fits its points exactly (noise variance {float(v):.2g} at the "
                f"floor reg_covar={self.reg_covar:g})"
                for j, v in enumerate(params["scales"].square()) if v <= floor]

    def prior_keys(self):
        return {"coefs": "Normal(mean, sd) on each intercept and slope"}

    def prior_sites(self, prior, k):
        if "coefs" not in prior:
            return []
        mean = prior["coefs"]["mean"].expand(self.width)
        sd = prior["coefs"]["sd"].expand(self.width)
        return [PriorSite("coefs", lambda p: dist.Normal(mean, sd).expand(
            (k, self.width)).to_event(2), lambda p: p["coefs"], lambda v: {"coefs": v})]

    def inputs(self, data, n):
        if data is not None:
            return self._design(data[:, :-1])
        box = dist.Uniform(torch.tensor(float(self.low), dtype=torch.float64),
                           torch.tensor(float(self.high), dtype=torch.float64))
        covariates = pyro.sample("covariates", box.expand([self.n_covariates]).to_event(1))
        return self._design(covariates)

    def observed(self, data):
        return None if data is None else data[:, -1]

    def assemble(self, inputs, observed):
        covariates = inputs[..., 1:] if self.intercept else inputs
        return torch.cat([covariates, observed.unsqueeze(-1)], -1)

    def distribution(self, params, z, inputs=None):
        mean = (inputs * pick(params["coefs"], z, 1)).sum(-1)
        return dist.Normal(mean, pick(params["scales"], z, 0))

    def random_params(self, k, data, generator):
        spread = data[:, -1].std().clamp_min(1e-3) if data.shape[0] > 1 else data.new_tensor(1.0)
        coefs = torch.randn(k, self.width, generator=generator, dtype=data.dtype)
        return {"coefs": coefs, "scales": spread * (0.5 + torch.rand(k, generator=generator,
                                                                      dtype=data.dtype))}
