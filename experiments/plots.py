"""Figures of one cell, drawn from what the run saved (so ``emvi report`` can redraw them).

Matplotlib's object API with the Agg canvas: no pyplot, no global backend change.

One code for every figure: **component j has one colour** (:func:`color`) everywhere,
after the fits were aligned once to the truth (or to EM's fit) and saved with the cell;
**the path is the line style and marker**: truth dotted (``+``), EM solid (hollow
``o``), VI dashed (``x``), VI drawn on top of EM so both stay visible where they agree.
Figures without components (convergence, restarts) colour the paths themselves: EM
near-black, VI magenta, colours no component uses.
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
from matplotlib.ticker import MaxNLocator

from ..models.params import Params

STYLE = {"em": {"color": "#222222", "ls": "-"}, "vi": {"color": "#c51b7d", "ls": "--"},
         "truth": {"color": "#777777", "ls": ":"}}
#: markers of the paths where colour says the component
MARKER = {"truth": "+", "em": "o", "vi": "x"}
#: line widths and opacity: EM wide and pale, VI narrow and dashed on top of it, so
#: where they agree the dashes run along the pale band; truth thin and dotted
WIDTH = {"truth": 1.4, "em": 3.4, "vi": 1.3}
ALPHA = {"truth": 1.0, "em": 0.45, "vi": 1.0}
#: drawing order: VI over EM over the truth
ZORDER = {"truth": 3, "em": 4, "vi": 5}
LABEL = {"em": "EM", "vi": "VI (TraceEnum_ELBO)", "truth": "truth"}
CLUSTER = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink", "tab:gray", "tab:olive", "tab:cyan"]
SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def color(j: int) -> str:
    """The colour of component ``j`` in every figure."""
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


def _params(values: dict) -> Params:
    return Params({k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()})


class CellView:
    """A saved cell, rebuilt: model, data, truth, final and per-iteration parameters,
    every fit in the cell's one component order (its saved ``alignment``).

    Attributes:
        fits: ``label -> Params``, aligned; ``responsibilities``: ``label -> (n, k)``,
            aligned columns; ``traces``: ``label -> {"iteration", "seconds",
            "objective", "params": [Params]}``, aligned.
        permutations: ``label -> perm``: fitted component ``perm[j]`` is shown as ``j``.
    """

    def __init__(self, result: dict, arrays: dict, header: list[str], rows: list[list[str]]):
        from ..models.registry import build

        self.result = result
        options = {k: v for k, v in result["model"].items() if k != "name"}
        self.model = build(result["model"]["name"], **options)
        self.data = torch.as_tensor(arrays["data"])
        self.assignments = arrays.get("assignments")
        self.lengths = arrays.get("lengths")  # sequence models: the data are their steps
        truth = result.get("truth")
        comparable = result.get("truth_comparable", result.get("truth_k") == self.model.k)
        self.truth = _params(truth) if truth is not None and comparable else None
        raw = {label: _params(fit["params"]) for label, fit in result["fits"].items()}
        self.permutations = self._permutations(raw)
        self.fits = {label: self._align(label, p) for label, p in raw.items()}
        self.responsibilities = {
            label: np.asarray(arrays[f"responsibilities_{label}"])[:, self.permutations[label]]
            for label in self.fits if f"responsibilities_{label}" in arrays}
        self.traces = self._traces(header, rows)
        if hasattr(self.model, "groups"):  # a grouped mixture, drawn as its population mix
            self._pool_groups()

    def _pool_groups(self) -> None:
        """Figures of a grouped mixture show the data without the group column and one
        mixture of the shared components whose weights are the groups' weights averaged by
        their numbers of rows (the mix of the data as a whole)."""
        from ..models.mixture import Mixture
        from ..models.recipe import rebuild, recipe

        grouped, rows = self.model, self.data
        sizes = torch.bincount(rows[:, 0].long(), minlength=grouped.groups).to(rows.dtype)
        share = sizes / sizes.sum()

        def pooled(params: Params) -> Params:
            out = Params({k: v for k, v in params.items() if k != "concentration"})
            out["weights"] = share @ params["weights"]
            return out

        self.model = Mixture(rebuild(recipe(grouped.family)), grouped.k)
        self.data = grouped._values(rows)
        self.truth = pooled(self.truth) if self.truth is not None else None
        self.fits = {label: pooled(p) for label, p in self.fits.items()}
        for trace in self.traces.values():
            trace["params"] = [pooled(p) for p in trace["params"]]

    def _permutations(self, raw: dict) -> dict:
        saved = (self.result.get("alignment") or {}).get("permutations")
        if saved and set(saved) == set(raw):
            return {label: list(perm) for label, perm in saved.items()}
        from .align import align_fits  # a run saved before alignments were kept

        return align_fits(self.model, self.truth, raw)["permutations"]

    def _align(self, label: str, params: Params) -> Params:
        from ..inference.compare import permute

        return permute(self.model, params, self.permutations[label])

    def _traces(self, header, rows) -> dict:
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
                    values[name] = torch.tensor(flat[at: at + size],
                                                dtype=torch.float64).reshape(spec.shape)
                    at += size
                trace["params"].append(self._align(label, values)
                                       if label in self.permutations else values)
        return out

    @property
    def family(self):
        return getattr(self.model, "family", None)

    @property
    def start(self) -> int:
        """The shared start both paths of the comparison ran from."""
        return int(self.result.get("init", {}).get("start", 0) or 0)

    @property
    def columns(self) -> list[str] | None:
        return (self.result.get("data") or {}).get("columns")

    def coordinate(self, i: int) -> str:
        """Name of data coordinate ``i``: the CSV column, else ``x₁``, ``x₂``, ..."""
        columns = self.columns
        if columns and i < len(columns):
            return str(columns[i])
        return f"x{str(i + 1).translate(SUBSCRIPT)}"


def _yscale(ax, plots: dict | None, values) -> None:
    """``plots.yscale = "log"`` where every value is positive (else the axis stays linear
    and says so)."""
    if (plots or {}).get("yscale", "linear") != "log":
        return
    values = np.asarray(values, dtype=float)
    if values.size and np.all(values[np.isfinite(values)] > 0):
        ax.set_yscale("log")
    else:
        ax.set_title(ax.get_title() + "\n(linear: values ≤ 0)", fontsize=9)


def _legend_below(fig: Figure, sources: list[str], k: int | None, what="component",
                  markers: bool = False, truth_marker: str = "+") -> None:
    """One legend under the panels: style says the path, colour the component."""
    marks = {**MARKER, "truth": truth_marker}
    handles = [Line2D([], [], color="0.25", ls=STYLE[s]["ls"], lw=WIDTH[s], alpha=ALPHA[s],
                      marker=marks[s] if markers else None, mfc="none", ms=8, label=LABEL[s])
               for s in sources]
    if k:
        handles += [Line2D([], [], color=color(j), lw=4, label=f"{what} {j}") for j in range(k)]
    if not handles:
        return
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 7),
               fontsize=8, frameon=False)


def _sources(view: CellView, with_truth: bool = True) -> list[str]:
    return (["truth"] if with_truth and view.truth is not None else []) + list(view.fits)


def _get(view: CellView, source: str) -> Params | None:
    return view.truth if source == "truth" else view.fits.get(source)


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


def _ellipse(ax, mean, cov, col: str, source: str):
    values, vectors = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1]))
    w, h = 2 * 2 * np.sqrt(np.maximum(values[::-1], 0))  # 2 standard deviations
    ax.add_patch(Ellipse(mean, w, h, angle=angle, fill=False, color=col, ls=STYLE[source]["ls"],
                         lw=WIDTH[source], alpha=ALPHA[source], zorder=ZORDER[source]))


def _components_2d(ax, view: CellView, sources: list[str]):
    """Centres and 2σ ellipses, component j in colour j, path by style."""
    model = view.model
    ellipses = not ("scales" in model.specs and model.specs["scales"].fixed)
    for src in sources:
        params = _get(view, src)
        if params is None:
            continue
        locs = params["locs"].numpy()
        for j in range(model.k):
            col = color(j)
            if src == "em":
                ax.scatter(locs[j, 0], locs[j, 1], marker="o", s=130, facecolors="none",
                           edgecolors=col, linewidths=2.2, zorder=10 + ZORDER[src])
            else:
                ax.scatter(locs[j, 0], locs[j, 1], marker=MARKER[src], s=90, color=col,
                           linewidths=2.0 if src == "vi" else 1.6, zorder=10 + ZORDER[src])
            if ellipses:
                _ellipse(ax, locs[j, :2], _gaussian_cov2(model, params, j), col, src)


def _scatter(ax, data: np.ndarray, labels, alpha=0.5):
    if labels is None:
        ax.scatter(data[:, 0], data[:, 1], s=7, color="0.6", alpha=alpha, lw=0)
    else:
        for j in np.unique(labels):
            pts = data[labels == j]
            ax.scatter(pts[:, 0], pts[:, 1], s=7, color=color(int(j)), alpha=alpha, lw=0)


def _title(view: CellView) -> str:
    from .naming import model_title

    return view.result.get("model_title") or model_title(view.result["model"],
                                                         view.result.get("fixed") or [])


def data_figure(view: CellView, title: str, plots: dict | None = None) -> Figure | None:
    """The data, coloured by the true component where known."""
    family, data = view.family, view.data.numpy()
    if family is not None and family.name == "bernoulli" and _side(family.dim):
        return _image_grid([("data", data[:16])], _side(family.dim), title)
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    labels = view.assignments
    k = view.model.k if labels is not None else None
    if family is not None and family.name == "regression" and data.shape[1] == 2:
        _scatter(ax, data, labels, alpha=0.6)
        _regression_lines(ax, view, ["truth"])
        ax.set_xlabel("covariate x")
        ax.set_ylabel("response y")
        _legend_below(fig, ["truth"] if view.truth is not None else [], k)
    elif family is not None and family.name == "gaussian" and family.dim >= 2:
        _scatter(ax, data, labels, alpha=0.6)
        _components_2d(ax, view, ["truth"])
        ax.set_xlabel(view.coordinate(0))
        ax.set_ylabel(view.coordinate(1))
        ax.set_aspect("equal", adjustable="datalim")
        _legend_below(fig, ["truth"] if view.truth is not None else [], k, markers=True)
    elif data.ndim == 1 or data.shape[1] == 1:
        x = data.reshape(-1)
        bins = _bins(view, x)
        if labels is None:
            ax.hist(x, bins=bins, color="0.6")
        else:
            groups = [x[labels == j] for j in range(view.model.k)]
            ax.hist(groups, bins=bins, stacked=True,
                    color=[color(j) for j in range(len(groups))])
        ax.set_xlabel(_value_label(view))
        ax.set_ylabel("count")
        if labels is not None:
            _legend_below(fig, [], k, what="true component")
    else:
        return None
    ax.set_title(title, fontsize=11)
    return fig


def _discrete(view: CellView) -> bool:
    family = view.family
    if family is not None:
        return bool(getattr(family, "discrete", False))
    x = view.data.reshape(-1)
    return bool(torch.all(x == x.round())) and len(torch.unique(x)) <= 60


def _value_label(view: CellView) -> str:
    family = view.family
    if family is not None:
        return getattr(family, "value_label", "x")
    return str(view.columns[0]) if view.columns else "x"


def _bins(view: CellView, x: np.ndarray):
    if _discrete(view):
        return np.arange(x.min() - 0.5, x.max() + 1.5)
    return np.histogram_bin_edges(x, bins=min(80, max(10, int(np.sqrt(len(x))))))


def _side(dim: int) -> int | None:
    """The side of a square image of ``dim`` pixels, if it is one."""
    side = math.isqrt(dim)
    return side if side * side == dim and side > 1 else None


def _image_grid(rows: list[tuple[str, np.ndarray]], side: int, title: str,
                components: bool = False) -> Figure:
    """Rows of square images (one row per source), grey levels 0..1; with ``components``
    each column is component j, framed and titled in its colour."""
    cols = max(len(images) for _, images in rows)
    fig = Figure(figsize=(1.25 * cols + 0.8, 1.35 * len(rows) + 0.8), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(np.asarray(images[c]).reshape(side, side), cmap="gray_r", vmin=0,
                          vmax=1)
                if components:
                    for spine in ax.spines.values():
                        spine.set_color(color(c))
                        spine.set_linewidth(2.5)
                    if r == 0:
                        ax.set_title(f"component {c}", fontsize=9, color=color(c))
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(title)
    return fig


def prototypes_figure(view: CellView, title: str, plots: dict | None = None) -> Figure | None:
    """Bernoulli mixtures of square images: the prototypes of the truth, the shared start,
    EM and VI; column j = component j (aligned)."""
    family = view.family
    if family is None or family.name != "bernoulli" or not _side(family.dim):
        return None
    rows = []
    if view.truth is not None:
        rows.append(("truth", view.truth["probs"].numpy()))
    first = next((t for t in view.traces.values() if t["params"]), None)
    if first is not None:
        rows.append((f"start {view.start}", first["params"][0]["probs"].numpy()))
    for label, params in view.fits.items():
        rows.append((LABEL[label].split(" ")[0], params["probs"].numpy()))
    return _image_grid(rows, _side(family.dim), title, components=True)


def _regression_lines(ax, view: CellView, sources: list[str]):
    x = view.data[:, 0].numpy()
    grid = np.linspace(x.min(), x.max(), 50)
    intercept = view.family.intercept
    for src in sources:
        params = _get(view, src)
        if params is None:
            continue
        coefs = params["coefs"].numpy()
        for j in range(view.model.k):
            line = coefs[j, 0] + coefs[j, 1] * grid if intercept else coefs[j, 0] * grid
            ax.plot(grid, line, color=color(j), ls=STYLE[src]["ls"], lw=WIDTH[src],
                    alpha=ALPHA[src],
                    zorder=ZORDER[src])


def fit_figure(view: CellView, title: str, plots: dict | None = None) -> Figure | None:
    """2-D data coloured by EM's assignment; centres and 2σ ellipses (or regression lines)
    of truth, EM and VI: component j in colour j, the path by line style and marker."""
    family = view.family
    regression = family is not None and family.name == "regression" and view.data.shape[1] == 2
    gaussian = family is not None and family.name == "gaussian" and family.dim >= 2
    if not (regression or gaussian):
        return None
    fig = Figure(figsize=(6.6, 5.2), layout="constrained")
    ax = fig.add_subplot()
    resp = view.responsibilities.get("em", next(iter(view.responsibilities.values()), None))
    _scatter(ax, view.data.numpy(), None if resp is None else resp.argmax(-1), alpha=0.3)
    sources = _sources(view)
    if regression:
        _regression_lines(ax, view, sources)
        ax.set_xlabel("covariate x")
        ax.set_ylabel("response y")
    else:
        _components_2d(ax, view, sources)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel(view.coordinate(0))
        ax.set_ylabel(view.coordinate(1))
    words = {"truth": "truth dotted", "em": "EM solid", "vi": "VI dashed"}
    colouring = "; points by EM's most probable component" if resp is not None else ""
    ax.set_title(f"{title}\n{', '.join(words[s] for s in sources)}{colouring}", fontsize=10)
    _legend_below(fig, sources, view.model.k, markers=gaussian)
    return fig


def iterations_figure(view: CellView, title: str, plots: dict | None = None) -> Figure | None:
    """K-means style panels: assignments and centres at chosen EM iterations."""
    family, trace = view.family, view.traces.get("em")
    if (view.result["fits"].get("em", {}).get("method") != "hard-em" or family is None
            or family.name != "gaussian" or family.dim < 2 or not trace or not trace["params"]):
        return None
    panels = (plots or {}).get("panels", 4)
    last = len(trace["params"]) - 1
    picks = sorted({round(i * last / max(panels - 1, 1)) for i in range(panels)})
    fig = Figure(figsize=(3.3 * len(picks), 3.9), layout="constrained")
    data = view.data.numpy()
    for p, it in enumerate(picks):
        ax = fig.add_subplot(1, len(picks), p + 1)
        params = trace["params"][it]
        resp = view.model.e_step(view.data, params, hard=True)[0].numpy()
        _scatter(ax, data, resp.argmax(-1))
        path = np.stack([trace["params"][i]["locs"].numpy() for i in range(it + 1)])
        for j in range(view.model.k):
            ax.plot(path[:, j, 0], path[:, j, 1], "-", color="black", lw=1)
            ax.scatter(path[-1, j, 0], path[-1, j, 1], marker="X", s=120, color=color(j),
                       edgecolor="black", zorder=5)
        ax.set_title(f"iteration {it}" + (" (start)" if it == 0 else ""), fontsize=10)
        ax.set_xlabel(view.coordinate(0))
        ax.set_ylabel(view.coordinate(1))
        ax.set_aspect("equal", adjustable="datalim")
    fig.suptitle(title + " — centres (X) and their paths, points by nearest centre")
    _legend_below(fig, [], view.model.k)
    return fig


# -- parameters per iteration ----------------------------------------------------------------
def _coordinate_names(view: CellView, name: str, shape: tuple) -> list[tuple[tuple, str]]:
    """``(index within a component, readable name)`` of a per-component parameter's
    coordinates; lower-triangular factors list their lower triangle only."""
    rest = shape[1:]
    if not rest:
        return [((), name)]
    family = view.family
    if name == "coefs" and family is not None and getattr(family, "intercept", False):
        words = ["intercept"] + [f"slope {view.coordinate(i)}" if rest[0] > 2 else "slope"
                                 for i in range(rest[0] - 1)]
        return [((i,), f"{name}[{w}]") for i, w in enumerate(words)]
    if len(rest) == 1:
        return [((i,), f"{name}[{view.coordinate(i)}]") for i in range(rest[0])]
    if len(rest) == 2 and rest[0] == rest[1]:
        return [((i, j), f"{name}[{view.coordinate(i)},{view.coordinate(j)}]")
                for i in range(rest[0]) for j in range(i + 1)]
    return [(idx, f"{name}{list(idx)}") for idx in np.ndindex(*rest)]


def _trajectory_panels(view: CellView) -> list[tuple[str, str, callable]]:
    """``(title, y label, values(params) -> (k,) or (m,))`` per panel, at most 9."""
    panels = []
    for name, spec in view.model.specs.items():
        if spec.fixed:
            continue
        if spec.per_component:
            coords = _coordinate_names(view, name, spec.shape)
            if len(coords) > 6:
                continue
            for idx, label in coords:
                what = f"{label} ({spec.doc})" if spec.doc else label
                panels.append((what, label, lambda p, n=name, i=idx: p[n][(slice(None), *i)]))
        elif math.prod(spec.shape) <= 6:
            panels.append((f"{name} ({spec.doc})" if spec.doc else name, name,
                           lambda p, n=name: p[n].reshape(-1)))
    return panels[:9]


def trajectories_figure(view: CellView, title: str, plots: dict | None = None) -> Figure | None:
    """Every free parameter per iteration, one panel per parameter and coordinate:
    component j in colour j; EM solid, VI dashed on top, truth dotted."""
    traces = {label: t for label, t in view.traces.items() if t["params"]}
    panels = _trajectory_panels(view)
    if not panels or not traces:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.5 * cols, 3.3 * rows + 0.6), layout="constrained")
    for p, (what, ylabel, values_of) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, p + 1)
        seen = []
        for label in ("em", "vi"):
            trace = traces.get(label)
            if trace is None:
                continue
            values = np.stack([values_of(t).numpy() for t in trace["params"]])
            seen.append(values)
            for j in range(values.shape[1]):
                ax.plot(trace["iteration"], values[:, j], color=color(j) if values.shape[1]
                        == view.model.k else "0.3", ls=STYLE[label]["ls"], lw=WIDTH[label],
                        alpha=ALPHA[label],
                        zorder=ZORDER[label])
        if view.truth is not None:
            truth = values_of(view.truth).numpy().reshape(-1)
            seen.append(truth)
            for j, value in enumerate(truth):
                ax.axhline(value, lw=WIDTH["truth"], ls=":", zorder=ZORDER["truth"],
                           color=color(j) if len(truth) == view.model.k else "0.3")
        ax.set_title(what, fontsize=10)
        ax.set_xlabel(_step_label(view, short=True))
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.25)
        _yscale(ax, plots, np.concatenate([np.ravel(s) for s in seen]))
    _legend_below(fig, _sources(view), view.model.k)
    fig.suptitle(title)
    return fig


def _step_label(view: CellView, short: bool = False) -> str:
    """The x axis shared by both paths: EM iterations and VI optimiser steps."""
    vi = view.result["fits"].get("vi", {}).get("method", "")
    em = view.result["fits"].get("em", {}).get("method", "")
    if em == "online-em" or vi.startswith("vi-minibatch"):  # traces recorded per pass
        return "pass over the data" if short else "pass over the data (batch EM: an iteration)"
    if vi == "vi-lbfgs":
        return ("EM iteration / VI L-BFGS step" if short else
                "EM iteration / VI L-BFGS step (one step = up to 25 objective evaluations "
                "in its line search)")
    if vi == "vi-adam":
        return "EM iteration / VI Adam step (one objective evaluation each)"
    return "iteration"


# -- fitted densities of one-dimensional data -------------------------------------------------
def _component_densities(view: CellView, params: Params, grid: torch.Tensor) -> np.ndarray:
    """``(g, k)``: ``w_j p_j(x)`` at each grid point."""
    with torch.no_grad():
        return view.model.log_joint(grid, params).exp().numpy()


def _grid(view: CellView) -> torch.Tensor:
    family, data = view.family, view.data
    if family is not None:
        return family.grid(data)
    x = data.reshape(-1)
    if _discrete(view):
        return torch.arange(float(x.min()), float(x.max()) + 1, dtype=data.dtype)
    pad = 0.05 * float(x.max() - x.min() + 1e-9)
    low = float(x.min()) - pad
    if bool((x > 0).all()):
        low = max(low, float(x.min()) * 0.5)  # a positive variable stays positive
    return torch.linspace(low, float(x.max()) + pad, 400, dtype=data.dtype)


def _one_dimensional(view: CellView) -> bool:
    data = view.data
    return data.dim() == 1 or (data.dim() == 2 and data.shape[1] == 1)


def densities_figure(view: CellView, title: str, plots: dict | None = None) -> Figure | None:
    """The fitted mixture over the data at chosen iterations and at the end: each
    component's ``w_j p_j`` in its colour (EM solid, VI dashed), the mixture in grey
    (truth dotted). Counts are a probability mass function: drawn as stems, not lines."""
    if not _one_dimensional(view):
        return None
    traces = {label: t for label, t in view.traces.items() if t["params"]}
    if not traces:
        return None
    last = max(len(t["params"]) for t in traces.values()) - 1
    iterations = (plots or {}).get("iterations", [0, 5, 20])
    picks = sorted({i for i in iterations if i < last} | {last})
    x = view.data.reshape(-1).numpy()
    discrete = _discrete(view)
    try:
        grid = _grid(view)
        _component_densities(view, next(iter(view.fits.values())), grid)
    except Exception:  # a user program that cannot score a grid: no figure, no failure
        return None
    g = grid.numpy()
    fig = Figure(figsize=(4.3 * len(picks), 3.9), layout="constrained")
    sources = _sources(view)
    for p, it in enumerate(picks):
        ax = fig.add_subplot(1, len(picks), p + 1)
        ax.hist(x, bins=_bins(view, x), density=True, color="0.85")
        curves = {label: trace["params"][min(it, len(trace["params"]) - 1)]
                  for label, trace in traces.items()}
        if view.truth is not None:
            curves = {"truth": view.truth, **curves}
        tops = []
        for src, params in curves.items():
            parts = _component_densities(view, params, grid)
            tops.append(parts.sum(-1))
            if discrete:
                _pmf(ax, g, parts, src)
            else:
                for j in range(parts.shape[1]):
                    ax.plot(g, parts[:, j], color=color(j), ls=STYLE[src]["ls"],
                            lw=WIDTH[src] * 0.8, alpha=ALPHA[src], zorder=ZORDER[src])
                ax.plot(g, parts.sum(-1), color="0.35", ls=STYLE[src]["ls"], lw=1.0,
                        zorder=ZORDER[src])
        trace_len = {label: len(t["params"]) - 1 for label, t in traces.items()}
        done = [LABEL[m].split(" ")[0] for m, n in trace_len.items() if it > n and it != last]
        name = "start" if it == 0 else ("final" if it == last else f"iteration {it}")
        ax.set_title(name + (f" ({', '.join(done)} stopped earlier: final)" if done else ""),
                     fontsize=10)
        ax.set_xlabel(_value_label(view))
        ax.set_ylabel("probability" if discrete else "density")
        _yscale(ax, plots, np.concatenate(tops))
        if (plots or {}).get("yscale") == "log" and ax.get_yscale() == "log":
            ax.set_ylim(bottom=max(1e-6, min(float(t[t > 0].min()) for t in tops if (t > 0).any())))
    _legend_below(fig, sources, view.model.k, markers=discrete, truth_marker="_")
    fig.suptitle(title + (" — colours: wⱼ·pⱼ(x) per component; grey: their sum; bars: data"
                          if not discrete else " — stems: wⱼ·P(x | component j); bars: data"))
    return fig


def _pmf(ax, g, parts: np.ndarray, src: str) -> None:
    """``w_j p_j(x)`` at the integers: a stem per component (shifted sideways by
    component), EM solid with ``o``, VI dashed with ``x`` on the same stem; the truth a
    short bar ``_`` at its height."""
    k = parts.shape[1]
    for j in range(k):
        xs = g + (j - (k - 1) / 2) * min(0.5 / max(k, 1), 0.2)
        if src == "truth":
            ax.scatter(xs, parts[:, j], marker="_", s=160, color=color(j), linewidths=2.0,
                       zorder=ZORDER[src] + 3)
            continue
        ax.vlines(xs, 0, parts[:, j], color=color(j), ls=STYLE[src]["ls"],
                  lw=1.8 if src == "em" else 1.0, zorder=ZORDER[src])
        ax.scatter(xs, parts[:, j], marker=MARKER[src], s=30 if src == "em" else 22,
                   color=color(j), facecolors="none" if src == "em" else None,
                   zorder=ZORDER[src] + 1, linewidths=1.3)


# -- convergence ------------------------------------------------------------------------------
def objective_figure(view: CellView, title: str, plots: dict | None = None) -> Figure | None:
    """Relative gap to the best log-likelihood, against iterations / steps and against
    wall-clock seconds (log axis: EM's iterations take milliseconds). A gap that is
    exactly 0 is not a value on a log axis: such points are left out and marked on the
    bottom edge (▼, "gap exactly 0")."""
    traces = view.traces
    if not traces:
        return None
    best = max(max(t["objective"]) for t in traces.values())
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    any_zero = False
    for p, key in enumerate(("iteration", "seconds")):
        ax = fig.add_subplot(1, 2, p + 1)
        for label, trace in traces.items():
            gap = (best - np.asarray(trace["objective"])) / abs(best)
            xs = np.asarray(trace[key], dtype=float)
            shown = gap > 0
            if key == "seconds":
                shown &= xs > 0
            ax.plot(np.where(shown, xs, np.nan), np.where(shown, gap, np.nan), marker=".",
                    ms=3, **STYLE[label], label=f"{LABEL[label]} ({len(gap) - 1} it.)")
            zero = (gap == 0) & ((xs > 0) if key == "seconds" else True)
            if zero.any():
                any_zero = True
                ax.plot(xs[zero], np.zeros(int(zero.sum())), ls="none", marker="v", ms=8,
                        color=STYLE[label]["color"], clip_on=False, zorder=6,
                        transform=ax.get_xaxis_transform())
        ax.set_yscale("log")
        if key == "seconds":
            ax.set_xscale("log")
            ax.set_xlabel("wall-clock seconds since the fit started (log scale)")
        else:
            ax.set_xlabel(_step_label(view))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("(best − log-lik) / |best|")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if any_zero:
            handles.append(Line2D([], [], ls="none", marker="v", color="0.3", ms=8))
            labels.append("gap exactly 0 (the best value)")
        ax.legend(handles, labels, fontsize=8)
    fig.suptitle(f"{title} (both from start {view.start})" if view.result.get(
        "restarts", {}).get("count", 1) > 1 else title)
    return fig


def _restart_spread(record: dict, rtol: float) -> tuple[float, float, bool]:
    """``(best, relative spread, tied)`` of every restart's final log-likelihood, both
    paths: ``tied`` when they all lie within ``rtol`` of the best (one optimum)."""
    values = np.concatenate([np.asarray(record[m]["log_likelihoods"], dtype=float)
                             for m in ("em", "vi") if record.get(m)])
    best = float(values.max())
    spread = float(best - values.min()) / max(abs(best), 1e-300)
    return best, spread, spread <= rtol


def restarts_figure(view: CellView, title: str, plots: dict | None = None) -> Figure | None:
    """The final log-likelihood of every restart, both paths; the shared start of the
    comparison and each path's own best marked. When every restart ends within
    ``compare.rtol`` of the best, the axis spans that tolerance (round-off is not drawn
    as if it ranked the restarts) and the title says they reach one optimum."""
    record = view.result.get("restarts") or {}
    count = record.get("count", 1)
    if count <= 1:
        return None
    rtol = float(view.result["comparison"]["rtol"])
    best_ll, spread, tied = _restart_spread(record, rtol)
    fig = Figure(figsize=(max(6.0, 0.5 * count + 3.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    xs = np.arange(count)
    for label in ("em", "vi"):
        path = record.get(label)
        if not path:
            continue
        ys = np.asarray(path["log_likelihoods"], dtype=float)
        if label == "em":
            ax.scatter(xs, ys, marker="o", s=90, facecolors="none",
                       edgecolors=STYLE["em"]["color"], linewidths=1.8, zorder=4,
                       label="EM, each restart")
        else:
            ax.scatter(xs, ys, marker="x", s=60, color=STYLE["vi"]["color"], linewidths=1.8,
                       zorder=5, label="VI, each restart (one restart plate)")
        best = path["best"]
        if not tied:
            ties = int(np.sum(ys >= ys[best] - rtol * abs(ys[best])))
            which = f"'s best ({ties} tie within rtol)" if ties > 1 else "'s best"
            ax.annotate(LABEL[label].split(" ")[0] + which, (best, ys[best]),
                        textcoords="offset points", xytext=(8, 10 if label == "em" else -16),
                        fontsize=8, color=STYLE[label]["color"])
    shared = record["shared_start"]
    ax.axvspan(shared - 0.4, shared + 0.4, color="0.85", zorder=0,
               label=f"shared start {shared}: the comparison")
    vi_alone = view.result["fits"].get("vi", {}).get("log_likelihood")
    if vi_alone is not None:
        ax.scatter([shared], [vi_alone], marker="*", s=140, color=STYLE["vi"]["color"],
                   zorder=6, label=f"VI from start {shared} alone")
    ax.set_xticks(xs)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    if tied:
        half = 5 * rtol * max(abs(best_ll), 1.0)
        ax.set_ylim(best_ll - half, best_ll + half)
        title += (f"\nall within rtol {rtol:g} of the best (relative spread {spread:.1g}): "
                  "one optimum, differences are round-off")
    else:
        ax.margins(y=0.15)  # room for the "best" labels
    ax.set_xlabel("start (restart index)")
    ax.set_ylabel("final log-likelihood")
    ax.grid(alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2,
               fontsize=8, frameon=False)
    ax.set_title(title, fontsize=11)
    return fig


#: the figures of one cell, in report order: ``(file suffix, provider, title)``
PROVIDERS = [
    ("data", data_figure, "data"),
    ("fit", fit_figure, "fitted components"),
    ("prototypes", prototypes_figure, "prototypes P(pixel = 1)"),
    ("iterations", iterations_figure, "EM (Lloyd) iterations"),
    ("restarts", restarts_figure, "final log-likelihood of every restart"),
    ("trajectories", trajectories_figure, "parameters per iteration"),
    ("densities", densities_figure, "fitted mixture at chosen iterations"),
    ("objective", objective_figure, "convergence, EM vs VI"),
]


def cell_figures(view: CellView, name: str, plots: dict,
                 shown: str | None = None) -> list[tuple[str, Figure]]:
    """Every figure that suits this cell's model, as ``(file stem, figure)``; titles
    start with ``shown`` (default: ``name``)."""
    out = []
    for suffix, provider, what in PROVIDERS:
        title = f"{shown or name}: {what}"
        if suffix == "data":
            title = f"{shown or name}: data\n{_title(view)}"
        fig = provider(view, title, plots)
        if fig is not None:
            out.append((f"{name}_{suffix}", fig))
    return out
