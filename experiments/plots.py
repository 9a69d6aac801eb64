"""Figures of a run, drawn from what the run saved (so ``emvi report`` can redraw them).

Matplotlib's object API with the Agg canvas: no pyplot, no global backend change.
EM is always blue and solid, VI orange and dashed, the truth black and dotted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse

from ..models.params import Params

STYLE = {"em": {"color": "tab:blue", "ls": "-"}, "vi": {"color": "tab:orange", "ls": "--"},
         "truth": {"color": "black", "ls": ":"}}
LABEL = {"em": "EM", "vi": "VI (TraceEnum_ELBO)", "truth": "truth"}
CLUSTER = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink", "tab:gray", "tab:olive", "tab:cyan"]


def color(j: int) -> str:
    return CLUSTER[j % len(CLUSTER)]


def save(fig: Figure, path: Path, within: Path) -> Path:
    """Write a figure atomically (PNG, 110 dpi) inside the run directory ``within``."""
    import io

    from .store import write_atomic

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_atomic(path, buffer.getvalue(), within)
    return path


class CellView:
    """A saved cell, rebuilt: model, data, truth, final and per-iteration parameters."""

    def __init__(self, result: dict, arrays: dict, header: list[str], rows: list[list[str]]):
        from ..models.registry import build

        self.result = result
        options = {k: v for k, v in result["model"].items() if k != "name"}
        self.model = build(result["model"]["name"], **options)
        self.data = torch.as_tensor(arrays["data"])
        self.assignments = arrays.get("assignments")
        self.lengths = arrays.get("lengths")  # sequence models: the data are their steps
        truth = result.get("truth")
        self.truth = (Params({k: torch.tensor(v, dtype=torch.float64) for k, v in truth.items()})
                      if truth is not None and result.get("truth_k") == self.model.k else None)
        self.fits = {label: Params({k: torch.tensor(v, dtype=torch.float64)
                                    for k, v in fit["params"].items()})
                     for label, fit in result["fits"].items()}
        self.responsibilities = {label: arrays[f"responsibilities_{label}"]
                                 for label in self.fits if f"responsibilities_{label}" in arrays}
        self.traces = self._traces(header, rows)

    def _traces(self, header, rows) -> dict:
        """``label -> {"iteration", "seconds", "objective", "params": [Params]}``."""
        out = {}
        specs = self.model.specs
        for row in rows:
            label = row[0]
            trace = out.setdefault(label, {"iteration": [], "seconds": [], "objective": [],
                                           "params": []})
            trace["iteration"].append(int(row[1]))
            trace["seconds"].append(float(row[2]))
            trace["objective"].append(float(row[4]))
            if len(header) > 5:
                flat, values, at = [float(x) for x in row[5:]], Params(), 0
                for name, spec in specs.items():
                    size = math.prod(spec.shape)
                    values[name] = torch.tensor(flat[at: at + size]).reshape(spec.shape)
                    at += size
                trace["params"].append(values)
        return out

    @property
    def family(self):
        return getattr(self.model, "family", None)


# -- data and fitted components --------------------------------------------------------------
def _gaussian_cov2(model, params: Params, j: int) -> np.ndarray:
    """The 2x2 covariance (first two axes) of component ``j`` of a Gaussian family."""
    family = model.family
    d = family.dim
    if family.covariance == "spherical":
        cov = np.eye(d) * float(params["scales"][j]) ** 2
    elif family.covariance == "diag":
        cov = np.diag(params["scales"][j].numpy() ** 2)
    else:
        tril = params["scale_tril"] if family.covariance == "tied" else params["scale_tril"][j]
        cov = (tril @ tril.T).numpy()
    return cov[:2, :2]


def _ellipse(ax, mean, cov, style, label=None, width=1.6):
    values, vectors = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1]))
    w, h = 2 * 2 * np.sqrt(np.maximum(values[::-1], 0))  # 2 standard deviations
    ax.add_patch(Ellipse(mean, w, h, angle=angle, fill=False, color=style["color"],
                         ls=style["ls"], lw=width, label=label))


def _components_2d(ax, view: CellView, sources: list[str]):
    model = view.model
    fixed_scale = "scales" in model.specs and model.specs["scales"].fixed
    for src in sources:
        params = view.truth if src == "truth" else view.fits.get(src)
        if params is None:
            continue
        style = STYLE[src]
        locs = params["locs"].numpy()
        ax.scatter(locs[:, 0], locs[:, 1], marker="x" if src != "truth" else "+", s=90,
                   color=style["color"], linewidths=2.2, zorder=5, label=f"{LABEL[src]} centres")
        if not fixed_scale:
            for j in range(model.k):
                _ellipse(ax, locs[j, :2], _gaussian_cov2(model, params, j), style,
                         label=f"{LABEL[src]} 2σ" if j == 0 else None)


def _scatter(ax, data: np.ndarray, labels):
    if labels is None:
        ax.scatter(data[:, 0], data[:, 1], s=7, color="0.6", alpha=0.6, lw=0)
    else:
        for j in np.unique(labels):
            pts = data[labels == j]
            ax.scatter(pts[:, 0], pts[:, 1], s=7, color=color(int(j)), alpha=0.55, lw=0,
                       label=f"cluster {j}")


def data_figure(view: CellView, title: str) -> Figure | None:
    """The data, coloured by the true component where known."""
    family, data = view.family, view.data.numpy()
    if family is not None and family.name == "bernoulli" and _side(family.dim):
        return _image_grid([("data", data[:16])], _side(family.dim), title)
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    labels = view.assignments
    if family is not None and family.name == "regression" and data.shape[1] == 2:
        _scatter(ax, data, labels)
        _regression_lines(ax, view, ["truth"])
        ax.set_xlabel("covariate x")
        ax.set_ylabel("response y")
    elif family is not None and family.name == "gaussian" and family.dim >= 2:
        _scatter(ax, data, labels)
        _components_2d(ax, view, ["truth"])
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        ax.set_aspect("equal", adjustable="datalim")
    elif data.ndim == 1 or data.shape[1] == 1:
        x = data.reshape(-1)
        discrete = bool(getattr(family, "discrete", False))
        bins = (np.arange(x.min() - 0.5, x.max() + 1.5) if discrete
                else np.histogram_bin_edges(x, bins=min(80, max(10, int(np.sqrt(len(x)))))))
        if labels is None:
            ax.hist(x, bins=bins, color="0.6")
        else:
            groups = [x[labels == j] for j in range(view.model.k)]
            ax.hist(groups, bins=bins, stacked=True, color=[color(j) for j in range(len(groups))],
                    label=[f"component {j}" for j in range(len(groups))])
        ax.set_xlabel(getattr(family, "value_label", "x"))
        ax.set_ylabel("count")
    else:
        return None
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return fig


def _side(dim: int) -> int | None:
    """The side of a square image of ``dim`` pixels, if it is one."""
    side = math.isqrt(dim)
    return side if side * side == dim and side > 1 else None


def _image_grid(rows: list[tuple[str, np.ndarray]], side: int, title: str) -> Figure:
    """Rows of square images (one row per source), grey levels 0..1."""
    cols = max(len(images) for _, images in rows)
    fig = Figure(figsize=(1.25 * cols + 0.8, 1.35 * len(rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(np.asarray(images[c]).reshape(side, side), cmap="gray_r", vmin=0,
                          vmax=1)
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(title)
    return fig


def prototypes_figure(view: CellView, title: str) -> Figure | None:
    """Bernoulli mixtures of square images: the learned prototypes of EM and VI (and truth)."""
    family = view.family
    if family is None or family.name != "bernoulli" or not _side(family.dim):
        return None
    rows = []
    if view.truth is not None:
        rows.append(("truth", view.truth["probs"].numpy()))
    for label, params in view.fits.items():
        order = _order_like(view, params)
        rows.append((LABEL[label].split(" ")[0], params["probs"].numpy()[order]))
    return _image_grid(rows, _side(family.dim), title)


def _order_like(view: CellView, params: Params) -> np.ndarray:
    """Component order matching the truth (when known), for side-by-side pictures."""
    if view.truth is None:
        return np.arange(view.model.k)
    from ..inference.compare import alignment

    return np.asarray(alignment(view.model, view.truth, params))


def _regression_lines(ax, view: CellView, sources: list[str]):
    x = view.data[:, 0].numpy()
    grid = np.linspace(x.min(), x.max(), 50)
    intercept = view.family.intercept
    for src in sources:
        params = view.truth if src == "truth" else view.fits.get(src)
        if params is None:
            continue
        coefs = params["coefs"].numpy()
        for j in range(view.model.k):
            line = coefs[j, 0] + coefs[j, 1] * grid if intercept else coefs[j, 0] * grid
            ax.plot(grid, line, lw=1.8, **STYLE[src], label=LABEL[src] if j == 0 else None)


def fit_figure(view: CellView, title: str) -> Figure | None:
    """2-D data coloured by EM's assignment; centres and 2σ ellipses (or regression lines)
    of truth, EM and VI."""
    family = view.family
    if family is not None and family.name == "regression" and view.data.shape[1] == 2:
        fig = Figure(figsize=(6.6, 4.8), layout="constrained")
        ax = fig.add_subplot()
        resp = view.responsibilities.get("em", next(iter(view.responsibilities.values()), None))
        _scatter(ax, view.data.numpy(), None if resp is None else resp.argmax(-1))
        _regression_lines(ax, view, ["truth", "em", "vi"])
        ax.set_xlabel("covariate x")
        ax.set_ylabel("response y")
        ax.set_title(title)
        handles, labels = ax.get_legend_handles_labels()
        keep = [(h, lab) for h, lab in zip(handles, labels) if not lab.startswith("cluster")]
        ax.legend(*zip(*keep), fontsize=8)
        return fig
    if family is None or family.name != "gaussian" or family.dim < 2:
        return None
    fig = Figure(figsize=(6.6, 4.8), layout="constrained")
    ax = fig.add_subplot()
    resp = view.responsibilities.get("em", next(iter(view.responsibilities.values()), None))
    _scatter(ax, view.data.numpy(), None if resp is None else resp.argmax(-1))
    _components_2d(ax, view, ["truth", "em", "vi"])
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels) if not lab.startswith("cluster")]
    if keep:
        ax.legend(*zip(*keep), fontsize=8, loc="best")
    return fig


def iterations_figure(view: CellView, panels: int, title: str) -> Figure | None:
    """K-means style panels: assignments and centres at chosen EM iterations."""
    family, trace = view.family, view.traces.get("em")
    if (family is None or family.name != "gaussian" or family.dim < 2 or not trace
            or not trace["params"]):
        return None
    last = len(trace["params"]) - 1
    picks = sorted({round(i * last / max(panels - 1, 1)) for i in range(panels)})
    fig = Figure(figsize=(3.3 * len(picks), 3.4), layout="constrained")
    data = view.data.numpy()
    hard = view.result["fits"]["em"]["method"] == "hard-em"
    for p, it in enumerate(picks):
        ax = fig.add_subplot(1, len(picks), p + 1)
        params = trace["params"][it]
        resp = view.model.e_step(view.data, params, hard=hard)[0].numpy()
        _scatter(ax, data, resp.argmax(-1))
        path = np.stack([trace["params"][i]["locs"].numpy() for i in range(it + 1)])
        for j in range(view.model.k):
            ax.plot(path[:, j, 0], path[:, j, 1], "-", color="black", lw=1)
        ax.scatter(path[-1, :, 0], path[-1, :, 1], marker="X", s=110, color="black",
                   edgecolor="white", zorder=5)
        ax.set_title(f"iteration {it}", fontsize=10)
        ax.set_xlabel("x₁")
        if p == 0:
            ax.set_ylabel("x₂")
        ax.set_aspect("equal", adjustable="datalim")
    fig.suptitle(title)
    return fig


def style_legend(fig: Figure, labels: list[str], entries: int, truth: bool, what="component"):
    """One legend under the panels: line style says the method, colour the entry."""
    handles = [Line2D([], [], color="0.3", ls=STYLE[m]["ls"], label=LABEL[m]) for m in labels]
    if truth:
        handles.append(Line2D([], [], **STYLE["truth"], label="truth"))
    handles += [Line2D([], [], color=color(j), lw=3, label=f"{what} {j}") for j in range(entries)]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8),
               fontsize=8, frameon=False)


def trajectories_figure(view: CellView, title: str) -> Figure | None:
    """Every free scalar parameter per iteration: EM solid, VI dashed, truth dotted."""
    specs = {n: s for n, s in view.model.specs.items()
             if not s.fixed and math.prod(s.shape) <= 12}
    traces = {label: t for label, t in view.traces.items() if t["params"]}
    if not specs or not traces:
        return None
    fig = Figure(figsize=(4.6 * len(specs), 4.0), layout="constrained")
    entries = 0
    for p, (name, spec) in enumerate(specs.items()):
        ax = fig.add_subplot(1, len(specs), p + 1)
        for label, trace in traces.items():
            values = np.stack([t[name].reshape(-1).numpy() for t in trace["params"]])
            entries = max(entries, values.shape[1])
            for j in range(values.shape[1]):
                ax.plot(trace["iteration"], values[:, j], color=color(j), ls=STYLE[label]["ls"],
                        lw=1.6)
        if view.truth is not None:
            for value in view.truth[name].reshape(-1).numpy():
                ax.axhline(value, lw=1, **STYLE["truth"])
        ax.set_xlabel("iteration / step")
        ax.set_ylabel(name)
        ax.set_title(f"{name} ({spec.doc})" if spec.doc else name, fontsize=10)
        ax.grid(alpha=0.25)
    style_legend(fig, list(traces), entries, view.truth is not None, what="entry")
    fig.suptitle(title)
    return fig


def _mixture_density(view: CellView, params: Params, grid: torch.Tensor) -> np.ndarray:
    return torch.logsumexp(view.model.log_joint(grid, params), -1).exp().numpy()


def densities_figure(view: CellView, iterations: list[int], title: str) -> Figure | None:
    """Fitted mixture density over the data at chosen iterations and at the end."""
    family, data = view.family, view.data
    if family is None or data.dim() > 2 or (data.dim() == 2 and data.shape[1] != 1):
        return None
    traces = {label: t for label, t in view.traces.items() if t["params"]}
    if not traces:
        return None
    last = max(len(t["params"]) for t in traces.values()) - 1
    picks = sorted({i for i in iterations if i < last} | {last})
    x = data.reshape(-1).numpy()
    discrete = bool(getattr(family, "discrete", False))
    grid = family.grid(data)
    if discrete:
        bins = np.arange(float(grid[0]) - 0.5, float(grid[-1]) + 1.5)
    else:
        bins = min(80, max(10, int(np.sqrt(len(x)))))
    fig = Figure(figsize=(4.3 * len(picks), 3.6), layout="constrained")
    for p, it in enumerate(picks):
        ax = fig.add_subplot(1, len(picks), p + 1)
        ax.hist(x, bins=bins, density=True, color="0.82", label="data")
        g = grid.numpy()
        marker = "o" if discrete else None
        for label, trace in traces.items():
            params = trace["params"][min(it, len(trace["params"]) - 1)]
            ax.plot(g, _mixture_density(view, params, grid), marker=marker, ms=3, lw=1.6,
                    **STYLE[label], label=LABEL[label])
        if view.truth is not None:
            ax.plot(g, _mixture_density(view, view.truth, grid), lw=1.4, **STYLE["truth"],
                    label="truth")
        ax.set_title("initial" if it == 0 else ("final" if it == last else f"iteration {it}"),
                     fontsize=10)
        ax.set_xlabel(family.value_label)
        if p == 0:
            ax.set_ylabel("probability" if discrete else "density")
            ax.legend(fontsize=7)
    fig.suptitle(title)
    return fig


def objective_figure(view: CellView, title: str) -> Figure | None:
    """Relative gap to the best log-likelihood, per iteration and per second, both paths."""
    traces = view.traces
    if not traces:
        return None
    best = max(max(t["objective"]) for t in traces.values())
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    for p, key in enumerate(("iteration", "seconds")):
        ax = fig.add_subplot(1, 2, p + 1)
        for label, trace in traces.items():
            gap = (best - np.asarray(trace["objective"])) / abs(best)
            ax.plot(trace[key], np.maximum(gap, 1e-16), marker=".", ms=3, **STYLE[label],
                    label=f"{LABEL[label]} ({len(gap) - 1} it.)")
        ax.set_yscale("log")
        ax.set_xlabel("iteration / step" if key == "iteration" else "wall-clock seconds")
        ax.set_ylabel("(best − log-lik) / |best|")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


# -- sweeps ------------------------------------------------------------------------------------
def _sweep_series(cells: list[dict], axis: str, value_of):
    """``x -> list of values`` over the other axes (spread over seeds)."""
    out: dict = {}
    for cell in cells:
        x = cell["values"][axis]
        y = value_of(cell)
        if y is not None:
            out.setdefault(x, []).append(y)
    xs = sorted(out)
    return xs, [out[x] for x in xs]


def sweep_figure(name: str, exp: dict, title: str) -> Figure | None:
    """Error, objective and time versus the first swept field, spread over the others."""
    if not exp["axes"]:
        return None
    axis = exp["axes"][0][0]
    cells = exp["cells"]
    if not all(isinstance(c["values"][axis], (int, float)) for c in cells):
        return None
    labels = list(cells[0]["fits"])
    panels = []
    if axis != "model.k" and any(c["comparison"]["truth_errors"] for c in cells):
        panels.append(("max |param − truth|", lambda c, m: max(
            c["comparison"]["truth_errors"][m].values()) if c["comparison"]["truth_errors"]
            else None, True))
    if axis == "model.k":
        panels.append(("BIC (lower is better)", lambda c, m: c["fits"][m]["bic"], False))
        panels.append(("final log-likelihood", lambda c, m: c["fits"][m]["log_likelihood"], False))
    panels.append(("seconds", lambda c, m: c["timing"]["seconds"][m], True))
    panels.append(("iterations", lambda c, m: c["fits"][m]["iterations"], False))
    fig = Figure(figsize=(4.4 * len(panels), 3.7), layout="constrained")
    for p, (ylabel, metric, log_y) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), p + 1)
        lowest = math.inf
        for label in labels:
            xs, ys = _sweep_series(cells, axis, lambda c, label=label, m=metric: m(c, label))
            if not xs:
                continue
            lowest = min(lowest, min(min(v) for v in ys))
            med = [float(np.median(v)) for v in ys]
            ax.plot(xs, med, marker="o", **STYLE[label], label=LABEL[label])
            if any(len(v) > 1 for v in ys):
                ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys],
                                color=STYLE[label]["color"], alpha=0.18)
        numeric = [float(c["values"][axis]) for c in cells]
        if min(numeric) > 0 and max(numeric) / min(numeric) >= 20:
            ax.set_xscale("log")
        if log_y and lowest > 0 and math.isfinite(lowest):
            ax.set_yscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if p == 0:
            ax.legend(fontsize=8)
    spread = [k for k, _ in exp["axes"][1:]]
    fig.suptitle(title + (f" — median, band: min–max over {', '.join(spread)}" if spread else ""))
    return fig


def cell_figures(view: CellView, name: str, plots: dict) -> list[tuple[str, Figure]]:
    """Every figure that suits this cell's model, as ``(file stem, figure)``."""
    model = view.model.describe()
    figures = [
        (f"{name}_data", data_figure(view, f"{name}: data ({model})")),
        (f"{name}_fit", fit_figure(view, f"{name}: truth, EM and VI components")),
        (f"{name}_prototypes", prototypes_figure(view, f"{name}: prototypes (P(pixel = 1))")),
        (f"{name}_iterations", iterations_figure(view, plots["panels"], f"{name}: EM iterations")
         if view.result["fits"].get("em", {}).get("method") == "hard-em" else None),
        (f"{name}_trajectories", trajectories_figure(view, f"{name}: parameters per iteration")),
        (f"{name}_densities", densities_figure(view, plots["iterations"],
                                               f"{name}: fitted mixture at chosen iterations")),
        (f"{name}_objective", objective_figure(view, f"{name}: convergence, EM vs VI")),
    ]
    return [(stem, fig) for stem, fig in figures if fig is not None]
