"""Initialisation strategies, in one place, so that EM and VI start from the same parameters.

Every strategy (as scikit-learn's mixtures) produces initial responsibilities
``(n, k)`` from the model's feature points; one M-step of the model turns them
into parameters. ``random_params`` instead asks the model for a random draw.
"""

from __future__ import annotations

import math

import torch

from ..models.params import Params
from ..models.validation import InputError
from .options import INIT, INIT_METHODS


def squared_distances(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``(n, c)`` squared Euclidean distances of ``points: (n, f)`` to ``centres: (c, f)``."""
    cross = points @ centres.T
    norms = (points * points).sum(1, keepdim=True) + (centres * centres).sum(1)
    return (norms - 2 * cross).clamp_min(0)


def sample_proportional(weights: torch.Tensor, count: int, generator) -> torch.Tensor:
    """``count`` indices drawn with replacement, with probability proportional to
    ``weights: (n,)`` (non-negative, positive sum): cumulative sums and a binary search,
    for any n (``torch.multinomial`` refuses more than 2^24 categories)."""
    cumulative = weights.cumsum(0)
    draws = torch.rand(count, generator=generator, dtype=weights.dtype).to(weights.device)
    draws = draws * cumulative[-1]  # drawn on the CPU: the same numbers on every device
    return torch.searchsorted(cumulative, draws, right=True).clamp_max(len(weights) - 1)


def standardise(points: torch.Tensor) -> torch.Tensor:
    """Points centred and divided by one power of two near their extent: distances keep
    their ratios exactly and their squares stay finite for any finite input."""
    from ..models.families.gaussian_numerics import reference, standardised

    return standardised(points, reference(points, common=True)).T


def kmeans_plusplus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii; scikit-learn's local trials).

    Args:
        points: ``(n, f)`` standardised points (see :func:`standardise`).

    Returns:
        ``(k,)`` indices of the chosen points.
    """
    n = points.shape[0]
    trials = 2 + int(math.log(k))
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    closest = squared_distances(points, points[chosen]).squeeze(1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # every point already sits on a centre
            candidates = torch.randint(n, (trials,), generator=generator)
        else:
            candidates = sample_proportional(closest, trials, generator)
        potentials = torch.minimum(closest, squared_distances(points, points[candidates]).T)
        best = int(potentials.sum(1).argmin())
        chosen.append(int(candidates[best]))
        closest = potentials[best]
    return torch.tensor(chosen)


def _nearest(points: torch.Tensor, centres: torch.Tensor, k: int) -> torch.Tensor:
    labels = squared_distances(points, centres).argmin(1)
    return torch.nn.functional.one_hot(labels, k).to(points.dtype)


def initial_responsibilities(points, k: int, method: str, generator) -> torch.Tensor:
    """Initial responsibilities ``(n, k)`` from ``points: (n, f)``.

    Args:
        method: ``random`` (uniform random rows, normalised), ``random_points``
            (k distinct points as centres, nearest assignment), ``kmeans++``
            (k-means++ centres, nearest assignment) or ``kmeans`` (k-means++
            followed by Lloyd's algorithm to convergence).
    """
    n = points.shape[0]
    if method == "random":
        resp = torch.rand(n, k, generator=generator, dtype=points.dtype).to(points.device)
        return resp / resp.sum(1, keepdim=True)
    if method == "random_points":
        return _nearest(points, points[torch.randperm(n, generator=generator)[:k]], k)
    centres = points[kmeans_plusplus(points, k, generator)]
    if method == "kmeans++":
        return _nearest(points, centres, k)
    if method == "kmeans":
        from ..models.kmeans import KMeans
        from .em import fit_em

        lloyd = KMeans(k=k, dim=points.shape[1])
        fit = fit_em(lloyd, points, lloyd.params(locs=centres), max_iter=300, tol=0.0,
                     hard=True, record_params=False)
        return fit.responsibilities
    raise InputError(f"method: expected one of {INIT_METHODS}, got {method!r}")


def initialize(model, data, method: str = INIT["method"].default, seed: int = INIT["seed"].default,
               restarts: int = INIT["restarts"].default) -> Params:
    """Initial parameters for ``model`` on ``data``.

    Args:
        model: any model with ``features``, ``m_step`` (and ``random_params``).
        data: ``(n, ...)`` observations; the starts are made on their device (random
            numbers drawn on the CPU: the same starts on every device).
        method: one of :data:`INIT_METHODS`.
        seed: seed of a private generator (the global RNG is untouched).
        restarts: R > 1 gives a batch of R independent starts, ``(R, ...)`` per tensor.
    """
    data = model.check_data(data)
    model.check_fit_data(data)
    method = INIT["method"].check(method, "method")
    seed = INIT["seed"].check(seed, "seed")
    restarts = INIT["restarts"].check(restarts, "restarts")
    generator = torch.Generator().manual_seed(seed)
    points = standardise(model.features(data))
    sets = []
    for _ in range(restarts):
        if method == "random_params":  # drawn on the CPU, moved to the data's device
            where = getattr(data, "device", None)
            on_cpu = not isinstance(where, torch.device) or where.type == "cpu"
            drawn = model.random_params(data if on_cpu else data.cpu(), generator)
            if not on_cpu:
                drawn = {k: torch.as_tensor(v).to(where) for k, v in drawn.items()}
            sets.append(model.check_params(drawn, "init"))
        else:
            resp = initial_responsibilities(points, model.k, method, generator)
            sets.append(model.m_step(data, resp))
    return sets[0] if restarts == 1 else Params.stack(sets)
