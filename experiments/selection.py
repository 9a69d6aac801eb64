"""Model selection over a sweep of ``model.k``: BIC, AIC and ICL per K (and per value of
the other swept model options, e.g. the covariance type), and the choice.

All three are in the lower-is-better form (scikit-learn's):

- BIC = −2 log L + p log n,
- AIC = −2 log L + 2 p,
- ICL = BIC + 2 EN, with EN = −Σ_n Σ_j r_nj log r_nj the entropy of the
  responsibilities (Biernacki, Celeux & Govaert's ICL in McLachlan & Peel's "ICL-BIC"
  form). mclust plots the negatives (higher is better) and its ``icl()`` puts the MAP
  classification in place of the soft entropy.

Each cell's criteria come from the better of its two fits (the higher log-likelihood;
EM on a tie within ``compare.rtol``): the likelihood maximum is what the criteria want.
The choice is the lowest BIC over every K and group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .status import Flag, cell_flags

CRITERIA = ("bic", "aic", "icl")


@dataclass
class Row:
    """One cell of the sweep as a candidate model."""

    cell: str
    group: tuple
    k: int
    source: str
    log_likelihood: float
    n_parameters: int | None
    criteria: dict
    flags: list[Flag]


def _source(cell: dict) -> str:
    fits = cell["fits"]
    if len(fits) == 1:
        return next(iter(fits))
    em, vi = fits["em"]["log_likelihood"], fits["vi"]["log_likelihood"]
    return "vi" if vi - em > cell["comparison"]["rtol"] * abs(em) else "em"


def group_keys(exp: dict) -> list[str]:
    """The swept keys other than ``model.k``: each combination is one line of the plot."""
    return [key for key, _ in exp["axes"] if key != "model.k"]


def selection(exp: dict) -> dict | None:
    """The rows and choices of a sweep over ``model.k``, or ``None`` without one.

    Returns:
        ``{"rows": [Row], "groups": [key], "chosen": {criterion: row index or None}}``.
    """
    if "model.k" not in dict((key, v) for key, v in exp["axes"]):
        return None
    groups = group_keys(exp)
    rows = []
    for cell in exp["cells"]:
        source = _source(cell)
        fit = cell["fits"][source]
        values = {c: fit.get(c) for c in CRITERIA}
        rows.append(Row(cell["cell"], tuple(cell["values"][g] for g in groups),
                        int(cell["values"]["model.k"]), source, fit["log_likelihood"],
                        fit.get("n_parameters"), values, cell_flags(cell)))
    chosen = {}
    for criterion in CRITERIA:
        scored = [(r.criteria[criterion], i) for i, r in enumerate(rows)
                  if isinstance(r.criteria[criterion], (int, float))
                  and math.isfinite(r.criteria[criterion])]
        chosen[criterion] = min(scored)[1] if scored else None
    return {"rows": rows, "groups": groups, "chosen": chosen}


def group_name(groups: list[str], group: tuple) -> str:
    """``covariance = full`` (the swept keys without their section)."""
    return ", ".join(f"{key.split('.', 1)[1]} = {value}" for key, value in zip(groups, group))
