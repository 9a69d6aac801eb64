"""What pooling buys: a grouped mixture beside a mixture fitted to each group alone."""

from __future__ import annotations

import torch

from ..models.mixture import Mixture
from ..models.recipe import rebuild, recipe
from .compare import parameter_errors
from .em import fit_em
from .init import initialize


def each_group_alone(model, data, seed: int = 0, **em_options) -> list:
    """One plain mixture (the grouped model's family and k) per group, each fitted by EM to
    that group's rows alone, from k-means++ starts (``seed``).

    Args:
        model: a :class:`~emvi.models.grouped.GroupedMixture`.
        data: ``(n, 1 + event)`` grouped rows.

    Returns:
        ``[(group, fit or None)]``: ``None`` where a group has fewer rows than components.
    """
    data = model.check_data(data)
    fits = []
    for group in range(model.groups):
        rows = model._values(data[data[:, 0] == group])
        if rows.shape[0] < model.k:
            fits.append((group, None))
            continue
        family = rebuild(recipe(model.family))
        alone = Mixture(family, model.k)
        fits.append((group, fit_em(alone, rows, initialize(alone, rows, seed=seed),
                                   **em_options)))
    return fits


def component_errors(model, fit_params, truth) -> dict[str, float]:
    """Largest error of the shared component parameters (the family's) after alignment."""
    names = list(model.family.specs(model.k))
    alone = Mixture(rebuild(recipe(model.family)), model.k)
    reference = {"weights": torch.full((model.k,), 1.0 / model.k, dtype=torch.float64),
                 **{n: truth[n] for n in names}}
    other = {"weights": reference["weights"], **{n: fit_params[n] for n in names}}
    errors = parameter_errors(alone, alone.check_params(reference),
                              alone.check_params(other))
    return {n: errors[n] for n in names}


def pooling_summary(model, data, pooled_params, truth, **em_options) -> dict:
    """Component errors against the truth: the pooled fit, and each group fitted alone."""
    pooled = component_errors(model, pooled_params, truth)
    groups = {}
    for group, fit in each_group_alone(model, data, **em_options):
        groups[group] = None if fit is None else component_errors(model, fit.params, truth)
    return {"pooled": pooled, "alone": groups}
