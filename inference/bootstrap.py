"""The bootstrap of an EM fit: B data sets fitted from the estimate, aligned to it.

*Non-parametric* (resampled rows): a resample of n rows drawn with replacement is the
original data with integer weights (how often each row was drawn), so B resamples are
one data set with ``(B, n)`` weights. Their B EMs run as one batch of restarts, all
warm-started from the estimate: the E-step's responsibilities are multiplied by each
resample's weights before the model's own ``summarize`` and ``maximize`` (statistics
are linear in the responsibilities), and the weighted log-likelihood
``sum_n c_bn log p(x_n)`` decides convergence per resample.

*Parametric* (simulated from the fitted model): each data set has new points, which a
batch of restarts over one data set cannot hold, so the B fits run one after another
(:func:`~inference.em.fit_em`, warm-started from the estimate).

Each fit is label-aligned to the estimate (Hungarian, :func:`~inference.compare.alignment`);
standard errors are the replicates' standard deviations and intervals their percentiles.
"""

from __future__ import annotations

import math

import torch

from ..models.base import EXP_FLOOR
from ..models.params import Params
from ..models.validation import InputError, check_int, check_real
from .compare import alignment, permute
from .uncertainty import StandardErrors, Uncertainty

KINDS = ("nonparametric", "parametric")


def resample_weights(n: int, replicates: int, generator: torch.Generator) -> torch.Tensor:
    """``(B, n)`` how often each of ``n`` rows is drawn in each of B resamples of size n."""
    rows = torch.randint(n, (replicates, n), generator=generator)
    weights = torch.zeros(replicates, n, dtype=torch.float64)
    return weights.scatter_add_(1, rows, torch.ones_like(weights))


def _expand(params: Params, replicates: int) -> Params:
    return Params({k: v.expand(replicates, *v.shape).clone() for k, v in params.items()})


def weighted_em(model, data, start: Params, weights: torch.Tensor, max_iter: int = 1000,
                tol: float = 1e-8):
    """EM on one data set with per-observation weights, B weightings as one batch.

    Args:
        model: a row-wise model whose statistics are linear in the responsibilities
            (every :class:`~models.mixture.Mixture`, every program-only model).
        data: ``(n, ...)`` checked data.
        start: one parameter set: every weighting starts from it.
        weights: ``(B, n)`` non-negative weights (resampling counts).
        max_iter: most M-steps.
        tol: a weighting stops when its weighted log-likelihood per observation changes by
            at most ``tol``.

    Returns:
        ``(params (B, ...), log_likelihoods (B,), converged (B,) bool, iterations (B,))``.
    """
    replicates, n = weights.shape
    shift = model.shift(data)
    params = _expand(start, replicates)
    lls = torch.full((replicates,), -math.inf, dtype=torch.float64)
    converged = torch.zeros(replicates, dtype=torch.bool)
    iterations = torch.zeros(replicates, dtype=torch.long)
    active = torch.arange(replicates)
    with torch.inference_mode(model.m_step_kind == "closed-form"):
        prepared = model.prepare(data, shift)
        for iteration in range(max_iter + 1):
            current = Params({k: v.index_select(0, active) for k, v in params.items()})
            w = weights.index_select(0, active)
            # components by points (the layout the models compute in: fast reductions)
            joint = model.joint(prepared, current).mT  # (b, k, n)
            top = joint.amax(-2, keepdim=True)
            resp = (joint - top).clamp_min_(-EXP_FLOOR).exp_()  # no slow subnormals
            total = resp.sum(-2, keepdim=True)
            ll = (w * (total.log() + top).squeeze(-2)).sum(-1)
            done = (ll - lls[active]).abs() / n <= tol
            converged[active] = done
            lls[active] = ll
            stopping = done | ~torch.isfinite(ll)
            if iteration == max_iter or bool(stopping.all()):
                break
            moving = torch.nonzero(~stopping).reshape(-1)
            active, current = active[moving], Params({k: v[moving] for k, v in current.items()})
            resp = resp[moving] * (w[moving].unsqueeze(-2) / total[moving])
            stats = model.summarize(prepared, resp.mT, current)
            new = model.maximize(stats, current, shift)
            params = Params({k: v.index_copy(0, active, new[k].to(v.dtype))
                             for k, v in params.items()})
            iterations[active] += 1
    params = params.map(torch.clone)  # ordinary tensors again
    return params, lls.clone(), converged.clone(), iterations.clone()


def _parametric(model, data, params, replicates, seed, max_iter, tol):
    from .em import fit_em

    fits = []
    n = model.n_observations(data)
    seeds = torch.randint(2**62, (replicates,), generator=torch.Generator().manual_seed(seed))
    for b in range(replicates):
        sample = model.simulate(params, n, seed=int(seeds[b])).data
        fit = fit_em(model, sample, params, max_iter=max_iter, tol=tol, record_params=False)
        fits.append(fit)
    stacked = Params.stack([fit.params for fit in fits])
    lls = torch.tensor([fit.log_likelihood for fit in fits], dtype=torch.float64)
    converged = torch.tensor([fit.converged for fit in fits])
    return stacked, lls, converged


