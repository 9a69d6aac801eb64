"""Figures of a sweep: EM and VI across its cells, and model selection over K.

Every cell is a point (its status drawn on it: a red hollow marker per kind of flag);
the line joins the medians over the axes that only repeat (seeds), the band spans
their min–max; a swept option that is a word (the covariance type) gets its own line.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .naming import axis_label
from .plots import LABEL, STYLE, _yscale
from .selection import group_name, selection
from .status import cell_flags

#: a flagged point: a red hollow marker, one shape per kind
FLAG_STYLE = {"not converged": "s", "collapsed": "v", "different optima": "D",
              "relocated": "^"}
FLAG_COLOR = "#d62728"
GROUP_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
                "#a6761d", "#666666"]
GROUP_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _numeric(cells, key) -> bool:
    return all(isinstance(c["values"][key], (int, float)) and not isinstance(
        c["values"][key], bool) for c in cells)


def _flag_legend(kinds: set) -> list:
    return [Line2D([], [], ls="none", marker=FLAG_STYLE[k], mfc="none", mec=FLAG_COLOR, ms=10,
                   mew=1.6, label=k) for k in FLAG_STYLE if k in kinds]


def _mark_flags(ax, x, y, flags, label) -> set:
    """Red hollow markers on a point for each flag that concerns this path."""
    kinds = set()
    for flag in (f for f in flags if label in f.paths):
        if flag.kind in kinds:
            continue
        kinds.add(flag.kind)
        ax.plot([x], [y], ls="none", marker=FLAG_STYLE[flag.kind], mfc="none", mec=FLAG_COLOR,
                ms=11 + 4 * len(kinds), mew=1.6, zorder=7)
    return kinds


def _integer_ticks(ax, values) -> None:
    values = sorted(set(values))
    if len(values) <= 12:
        ax.set_xticks(values)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def sweep_figure(name: str, exp: dict, title: str, plots: dict | None = None) -> Figure | None:
    """Error (when the truth is known and K is not swept), seconds and iterations versus
    the first numeric swept key; every cell a point carrying its status."""
    if not exp["axes"]:
        return None
    cells = exp["cells"]
    numeric = [key for key, _ in exp["axes"] if _numeric(cells, key)]
    if not numeric:
        return None
    axis = numeric[0]
    words = [key for key, _ in exp["axes"] if key not in numeric]
    spread = [key for key in numeric[1:]]
    labels = list(cells[0]["fits"])
    panels = []
    if axis != "model.k" and any(c["comparison"]["truth_errors"] for c in cells):
        panels.append(("max |param − truth| (aligned)", lambda c, m: max(
            c["comparison"]["truth_errors"][m].values()) if c["comparison"]["truth_errors"]
            else None, True))
    if axis != "model.k":
        panels.append(("final log-likelihood per observation",
                       lambda c, m: c["fits"][m]["log_likelihood"] / c["data"]["n"], False))
    panels.append(("seconds", lambda c, m: c["timing"]["seconds"][m], True))
    panels.append(("iterations / steps", lambda c, m: c["fits"][m]["iterations"], False))
    groups = sorted({tuple(c["values"][w] for w in words) for c in cells}, key=str)
    flags = {c["cell"]: cell_flags(c) for c in cells}
    fig = Figure(figsize=(4.4 * len(panels), 4.0), layout="constrained")
    kinds: set = set()
    for p, (ylabel, metric, log_y) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), p + 1)
        values = []
        for g, group in enumerate(groups):
            members = [c for c in cells if tuple(c["values"][w] for w in words) == group]
            for label in labels:
                by_x: dict = {}
                for c in members:
                    y = metric(c, label)
                    if y is None:
                        continue
                    x = c["values"][axis]
                    by_x.setdefault(x, []).append(y)
                    values.append(y)
                    ax.plot([x], [y], ls="none", marker=GROUP_MARKERS[g % 8] if words else "o",
                            ms=3.5, color=STYLE[label]["color"], alpha=0.55, zorder=4)
                    kinds |= _mark_flags(ax, x, y, flags[c["cell"]], label)
                if not by_x:
                    continue
                xs = sorted(by_x)
                med = [float(np.median(by_x[x])) for x in xs]
                name_ = LABEL[label].split(" ")[0] + (f", {group_name(words, group)}"
                                                     if words else "")
                ax.plot(xs, med, marker=GROUP_MARKERS[g % 8] if words else None, ms=5,
                        **STYLE[label], label=name_ + (" (median)" if spread else ""))
                if any(len(by_x[x]) > 1 for x in xs):
                    ax.fill_between(xs, [min(by_x[x]) for x in xs], [max(by_x[x]) for x in xs],
                                    color=STYLE[label]["color"], alpha=0.12)
        xs_all = [float(c["values"][axis]) for c in cells]
        if min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 20:
            ax.set_xscale("log")
        elif all(isinstance(c["values"][axis], int) for c in cells):
            _integer_ticks(ax, [c["values"][axis] for c in cells])
        positive = values and min(values) > 0
        if log_y and positive:
            ax.set_yscale("log")
        elif not log_y:
            _yscale(ax, plots, values)
        ax.set_xlabel(axis_label(axis))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    handles, names = fig.axes[0].get_legend_handles_labels()
    handles += _flag_legend(kinds)
    names += [h.get_label() for h in _flag_legend(kinds)]
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(handles), 5),
               fontsize=8, frameon=False)
    note = (f" — dots: cells; band: min–max over {', '.join(map(axis_label, spread))}"
            if spread else "")
    fig.suptitle(title + note)
    return fig


def selection_figure(name: str, exp: dict, title: str,
                     plots: dict | None = None) -> Figure | None:
    """mclust-style: BIC, ICL and AIC against the number of components, one line per
    group (covariance type), each panel's minimum circled, flagged fits marked."""
    chosen = selection(exp)
    if chosen is None:
        return None
    rows, groups_keys = chosen["rows"], chosen["groups"]
    groups = sorted({r.group for r in rows}, key=str)
    titles = {"bic": "BIC = −2 log L + p log n", "icl": "ICL = BIC + 2 × entropy",
              "aic": "AIC = −2 log L + 2 p"}
    fig = Figure(figsize=(13.5, 4.4), layout="constrained")
    kinds: set = set()
    for p, criterion in enumerate(("bic", "icl", "aic")):
        ax = fig.add_subplot(1, 3, p + 1)
        for g, group in enumerate(groups):
            members = sorted((r for r in rows if r.group == group
                              and r.criteria.get(criterion) is not None), key=lambda r: r.k)
            if not members:
                continue
            ks = [r.k for r in members]
            ys = [r.criteria[criterion] for r in members]
            ax.plot(ks, ys, marker=GROUP_MARKERS[g % 8], color=GROUP_COLORS[g % 8], ms=6,
                    lw=1.6, label=group_name(groups_keys, group) if groups_keys else "fits")
            for r, y in zip(members, ys):
                kinds |= _mark_flags(ax, r.k, y, r.flags, r.source)
        best = chosen["chosen"][criterion]
        choice = ""
        if best is not None:
            r = rows[best]
            ax.plot([r.k], [r.criteria[criterion]], ls="none", marker="o", ms=20, mfc="none",
                    mec="black", mew=2.2, zorder=8)
            where = f", {group_name(groups_keys, r.group)}" if groups_keys else ""
            choice = f"\n{'chosen' if criterion == 'bic' else 'lowest'} (circled): K = {r.k}{where}"
        _integer_ticks(ax, [r.k for r in rows])
        ax.margins(x=0.08, y=0.1)
        ax.set_xlabel("number of components")
        ax.set_ylabel(f"{criterion.upper()} (lower is better)")
        ax.set_title(titles[criterion] + (" — decides" if criterion == "bic" else "") + choice,
                     fontsize=10, fontweight="bold" if criterion == "bic" else "normal")
        ax.grid(alpha=0.3)
    handles, names = fig.axes[0].get_legend_handles_labels()
    flag_handles = _flag_legend(kinds)
    fig.legend(handles + flag_handles, names + [h.get_label() for h in flag_handles],
               loc="outside lower center", ncol=min(len(handles) + len(flag_handles), 6),
               fontsize=8, frameon=False)
    fig.suptitle(title + " — each from the better of the two fits")
    return fig

