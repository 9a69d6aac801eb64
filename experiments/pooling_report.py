"""A grouped mixture's runs: what pooling buys against fitting each group alone.

The runner stores ``result["pooling"]`` (see :func:`summarize`) when the model has groups
and the truth is known; the report turns it into one table (:func:`section`)."""

from __future__ import annotations

from ..inference.pooling import pooling_summary


def summarize(model, data, fits: dict, truth, em: dict) -> dict | None:
    """Largest error of each shared component parameter against the truth, for EM's pooled
    fit and for a plain mixture fitted by EM to each group's rows alone; ``None`` unless
    the model is grouped, the truth comparable and EM ran."""
    if not hasattr(model, "groups") or truth is None or "em" not in fits:
        return None
    summary = pooling_summary(model, data, fits["em"].params, truth, tol=em["tol"],
                              max_iter=em["max_iter"])
    sizes = [int((data[:, 0] == g).sum()) for g in range(model.groups)]
    return {"pooled": {k: float(v) for k, v in summary["pooled"].items()},
            "alone": [None if errors is None else {k: float(v) for k, v in errors.items()}
                      for _, errors in sorted(summary["alone"].items())],
            "group_sizes": sizes}


def section(cell: dict) -> list[str]:
    """Markdown lines: the pooled fit's errors beside each group's own fit."""
    pooling = cell.get("pooling")
    if not pooling:
        return []
    names = list(pooling["pooled"])
    header = ["fit", "rows", *[f"max error of {n}" for n in names]]
    rows = [["pooled (all groups, EM)", str(sum(pooling["group_sizes"])),
             *[f"{pooling['pooled'][n]:.3g}" for n in names]]]
    worse = 0
    for group, (errors, size) in enumerate(zip(pooling["alone"], pooling["group_sizes"])):
        if errors is None:
            rows.append([f"group {group} alone", str(size), *["too few rows"] * len(names)])
            continue
        worse += any(errors[n] > pooling["pooled"][n] for n in names)
        rows.append([f"group {group} alone", str(size), *[f"{errors[n]:.3g}" for n in names]])
    lines = ["#### What pooling buys", "",
             "The shared components against the truth (largest absolute error after label "
             "alignment): the grouped model fitted to every group at once, beside a plain "
             "mixture fitted to each group's rows alone.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"Pooling is more accurate than {worse} of the {len(rows) - 1} groups alone.",
              ""]
    return lines
