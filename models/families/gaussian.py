"""Gaussian components: spherical, diagonal, full and tied covariances.

Parameters (k components, dimension d):

=========  ===========================  ===================================
type       covariance parameter         meaning
=========  ===========================  ===================================
spherical  ``scales: (k,)``             standard deviation, same in every axis
diag       ``scales: (k, d)``           standard deviation per axis
full       ``scale_tril: (k, d, d)``    Cholesky factor of the covariance
tied       ``scale_tril: (d, d)``       one Cholesky factor for all components
=========  ===========================  ===================================

Statistics are formed around a shift ``c`` (the data mean) so that the
natural-parameter form stays accurate for data far from the origin:
``T(x) = [y, y*y or |y|^2 or vech(y y^T)]`` with ``y = x - c``.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..params import ParamSpec
from ..validation import InputError, as_tensor, check_data, check_int
from .base import Family, pick, shared, upper_triangle

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
LOG_2PI = math.log(2 * math.pi)


class Gaussian(Family):
    """Gaussian observations in ``dim`` dimensions.

    Args:
        dim: dimension d of one observation.
        covariance: one of ``full``, ``diag``, ``spherical``, ``tied``.
        reg_covar: added to the covariance diagonal in the M-step (as scikit-learn).
    """

    name = "gaussian"

    def __init__(self, dim: int = 1, covariance: str = "full", reg_covar: float = 1e-6):
        self.dim = check_int(dim, "dim", low=1, high=100_000)
        if covariance not in COVARIANCE_TYPES:
            raise InputError(f"covariance: expected one of {COVARIANCE_TYPES}, got {covariance!r}")
        if isinstance(reg_covar, bool) or not isinstance(reg_covar, (int, float)) or not (
            math.isfinite(reg_covar) and reg_covar >= 0
        ):
            raise InputError(f"reg_covar: expected a finite number >= 0, got {reg_covar!r}")
        self.covariance = covariance
        self._reg_covar = float(reg_covar)
        self.event_shape = (self.dim,)
        d = self.dim
        self._rows, self._cols, self._symmetric = upper_triangle(d)
        self._off = torch.where(self._rows == self._cols, -0.5, -1.0).to(torch.float64)
        self._upper = self._rows * d + self._cols  # upper triangle of a flattened d x d
        self._eye = torch.eye(d, dtype=torch.float64)
        self.reg_covar = reg_covar

    @property
    def reg_covar(self) -> float:
        return self._reg_covar

    @reg_covar.setter
    def reg_covar(self, value: float) -> None:
        self._reg_covar = float(value)
        self._reg_eye = self._reg_covar * self._eye

    def describe(self) -> str:
        return f"gaussian(dim={self.dim}, covariance={self.covariance})"

    @property
    def cov_name(self) -> str:
        return "scales" if self.covariance in ("spherical", "diag") else "scale_tril"

    def specs(self, k: int) -> dict[str, ParamSpec]:
        d = self.dim
        shape, constraint, per_component = {
            "spherical": ((k,), constraints.positive, True),
            "diag": ((k, d), constraints.positive, True),
            "full": ((k, d, d), constraints.lower_cholesky, True),
            "tied": ((d, d), constraints.lower_cholesky, False),
        }[self.covariance]
        return {
            "locs": ParamSpec((k, d), constraints.real, doc="component means"),
            self.cov_name: ParamSpec(
                shape, constraint, per_component=per_component, doc=f"{self.covariance} scale"
            ),
        }

    def check_data(self, data, name: str = "data") -> torch.Tensor:
        return check_data(data, name, self.event_shape)

    def canonical(self, values: dict) -> dict:
        values = dict(values)
        if "covariances" in values and self.cov_name == "scale_tril":
            cov = as_tensor(values.pop("covariances"), "covariances")
            chol, info = torch.linalg.cholesky_ex(cov)
            if cov.dim() < 2 or bool((info != 0).any()) or not torch.allclose(cov, cov.mT):
                raise InputError("covariances: expected symmetric positive-definite matrices")
            values["scale_tril"] = chol
        if "variances" in values and self.cov_name == "scales":
            var = as_tensor(values.pop("variances"), "variances")
            if bool((var <= 0).any()):
                raise InputError("variances: expected positive values")
            values["scales"] = var.sqrt()
        return values

    def shift(self, data: torch.Tensor) -> torch.Tensor:
        return data.mean(0)

    def statistics(self, data, shift):
        y = (data - shift).T.contiguous()  # (d, n)
        d, n = y.shape
        if self.covariance == "spherical":
            return torch.cat([y, (y * y).sum(0, keepdim=True)])
        if self.covariance == "diag":
            return torch.cat([y, y * y])
        out = y.new_empty(d + len(self._rows), n)
        out[:d] = y
        at = d
        for i in range(d):  # row i times rows i..d-1: the upper triangle of y y^T
            torch.mul(y[i : i + 1], y[i:], out=out[at : at + d - i])
            at += d - i
        return out

    def natural(self, params, shift):
        mu = params["locs"] - shift  # (*B, k, d)
        d = self.dim
        if self.cov_name == "scales":
            var = params["scales"].square()
            if self.covariance == "spherical":
                var = var.unsqueeze(-1)  # (*B, k, 1)
            lin = mu / var
            log_det = var.log().sum(-1) * (d if self.covariance == "spherical" else 1)
            log_norm = 0.5 * ((mu * lin).sum(-1) + log_det + d * LOG_2PI)
            return torch.cat([lin, -0.5 / var], -1), log_norm
        tril = params["scale_tril"]
        batch = mu.shape[:-1]  # (*B, k)
        if self.covariance == "tied":
            tril = tril.unsqueeze(-3).expand(*batch, d, d)
        if len(batch) > 1:  # bmm works on 3-D stacks (far less overhead than matmul)
            tril, mu = tril.reshape(-1, d, d), mu.reshape(-1, d)
        inv = torch.linalg.solve_triangular(tril, self._eye, upper=False)  # L^-1
        white = torch.bmm(inv, mu.unsqueeze(-1))  # L^-1 mu
        lin = torch.bmm(inv.mT, white)  # precision @ mu
        second = torch.bmm(inv.mT, inv).flatten(-2).index_select(-1, self._upper) * self._off
        log_norm = torch.diagonal(tril, 0, -2, -1).log().sum(-1)
        log_norm += 0.5 * (white.square().sum((-2, -1)) + d * LOG_2PI)
        return torch.cat([lin.squeeze(-1), second], -1).reshape(*batch, -1), log_norm.reshape(
            batch)

    def maximize(self, counts, sums, shift, params):
        d = self.dim
        n = counts.unsqueeze(-1)
        mean = sums[..., :d] / n  # (*B, k, d)
        out = {"locs": mean + shift}
        if self.covariance == "spherical":
            var = ((sums[..., d] / counts - (mean * mean).sum(-1)) / d).clamp_min(0)
            out["scales"] = (var + self.reg_covar).sqrt()
        elif self.covariance == "diag":
            var = (sums[..., d:] / n - mean * mean).clamp_min(0)
            out["scales"] = (var + self.reg_covar).sqrt()
        else:
            second = sums[..., d:][..., self._symmetric].unflatten(-1, (d, d))  # symmetric
            outer = mean.unsqueeze(-1) * mean.unsqueeze(-2)
            if self.covariance == "full":
                cov = second / n.unsqueeze(-1) - outer
            else:
                total = counts.sum(-1)[..., None, None]
                cov = (second.sum(-3) - (counts[..., None, None] * outer).sum(-3)) / total
            out["scale_tril"] = _cholesky(cov + self._reg_eye)
        return out

    def diagnose(self, data, params):
        """Components whose variance sits at the floor: collapsed onto a point or a line."""
        if self.cov_name == "scales":
            smallest = params["scales"].square().reshape(params["scales"].shape[0], -1).amin(-1)
        else:
            tril = params["scale_tril"]
            smallest = torch.diagonal(tril, 0, -2, -1).square().amin(-1).reshape(-1)
        floor = max(10 * self.reg_covar, 1e-12 * float(data.var(0).mean()) if len(data) > 1
                    else 0.0)
        what = (lambda j: "the shared covariance") if self.covariance == "tied" else (
            lambda j: f"component {j}")
        return [f"{what(j)} collapsed (variance {float(v):.2g} at the floor: "
                f"reg_covar={self.reg_covar:g}); the likelihood is unbounded there, so use "
                "fewer components or a larger reg_covar"
                for j, v in enumerate(smallest) if v <= floor]

    def distribution(self, params, z, inputs=None):
        loc = pick(params["locs"], z, 1)
        if self.covariance == "spherical":
            return dist.Normal(loc, pick(params["scales"], z, 0).unsqueeze(-1)).to_event(1)
        if self.covariance == "diag":
            return dist.Normal(loc, pick(params["scales"], z, 1)).to_event(1)
        if self.covariance == "full":
            return dist.MultivariateNormal(loc, scale_tril=pick(params["scale_tril"], z, 2))
        return dist.MultivariateNormal(loc, scale_tril=shared(params["scale_tril"], 2))

    def random_params(self, k, data, generator):
        d = self.dim
        spread = data.std(0).clamp_min(1e-3) if data.shape[0] > 1 else data.new_ones(d)
        rows = torch.randint(data.shape[0], (k,), generator=generator)
        locs = data[rows] + 0.1 * spread * torch.randn(k, d, generator=generator, dtype=data.dtype)
        size = spread.mean() * (0.5 + torch.rand(k, generator=generator, dtype=data.dtype))
        if self.covariance == "spherical":
            return {"locs": locs, "scales": size}
        if self.covariance == "diag":
            return {"locs": locs, "scales": size[:, None] * spread / spread.mean()}
        a = torch.randn(k, d, d, generator=generator, dtype=data.dtype) / math.sqrt(d)
        cov = a @ a.mT + torch.eye(d, dtype=data.dtype)
        tril = torch.linalg.cholesky(cov) * size[:, None, None]
        return {"locs": locs, "scale_tril": tril if self.covariance == "full" else tril[0]}


def _cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Cholesky factor; adds growing jitter where round-off broke positive definiteness."""
    chol, info = torch.linalg.cholesky_ex(cov)
    if not bool(info.any()):
        return chol
    jitter = 1e-10 * float(torch.diagonal(cov, 0, -2, -1).abs().mean().clamp_min(1e-300))
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype)
    while bool(info.any()) and jitter < 1e300:
        chol, info = torch.linalg.cholesky_ex(cov + jitter * eye)
        jitter = jitter * 10
    return chol
