"""What went wrong in a cell, from its saved results: the status every table row, every
sweep point and the report's "Things to look at" list carry.

Four kinds, each read from what the fits saved (never recomputed):

- ``not converged``: a path stopped at ``max_iter`` / ``steps``, or on a non-finite
  objective, before meeting its tolerance (the fit's ``converged`` flag);
- ``collapsed``: a component collapsed onto a point (or a line), is empty, or fits its
  points exactly (the fit's notes, component numbers in the aligned labelling);
- ``different optima``: EM and VI, from the same start, end at objectives whose
  relative gap exceeds the cell's ``compare.rtol``; or VI's own best restart beat EM's
  best restart by more than that;
- ``relocated``: hard EM moved empty clusters (the fit's events).
"""

from __future__ import annotations

from dataclasses import dataclass

from .align import renumber

LABEL = {"em": "EM", "vi": "VI"}
KINDS = ("not converged", "collapsed", "different optima", "relocated")
#: words in a fit's notes that mean a degenerate component
COLLAPSE_WORDS = ("collapsed", "is empty", "fits its points exactly")


@dataclass(frozen=True)
class Flag:
    """One thing to look at: its kind, a short form for tables, a sentence for lists,
    and the paths it concerns (``("em",)``, ``("vi",)`` or both)."""

    kind: str
    short: str
    text: str
    paths: tuple = ("em", "vi")


def _perm(cell: dict, label: str):
    return ((cell.get("alignment") or {}).get("permutations") or {}).get(label)


def cell_flags(cell: dict) -> list[Flag]:
    """Every flag of one saved cell, in the order of :data:`KINDS`."""
    fits, comp = cell["fits"], cell["comparison"]
    flags = []
    for label, fit in fits.items():
        if not fit["converged"]:
            why = next((n for n in fit["notes"] if n.startswith(("not converged", "stopped"))),
                       "did not meet its tolerance")
            why = why.removeprefix("not converged: ")
            flags.append(Flag("not converged", f"{LABEL[label]} not converged",
                              f"{LABEL[label]} not converged: {why}", (label,)))
    for label, fit in fits.items():
        for note in fit["notes"]:
            if any(word in note for word in COLLAPSE_WORDS):
                note = renumber(note, _perm(cell, label))
                head = note.split(" (")[0]
                flags.append(Flag("collapsed", f"{LABEL[label]}: {head}",
                                  f"{LABEL[label]}: {note}", (label,)))
    flags += _optimum_flags(cell, fits, comp)
    for label, fit in fits.items():
        moved = fit["events"]
        if moved:
            its = ", ".join(str(e["iteration"]) for e in moved[:6])
            more = ", ..." if len(moved) > 6 else ""
            flags.append(Flag("relocated", f"{LABEL[label]}: {len(moved)} relocated",
                              f"{LABEL[label]} relocated {len(moved)} empty cluster(s) to the "
                              f"farthest point (iterations {its}{more}); each such step may "
                              "lower the objective", (label,)))
    return flags


def _optimum_flags(cell: dict, fits: dict, comp: dict) -> list[Flag]:
    rtol = comp["rtol"]
    hard = any(fit["method"] == "hard-em" for fit in fits.values())
    flags = []
    if len(fits) == 2 and comp["relative_gap"] > rtol:
        lls = {label: fit["log_likelihood"] for label, fit in fits.items()}
        better = max(lls, key=lls.get)
        values = ", ".join(f"{LABEL[m]} {v:.6g}" for m, v in lls.items())
        why = (" (hard EM maximises the classification likelihood, VI the marginal one)"
               if hard else "")
        settled = all(fit["converged"] for fit in fits.values())
        where = "different optima" if settled else "different objectives (not both converged)"
        flags.append(Flag("different optima", f"gap {comp['relative_gap']:.1e} "
                          f"({LABEL[better]} higher)",
                          f"EM and VI from the same start end at {where}: {values} "
                          f"(relative gap {comp['relative_gap']:.2g} > rtol {rtol:g}){why}"))
    restarts = cell.get("restarts") or {}
    em, vi = restarts.get("em"), restarts.get("vi")
    if em and vi and restarts.get("count", 1) > 1 and not hard:
        best_em = em["log_likelihoods"][em["best"]]
        best_vi = vi["log_likelihoods"][vi["best"]]
        if best_vi - best_em > rtol * abs(best_em):
            flags.append(Flag("different optima", f"VI restart {vi['best']} higher",
                              f"VI's own best restart (start {vi['best']}, {best_vi:.6g}) is "
                              f"above EM's best restart (start {em['best']}, {best_em:.6g}): "
                              "EM's restarts missed that optimum"))
    return flags


def status_text(flags: list[Flag]) -> str:
    """The short status of a table row: ``ok`` or the flags, ``; ``-separated."""
    return "; ".join(f.short for f in flags) if flags else "ok"


def things_to_look_at(metrics: dict) -> list[str]:
    """The report's opening list (empty when nothing happened): one line per flag."""
    lines = []
    for name, exp in metrics["experiments"].items():
        for cell in exp["cells"]:
            where = f"**{name}**" + ("" if cell["cell"] == "all" else f" ({cell['cell']})")
            lines += [f"- {where}: {flag.text}" for flag in cell_flags(cell)]
    return lines
