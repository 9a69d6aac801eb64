"""The report's part for experiments with missing entries (``data.missing``): exact EM
against the shortcuts, per fraction of entries missing — a table and a figure.

Read from each cell's ``missing`` result (see :mod:`experiments.missing`); a cell with
nothing missing counts for every method with the exact fit's numbers (they coincide).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from .config import ConfigError
from .missing import LABELS, METHODS

#: panel titles of the usual parameters (others are titled by their names)
TITLES = {"locs": "component means", "scale_tril": "covariances (Cholesky factors)",
          "scales": "standard deviations", "weights": "mixing weights",
          "probs": "probabilities", "rates": "rates"}
STYLE = {"em": {"color": "tab:blue", "ls": "-", "marker": "o", "lw": 2.2},
         "vi": {"color": "tab:orange", "ls": "--", "marker": "", "lw": 1.4},
         "drop_rows": {"color": "tab:green", "ls": "-", "marker": "s", "lw": 1.6},
         "mean_impute": {"color": "tab:red", "ls": "-", "marker": "^", "lw": 1.6}}


def check(value, key: str, source: str) -> None:
    """A saved ``missing`` result has the shape the report reads (else one line naming the
    key)."""
    def fail(where, message):
        raise ConfigError(source, where, message)

    if not isinstance(value, dict):
        fail(key, "expected a table")
    if not isinstance(value.get("fraction"), (int, float)) or isinstance(value["fraction"], bool):
        fail(f"{key}.fraction", "expected a number")
    methods = value.get("methods")
    if not isinstance(methods, dict):
        fail(f"{key}.methods", "expected a table")
    for name, entry in methods.items():
        where = f"{key}.methods.{name}"
        if name not in METHODS or not isinstance(entry, dict):
            fail(where, f"expected a table named one of {list(METHODS)}")
        errors, rmse = entry.get("errors"), entry.get("imputation_rmse")
        if errors is not None and not (isinstance(errors, dict) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in errors.values())):
            fail(f"{where}.errors", "expected a table of numbers or null")
        if rmse is not None and (isinstance(rmse, bool) or not isinstance(rmse, (int, float))):
            fail(f"{where}.imputation_rmse", "expected a number or null")


def _rows(exp: dict) -> list[tuple[float, dict]]:
    """``(fraction, {method: (errors or None, rmse or None)})`` per cell that can be read."""
    rows = []
    # an HMM's cells compare no shortcuts: none stands in for them where nothing is missing
    shortcuts = any(set(c["missing"]["methods"]) - {"em", "vi"} for c in exp["cells"]
                    if c.get("missing"))
    for cell in exp["cells"]:
        result = cell.get("missing")
        fraction = _fraction(cell)
        if result is None:  # nothing missing: each shortcut is the exact EM fit
            truth = cell["comparison"].get("truth_errors") or {}
            if "em" not in truth:
                continue
            methods = {m: (truth["em"], None) for m in METHODS
                       if m != "vi" and (shortcuts or m == "em")}
            if "vi" in truth:
                methods["vi"] = (truth["vi"], None)
            rows.append((fraction, methods))
            continue
        rows.append((fraction, {m: (e["errors"], e["imputation_rmse"])
                                for m, e in result["methods"].items()}))
    return rows


def _fraction(cell: dict) -> float:
    """The fraction the config asked for (groups seeds), else the realised one."""
    asked = cell.get("values", {}).get("data.missing")
    if isinstance(asked, (int, float)) and not isinstance(asked, bool):
        return float(asked)
    result = cell.get("missing")
    return float(result["fraction"]) if result else 0.0


def _series(rows, method: str, value_of) -> tuple[list[float], list[list[float]]]:
    grouped: dict[float, list[float]] = {}
    for fraction, methods in rows:
        if method in methods:
            value = value_of(*methods[method])
            if value is not None and math.isfinite(value):
                grouped.setdefault(fraction, []).append(value)
    xs = sorted(grouped)
    return xs, [grouped[x] for x in xs]


def missing_report(name: str, exp: dict) -> tuple[list[str], list[tuple[str, Figure]]]:
    """Report lines and figures for an experiment with missing entries (none otherwise)."""
    if not any("missing" in cell for cell in exp["cells"]):
        return [], []
    rows = _rows(exp)
    return _table(rows), [(f"{name}_missing", figure(rows, name))] if len(
        {f for f, _ in rows}) > 1 else []


def _table(rows) -> list[str]:
    methods = [m for m in METHODS if any(m in r for _, r in rows)]
    header = ["missing"] + [f"{LABELS[m]}: max error / RMSE" for m in methods]
    lines = ["Missing entries: the largest parameter error against the truth (after label "
             "alignment) and the RMSE of the imputed entries, median over cells.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for fraction in sorted({f for f, _ in rows}):
        cells = [f"{fraction:g}"]
        for m in methods:
            _, errors = _series([r for r in rows if r[0] == fraction], m, _worst)
            _, rmse = _series([r for r in rows if r[0] == fraction], m, lambda e, r: r)
            error = f"{np.median(errors[0]):.3g}" if errors else "—"
            cells.append(error + " / " + (f"{np.median(rmse[0]):.3g}" if rmse else "—"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _worst(errors, rmse):
    return max(errors.values()) if errors else None


def figure(rows, name: str) -> Figure:
    """One panel per parameter (its largest error against the truth) and one for the
    imputation RMSE, versus the fraction of entries missing; median and min–max band."""
    params = sorted({p for _, methods in rows for errors, _ in methods.values()
                     if errors for p in errors}, key=lambda p: (p not in TITLES, p))
    panels = [(TITLES.get(p, p), f"max |{p} − truth|", (lambda e, r, p=p: e.get(p) if e
                                                         else None)) for p in params]
    panels.append(("the imputed entries", "RMSE against the removed values", lambda e, r: r))
    fractions = [f for f, _ in rows]
    fig = Figure(figsize=(3.9 * len(panels), 3.9), layout="constrained")
    for index, (title, ylabel, value_of) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), index + 1)
        for method in METHODS:
            xs, ys = _series(rows, method, value_of)
            if not xs:
                continue
            style = STYLE[method]
            ax.plot(xs, [float(np.median(v)) for v in ys], color=style["color"], ls=style["ls"],
                    marker=style["marker"], lw=style["lw"], ms=5, label=LABELS[method])
            if any(len(v) > 1 for v in ys) and method != "vi":  # VI's band is EM's
                ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys],
                                color=style["color"], alpha=0.13, lw=0)
        ax.set_yscale("log")
        pad = 0.03 * (max(fractions) - min(fractions) or 1)
        ax.set_xlim(min(fractions) - pad, max(fractions) + pad)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("fraction of entries missing")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    fig.suptitle(f"{name}: exact EM vs the shortcuts as entries go missing "
                 "(median over seeds, band: min–max)")
    return fig
