"""How sure the EM fit of a run is: the numbers a cell keeps and the report's tables.

A run with ``[uncertainty] standard_errors = true`` (and/or ``bootstrap = B``) keeps, per
cell, ``uncertainty.em`` in its ``result.json``:

- ``observed`` / ``bootstrap``: ``method``, ``standard_errors``, the interval bounds
  ``lower`` and ``upper`` (at ``level``), ``unavailable`` (bool per entry), ``notes`` and
  ``seconds``. An unavailable standard error is ``null`` (it is ``inf`` in Python), as
  is an infinite bound;
- ``estimates``, and with a truth to compare with, ``covered`` per method (whether each
  interval holds the truth); components are relabelled to the truth's first
  (``aligned_to_truth``).

The report shows "estimate ± standard error" beside the truth for a single cell, and for
a sweep how often the intervals covered the truth over its cells (``coverage.toml``).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..inference.bootstrap import bootstrap
from ..inference.compare import alignment, permute
from ..inference.uncertainty import uncertainty
from ..models.validation import InputError, InputTypeError
from .config import ConfigError

#: rows of the estimate table before the rest is left to result.json
MAX_ROWS = 48


def _lists(params) -> dict:
    return {name: value.detach().cpu().tolist() for name, value in params.items()}


def _entry(result, level: float, perm, model, truth, seconds: float) -> dict:
    lower, upper = result.intervals(level)
    se, unavailable = result.standard_errors, result.standard_errors.unavailable
    if perm is not None:
        lower, upper, se, unavailable = (permute(model, p, perm)
                                         for p in (lower, upper, se, unavailable))
    out = {"method": result.method, "standard_errors": _lists(se), "lower": _lists(lower),
           "upper": _lists(upper), "unavailable": _lists(unavailable),
           "notes": list(result.notes), "seconds": seconds}
    if truth is not None:
        out["covered"] = {name: ((lower[name] <= truth[name]) & (truth[name] <= upper[name]))
                          .tolist() for name in lower}
    return out


def summarize(settings: dict, fits: dict, model, truth, em: dict, source) -> dict:
    """``{"uncertainty": {"em": ...}}`` for a cell's ``result.json`` (``{}`` when not asked).

    Args:
        settings: the cell's ``[uncertainty]`` section.
        fits: ``label -> Fit``; the EM fit is the one assessed.
        truth: true parameters comparable with the fit (same k), or ``None``.
        em: the cell's ``[em]`` section (each bootstrap refit uses its ``max_iter``, ``tol``).
        source: the config, for errors.
    """
    fit = fits.get("em")
    if fit is None or not (settings["standard_errors"] or settings["bootstrap"]):
        return {}
    level = settings["level"]
    perm = None if truth is None else alignment(model, truth, fit.params)
    estimates = {k: v for k, v in fit.params.items() if not model.specs[k].fixed}
    if perm is not None:
        estimates = permute(model, estimates, perm)
    out = {"level": level, "aligned_to_truth": perm is not None, "estimates": _lists(estimates)}
    if settings["standard_errors"]:
        start = time.perf_counter()
        result = uncertainty(fit, "observed")
        out["observed"] = _entry(result, level, perm, model, truth, time.perf_counter() - start)
    if settings["bootstrap"]:
        start = time.perf_counter()
        try:
            result = bootstrap(model, fit.data, fit.params, replicates=settings["bootstrap"],
                               kind=settings["bootstrap_kind"], seed=settings["seed"],
                               max_iter=em["max_iter"], tol=em["tol"] or 0.0)
        except (InputError, InputTypeError) as exc:
            raise ConfigError(source, "uncertainty.bootstrap", str(exc)) from None
        fit.notes += [note for note in result.notes if note not in fit.notes]
        out["bootstrap"] = _entry(result, level, perm, model, truth, time.perf_counter() - start)
    return {"uncertainty": {"em": out}}


# -- the report ----------------------------------------------------------------------------
def _fail(key: str, message: str):
    raise ConfigError("metrics.json", key, message)


def _table_of(value, key: str) -> dict:
    if not isinstance(value, dict):
        _fail(key, f"expected a table, got {value!r:.40}")
    return value


def _flat(value, key: str) -> list:
    """Entries of a (nested) list of numbers, ``None`` (unavailable) or booleans."""
    try:
        array = np.asarray(value, dtype=object).reshape(-1)
    except ValueError:
        _fail(key, "expected a rectangular list")
    for item in array:
        if item is not None and not isinstance(item, (int, float, bool)):
            _fail(key, f"expected numbers, got {item!r:.40}")
    return array.tolist()


def _indices(value) -> list[str]:
    shape = np.shape(np.asarray(value, dtype=object))
    return ["[" + ",".join(map(str, i)) + "]" if shape else "" for i in np.ndindex(*shape)]


def _num(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    return f"{x:.4g}"


def _method(block: dict, name: str, key: str):
    """``(standard errors, lower, upper, covered or None)`` entries of one parameter."""
    parts = []
    for part in ("standard_errors", "lower", "upper"):
        table = _table_of(block.get(part), f"{key}.{part}")
        if name not in table:
            _fail(f"{key}.{part}.{name}", "missing")
        parts.append(_flat(table[name], f"{key}.{part}.{name}"))
    covered = block.get("covered")
    parts.append(None if covered is None else _flat(_table_of(covered, f"{key}.covered").get(
        name, []), f"{key}.covered.{name}"))
    return parts


def cell_lines(cell: dict, key: str = "uncertainty") -> list[str]:
    """The "estimate ± standard error" table of one cell (nothing when it has none)."""
    data = cell.get("uncertainty")
    if data is None:
        return []
    em = _table_of(_table_of(data, key).get("em"), f"{key}.em")
    level = em.get("level")
    if not isinstance(level, (int, float)) or isinstance(level, bool):
        _fail(f"{key}.em.level", f"expected a number, got {level!r:.40}")
    estimates = _table_of(em.get("estimates"), f"{key}.em.estimates")
    methods = [m for m in ("observed", "bootstrap") if em.get(m) is not None]
    truth = cell.get("truth") if em.get("aligned_to_truth") else None
    pct = f"{100 * level:g}%"
    header = ["parameter"] + (["truth"] if truth else []) + ["EM estimate"]
    names = {"observed": "observed information", "bootstrap": "bootstrap"}
    for m in methods:
        header += [f"± se ({names[m]})", f"{pct} interval ({names[m]})"]
    rows, skipped = [], 0
    for name, value in estimates.items():
        est = _flat(value, f"{key}.em.estimates.{name}")
        true = _flat(truth[name], f"truth.{name}") if truth and name in truth else None
        per = [_method(_table_of(em[m], f"{key}.em.{m}"), name, f"{key}.em.{m}")
               for m in methods]
        for i, label in enumerate(_indices(value)):
            if len(rows) >= MAX_ROWS:
                skipped += 1
                continue
            row = [f"`{name}{label}`"] + ([_num(true[i])] if truth else []) + [_num(est[i])]
            for se, low, high, covered in per:
                mark = "" if covered is None or i >= len(covered) else (
                    " ✓" if covered[i] else " ✗")
                row += ["unavailable" if se[i] is None else f"± {_num(se[i])}",
                        f"[{_num(low[i])}, {_num(high[i])}]{mark}"]
            rows.append(row)
    lines = [f"**How sure the EM fit is** ({pct} intervals"
             + ("; ✓: the interval holds the truth" if truth else "") + "):", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if skipped:
        lines += ["", f"({skipped} more entries in the cell's result.json)"]
    seconds = [f"{names[m]} {em[m].get('seconds', math.nan):.2f} s" for m in methods]
    lines += ["", "Standard errors from " + ", ".join(seconds) + "."]
    shown = set((cell.get("fits", {}).get("em") or {}).get("notes") or [])  # already listed
    for m in methods:
        for note in em[m].get("notes") or []:
            if note not in shown:
                lines.append(f"- {note}")
                shown.add(note)
    return lines + [""]


def coverage_lines(exp: dict) -> list[str]:
    """For a sweep: how often each entry's interval covered the truth over the cells."""
    counts: dict[str, dict[str, list[int]]] = {}
    level = None
    for c, cell in enumerate(exp["cells"]):
        data = cell.get("uncertainty")
        if data is None:
            continue
        key = f"cells[{c}].uncertainty.em"
        em = _table_of(_table_of(data, f"cells[{c}].uncertainty").get("em"), key)
        level = em.get("level", level)
        for m in ("observed", "bootstrap"):
            block = em.get(m)
            if block is None or block.get("covered") is None:
                continue
            for name, value in _table_of(block["covered"], f"{key}.{m}.covered").items():
                for label, hit in zip(_indices(value), _flat(value, f"{key}.{m}.covered")):
                    tally = counts.setdefault(f"{name}{label}", {}).setdefault(m, [0, 0])
                    tally[0] += bool(hit)
                    tally[1] += 1
    if not counts:
        return []
    methods = [m for m in ("observed", "bootstrap") if any(m in v for v in counts.values())]
    names = {"observed": "observed information", "bootstrap": "bootstrap"}
    pct = f"{100 * level:g}%" if isinstance(level, (int, float)) else "the"
    header = ["parameter"] + [f"coverage ({names[m]})" for m in methods]
    rows = []
    for entry, by_method in counts.items():
        row = [f"`{entry}`"]
        for m in methods:
            hit, total = by_method.get(m, (0, 0))
            row.append(f"{hit / total:.3f} ({hit}/{total})" if total else "—")
        rows.append(row)
    lines = [f"**Coverage**: how often the {pct} interval held the truth over the sweep's "
             "cells:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def posterior_lines(cell: dict) -> list[str]:
    """VI's posterior over the parameters (``vi.posterior = "normal"`` or ``"mvn"``): mean
    ± sd per entry, beside the truth and EM's estimate."""
    spread = cell.get("vi_posterior")
    if not spread:
        return []
    truth = cell.get("truth") if cell.get("truth_comparable", True) else None
    em = any("em" in summary for summary in spread.values())
    header = ["parameter"] + (["truth"] if truth else []) + (["EM estimate"] if em else []) \
        + ["VI posterior mean ± sd"]
    rows = []
    for name, summary in spread.items():
        mean = _flat(summary["mean"], f"vi_posterior.{name}.mean")
        sd = _flat(summary["sd"], f"vi_posterior.{name}.sd")
        true = _flat(truth[name], f"truth.{name}") if truth and name in truth else None
        est = _flat(summary["em"], f"vi_posterior.{name}.em") if "em" in summary else None
        for i, label in enumerate(_indices(summary["mean"])[:MAX_ROWS]):
            rows.append([f"`{name}{label}`"] + ([_num(true[i]) if true else "—"] if truth else [])
                        + ([_num(est[i]) if est else "—"] if em else [])
                        + [f"{_num(mean[i])} ± {_num(sd[i])}"])
    return ["**VI's posterior** over the parameters with priors (draws from the fitted "
            "guide; EM's column is its MAP estimate, in the same component order):", "",
            "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(r) + " |" for r in rows], ""]


def section(exp: dict) -> list[str]:
    """The report's lines for one experiment: its cell's table, or a sweep's coverage;
    and a VI posterior's means and spreads."""
    if exp["axes"]:
        return coverage_lines(exp)
    return cell_lines(exp["cells"][0]) + posterior_lines(exp["cells"][0])
