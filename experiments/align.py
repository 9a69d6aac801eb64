"""One labelling of the components for every table and figure of a cell.

Each fit is aligned once, to the truth when it is known (and has the fitted number of
components), else to the first fit (EM's, when EM runs), by the Hungarian matching of
:func:`inference.compare.alignment`. Component ``j`` is then the same component in the
parameter table, the data plot, the fitted densities, the trajectories and the ellipses.
"""

from __future__ import annotations

import re

import numpy as np

from ..inference.compare import alignment, permute


def align_fits(model, truth, fits: dict) -> dict:
    """Permutations that put every fit in the reference's component order.

    Args:
        truth: true parameters with ``model.k`` components, or ``None``.
        fits: ``label -> Params`` (each fit's final parameters).

    Returns:
        ``{"reference": "truth" or a fit's label, "permutations": {label: perm},
        "params": {label: aligned params as lists}}`` where fit component ``perm[j]``
        is shown as component ``j``.
    """
    labels = list(fits)
    reference = "truth" if truth is not None else labels[0]
    ref = truth if truth is not None else fits[labels[0]]
    perms, params = {}, {}
    for label, values in fits.items():
        if label == reference:
            perm = np.arange(model.k)
        else:
            perm = np.asarray(alignment(model, ref, values))
        perms[label] = [int(p) for p in perm]
        params[label] = permute(model, values, perm).to_lists()
    return {"reference": reference, "permutations": perms, "params": params}


_COMPONENT = re.compile(r"\bcomponent (\d+)\b")


def renumber(note: str, perm: list[int] | None) -> str:
    """A fit's note with its own component numbers replaced by the aligned ones."""
    if not perm:
        return note
    shown = {fitted: j for j, fitted in enumerate(perm)}
    return _COMPONENT.sub(lambda m: f"component {shown.get(int(m.group(1)), m.group(1))}", note)