def bootstrap(model, data, params, replicates: int = 200, kind: str = "nonparametric",
              seed: int = 0, max_iter: int = 1000, tol: float = 1e-8,
              strategy: str = "batch") -> Uncertainty:
    """Bootstrap standard errors and percentile intervals of an estimate.

    Args:
        model: the model.
        data: ``(n, ...)`` the data ``params`` were fitted to.
        params: the estimate (one parameter set; every refit starts from it).
        replicates: B, the number of bootstrap data sets.
        kind: ``nonparametric`` (rows resampled with replacement) or ``parametric`` (data
            simulated from the fitted model's program).
        seed: seed of a private generator (the global one is untouched).
        max_iter, tol: EM's options for each refit.
        strategy: non-parametric only: ``batch`` (one weighted EM over B resamples, the
            default) or ``loop`` (B separate fits of the resampled rows; for comparison).

    Returns:
        An :class:`~inference.uncertainty.Uncertainty` with ``replicates`` (the aligned
        refits) and percentile intervals.
    """
    data = model.check_data(data)
    params = model.check_params(params, "params")
    if params.batch_shape(model.specs):
        raise InputError("params: expected one parameter set, got a restart batch")
    replicates = check_int(replicates, "replicates", low=2, high=100_000)
    if kind not in KINDS:
        raise InputError(f"kind: expected one of {list(KINDS)}, got {kind!r}")
    if strategy not in ("batch", "loop"):
        raise InputError(f"strategy: expected 'batch' or 'loop', got {strategy!r}")
    if model.n_units(data) != model.n_observations(data):
        raise InputError(f"model: the bootstrap resamples and refits rows; "
                         f"{model.describe()} keeps its observations in larger units")
    seed = check_int(seed, "seed", low=0)
    max_iter = check_int(max_iter, "max_iter", low=0)
    tol = check_real(tol, "tol", low=0.0)
    n = model.n_observations(data)
    if kind == "parametric":
        fitted, lls, converged = _parametric(model, data, params, replicates, seed, max_iter,
                                             tol)
    else:
        generator = torch.Generator().manual_seed(seed)
        weights = resample_weights(n, replicates, generator)
        if strategy == "batch":
            fitted, lls, converged, _ = weighted_em(model, data, params, weights, max_iter,
                                                    tol)
        else:
            fitted, lls, converged = _loop(model, data, params, weights, max_iter, tol)
    return summarize(model, params, fitted, lls, converged, f"bootstrap ({kind}, "
                     f"B={replicates})")


def _loop(model, data, params, weights, max_iter, tol):
    from .em import fit_em

    fits = []
    for row in weights:
        rows = torch.repeat_interleave(torch.arange(len(row)), row.long())
        fits.append(fit_em(model, data[rows], params, max_iter=max_iter, tol=tol,
                           record_params=False))
    return (Params.stack([f.params for f in fits]),
            torch.tensor([f.log_likelihood for f in fits], dtype=torch.float64),
            torch.tensor([f.converged for f in fits]))


def summarize(model, params: Params, fitted: Params, lls: torch.Tensor,
              converged: torch.Tensor, method: str) -> Uncertainty:
    """Align each refit to the estimate; their spread gives the standard errors.

    Args:
        params: the estimate; ``fitted``: ``(B, ...)`` the refits; ``lls``: ``(B,)`` their
            log-likelihoods; ``converged``: ``(B,)`` whether each met the tolerance.
    """
    names = [name for name, spec in model.specs.items() if not spec.fixed]
    notes = []
    finite = torch.isfinite(lls)
    for name in names:
        finite &= torch.isfinite(fitted[name]).reshape(len(lls), -1).all(-1)
    kept = torch.nonzero(finite).reshape(-1).tolist()
    if len(kept) < len(lls):
        notes.append(f"bootstrap: {len(lls) - len(kept)} of {len(lls)} refits were not finite "
                     "and are left out")
    if len(kept) < 2:
        raise InputError("replicates: fewer than two bootstrap refits are finite")
    if not bool(converged[finite].all()):
        notes.append(f"bootstrap: {int((~converged[finite]).sum())} refit(s) reached max_iter "
                     "before tol")
    aligned, switched = [], 0
    for b in kept:
        one = fitted.select(b, model.specs)
        perm = alignment(model, params, one)
        switched += int(any(int(p) != j for j, p in enumerate(perm)))
        aligned.append(permute(model, one, perm))
    if switched:
        notes.append(f"bootstrap: {switched} refit(s) came back with their components in "
                     "another order and were relabelled to the estimate's")
    replicas = Params({name: torch.stack([a[name] for a in aligned]) for name in names})
    se = Params({name: value.std(0) for name, value in replicas.items()})
    flat = torch.cat([value.reshape(len(kept), -1) for value in replicas.values()], 1)
    covariance = torch.atleast_2d(torch.cov(flat.T))
    unavailable = Params({name: torch.zeros_like(v, dtype=torch.bool) for name, v in se.items()})
    estimates = Params({name: params[name] for name in names})
    return Uncertainty(method, model, estimates, StandardErrors(se, method, unavailable, notes),
                       covariance, None, [], notes, replicas, Params(params))
