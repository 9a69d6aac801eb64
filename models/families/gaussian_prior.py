"""Conjugate priors of the Gaussian family and its MAP M-step.

Full and tied covariances take a normal-inverse-Wishart prior, diagonal and spherical
ones a normal-inverse-Gamma prior per variance:

    Sigma_j ~ InverseWishart(df, scale)           (or sigma^2 ~ InverseGamma(shape, rate))
    mu_j | Sigma_j ~ Normal(mean, Sigma_j / strength)

The MAP M-step is the joint posterior mode, from the same statistics as maximum
likelihood (per component: N, the weighted mean m and the scatter S_m around it):

    mu = (N m + strength mean) / (N + strength)
    Sigma = (S_m + scale + N strength / (N + strength) (m - mean)(m - mean)^T)
            / (N + df + d + 1 + [strength > 0])

(diagonal: per coordinate, with 2 rate for the scale and 2 shape + 2 for df + d + 1;
spherical: summed over coordinates, N d and d [strength > 0]; tied: summed over
components, K [strength > 0]). Without a prior on the covariance the scale term is 0
and df + d + 1 is 0 (a flat prior); with one, ``reg_covar`` is not added (the prior
keeps the covariance positive definite, as it does in the Pyro program).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

from ..priors import InverseWishart, PriorSite


def prior_keys(covariance: str) -> dict[str, str]:
    scale = ("covariances" if covariance in ("full", "tied") else "variances")
    what = ("inverse-Wishart(df, scale) on each covariance" if scale == "covariances"
            else "inverse-Gamma(shape, rate) on each variance")
    return {"locs": "Normal(mean, covariance / strength) on each mean", scale: what}


def prior_sites(family, prior, k: int) -> list[PriorSite]:
    """The program's sample sites: the covariance (or variances) first, then the means."""
    d, kind = family.dim, family.covariance
    sites = []
    if "covariances" in prior:
        df = prior["covariances"].get("df", torch.tensor(d + 2.0, dtype=torch.float64))
        scale = scale_matrix(prior["covariances"]["scale"], d)
        if kind == "full":
            sites.append(PriorSite(
                "covariances", lambda p: InverseWishart(df, scale).expand((k,)).to_event(1),
                lambda p: p["scale_tril"] @ p["scale_tril"].mT,
                lambda v: {"scale_tril": torch.linalg.cholesky(v)}))
        else:
            sites.append(PriorSite(
                "covariances", lambda p: InverseWishart(df, scale),
                lambda p: p["scale_tril"] @ p["scale_tril"].mT,
                lambda v: {"scale_tril": torch.linalg.cholesky(v)}))
    if "variances" in prior:
        shape, rate = prior["variances"]["shape"], prior["variances"]["rate"]
        event = (k, d) if kind == "diag" else (k,)
        sites.append(PriorSite(
            "variances", lambda p: dist.InverseGamma(shape, rate).expand(event).to_event(
                len(event)),
            lambda p: p["scales"].square(), lambda v: {"scales": v.sqrt()}))
    if "locs" in prior and float(prior["locs"]["strength"]) > 0:
        mean = prior["locs"]["mean"].expand(d)
        root = math.sqrt(float(prior["locs"]["strength"]))

        def locs_distribution(p):
            if kind in ("full", "tied"):
                tril = p["scale_tril"] / root
                normal = dist.MultivariateNormal(mean, scale_tril=tril)
                return (normal if kind == "full" else normal.expand((k,))).to_event(1)
            scales = p["scales"] / root
            scales = scales if kind == "diag" else scales.unsqueeze(-1).expand(
                *scales.shape, d)
            return dist.Normal(mean, scales).to_event(2)

        sites.append(PriorSite("locs", locs_distribution, lambda p: p["locs"],
                               lambda v: {"locs": v}))
    return sites


def scale_matrix(scale: torch.Tensor, d: int) -> torch.Tensor:
    """An inverse-Wishart scale from a number (times the identity), a diagonal or a matrix."""
    if scale.dim() == 0:
        return scale * torch.eye(d, dtype=torch.float64)
    if scale.dim() == 1:
        return torch.diag(scale.expand(d))
    return scale


def map_step(family, stats, standard, ref, fixed, prior) -> dict:
    """The MAP M-step in standardised units; returns parameters in the data's units.

    Args:
        standard: the current parameters in standardised units (the statistics' centres).
        ref: the fit's standardised coordinates (``scale``, ``offset``).
    """
    d, kind = family.dim, family.covariance
    counts, locs = stats["counts"], standard["locs"]
    n = counts.unsqueeze(-1)
    scale = ref.scale
    strength = float(prior["locs"]["strength"]) if "locs" in prior else 0.0
    mean = (prior["locs"]["mean"].expand(d) / scale - ref.offset) if strength else None
    out = {}
    if "locs" in fixed:
        sample_mean, delta = locs, torch.zeros_like(stats["sums"])
    else:
        delta = stats["sums"] / n
        sample_mean = locs + delta
        new = (n * sample_mean + strength * mean) / (n + strength) if strength else sample_mean
        out["locs"] = (new + ref.offset) * scale
    if family.cov_name in fixed:
        return out
    second = stats["second"]
    shrink = (counts * strength / (counts + strength)) if strength else None
    gap = (sample_mean - mean) if strength else None
    if kind in ("full", "tied"):
        scatter = second - n.unsqueeze(-1) * delta.unsqueeze(-1) * delta.unsqueeze(-2)
        if strength:
            scatter = scatter + shrink[..., None, None] * gap.unsqueeze(-1) * gap.unsqueeze(-2)
        extra = 1.0 if strength else 0.0
        if kind == "tied":
            scatter, total, extra = scatter.sum(-3), counts.sum(-1)[..., None, None], (
                extra * family_k(counts))
        else:
            total = n.unsqueeze(-1)
        if "covariances" in prior:
            df = prior["covariances"].get("df", torch.tensor(d + 2.0, dtype=torch.float64))
            psi = scale_matrix(prior["covariances"]["scale"], d) / (scale.unsqueeze(-1)
                                                                     * scale.unsqueeze(-2))
            cov = (scatter + psi) / (total + df + d + 1 + extra)
        else:  # a prior on the means only: reg_covar and the floors as without priors
            cov = scatter / (total + extra)
            diag = torch.diagonal(cov, 0, -2, -1)
            floor = family._resolution(sample_mean, ref)
            floor = floor.amax(-1) if kind == "tied" else floor
            diag.copy_(family._floored(diag, family.reg_covar / scale.square(),
                                       floor.unsqueeze(-1)))
        cov = 0.5 * (cov + cov.mT)
        from .gaussian import _cholesky

        out["scale_tril"] = _cholesky(cov) * scale.unsqueeze(-1)
        return out
    scatter = second - (n * delta.square() if kind == "diag" else counts * delta.square().sum(
        -1))
    if strength:
        scatter = scatter + (shrink.unsqueeze(-1) * gap.square() if kind == "diag"
                             else shrink * gap.square().sum(-1))
    units = (scale.square() if kind == "diag" else scale[0].square())
    total = n if kind == "diag" else counts * d
    extra = (1.0 if kind == "diag" else d) if strength else 0.0
    if "variances" in prior:
        shape, rate = prior["variances"]["shape"], prior["variances"]["rate"]
        var = (scatter + 2 * rate / units) / (total + 2 * shape + 2 + extra)
    else:
        floor = family._resolution(sample_mean, ref)
        var = family._floored(scatter / (total + extra), family.reg_covar / units,
                              floor.unsqueeze(-1) if kind == "diag" else floor)
    out["scales"] = var.clamp_min(1e-300).sqrt() * (scale if kind == "diag" else scale[0])
    return out


def family_k(counts: torch.Tensor) -> int:
    return counts.shape[-1]
