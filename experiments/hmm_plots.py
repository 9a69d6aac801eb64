"""Figures of hidden-Markov-model runs, drawn from what the run saved.

- the observed sequence, each state's posterior probability over time and the true
  states as a strip;
- the Viterbi path against the true states;
- the transition matrices (truth, EM, VI) as heat maps with their numbers;
- and, from :mod:`experiments.plots`, the parameter trajectories and the convergence.

States of a fit are relabelled to match the truth (Hungarian alignment) where it is known.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..models.sequences import pad
from .plots import LABEL, CellView, color, objective_figure, trajectories_figure

#: steps drawn: the first sequences, one after another, up to this many steps
WINDOW = 600


def is_sequence_model(model) -> bool:
    """Whether a run's model takes sequences (the figures here suit it)."""
    from .config import takes_sequences

    return takes_sequences(model)


def _sequences(view: CellView):
    lengths = view.lengths if view.lengths is not None else np.array([len(view.data)])
    return pad(view.data.reshape(len(view.data), *view.model.family.event_shape),
               torch.as_tensor(lengths, dtype=torch.long))


def _window(view: CellView) -> tuple[int, np.ndarray, str]:
    """``(steps shown, sequence boundaries inside them, x-axis label)``."""
    lengths = view.lengths if view.lengths is not None else np.array([len(view.data)])
    total = int(np.sum(lengths))
    shown = min(total, WINDOW)
    ends = np.cumsum(lengths)
    inside = ends[ends < shown]
    count = len(inside) + 1
    label = "step" + (f" (the first {shown} of {total}" if shown < total else " (")
    label += f"; {count} of {len(lengths)} sequences)" if len(lengths) > 1 else ")"
    return shown, inside, label.replace(" ()", "")


def _boundaries(axes, inside: np.ndarray) -> None:
    for ax in axes:
        for x in inside:
            ax.axvline(x - 0.5, color="black", lw=0.8, ls="--", alpha=0.6)


def _order(view: CellView, params) -> np.ndarray:
    """``order[j]``: the fit's state shown as state ``j`` (the truth's labels if known)."""
    if view.truth is None:
        return np.arange(view.model.k)
    from ..inference.compare import alignment

    return np.asarray(alignment(view.model, view.truth, params))


def _relabel(labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse[labels]


def _strip(ax, rows: list[tuple[str, np.ndarray]], k: int, steps: np.ndarray):
    """Rows of states as coloured bands, one row per labelling."""
    image = np.stack([r for _, r in rows]).astype(float)
    cmap = ListedColormap([color(j) for j in range(k)])
    ax.imshow(image, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5, vmax=k - 0.5,
              extent=(steps[0] - 0.5, steps[-1] + 0.5, len(rows) - 0.5, -0.5))
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)


def _observations(ax, view: CellView, values: np.ndarray, steps: np.ndarray):
    family = view.model.family
    values = values.reshape(len(values), -1)
    if getattr(family, "discrete", False):
        ax.plot(steps, values[:, 0], "o", ms=2.2, color="0.3")
    else:
        for d in range(min(values.shape[1], 3)):
            ax.plot(steps, values[:, d], lw=0.7, color=f"{0.15 + 0.25 * d}")
    ax.set_ylabel(getattr(family, "value_label", "x"))


def posterior_figure(view: CellView, title: str) -> Figure | None:
    """The first sequences (up to a window), each state's posterior (EM) and the true
    states."""
    resp = view.responsibilities.get("em", next(iter(view.responsibilities.values()), None))
    if resp is None:
        return None
    label = "em" if "em" in view.responsibilities else next(iter(view.responsibilities))
    shown, inside, xlabel = _window(view)
    steps = np.arange(shown)
    order = _order(view, view.fits[label])
    post = np.asarray(resp)[:shown][:, order]
    has_truth = view.assignments is not None and view.truth is not None
    rows = 3 if has_truth else 2
    fig = Figure(figsize=(10, 1.7 * rows + 1.4), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True,
                        gridspec_kw={"height_ratios": [2, 2, 0.45][:rows]})
    _observations(axes[0], view, view.data.numpy()[:shown], steps)
    axes[1].stackplot(steps, post.T, colors=[color(j) for j in range(view.model.k)],
                      step="mid", alpha=0.9)
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel(f"P(state | data)\n{LABEL[label].split(' ')[0]}")
    if has_truth:
        _strip(axes[2], [("true state", np.asarray(view.assignments)[:shown])], view.model.k,
               steps)
    _boundaries(axes, inside)
    axes[-1].set_xlabel(xlabel)
    handles = [Patch(color=color(j), label=f"state {j}") for j in range(view.model.k)]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(view.model.k, 8),
               fontsize=8, frameon=False)
    fig.suptitle(title)
    return fig


def viterbi_figure(view: CellView, title: str) -> Figure | None:
    """Viterbi paths of the fits against the true states (the first sequences, up to a
    window), with the share of steps decoded right over all sequences."""
    if view.assignments is None or view.truth is None or not view.fits:
        return None
    data = _sequences(view)
    truth = np.asarray(view.assignments)
    shown, inside, xlabel = _window(view)
    steps = np.arange(shown)
    rows, notes = [("true state", truth[:shown])], []
    for label, params in view.fits.items():
        path = _relabel(view.model.viterbi(data, params).numpy(), _order(view, params))
        name = LABEL[label].split(" ")[0]
        rows.append((f"Viterbi {name}", path[:shown]))
        notes.append(f"{name}: {np.mean(path == truth):.1%} of {len(truth)} steps right")
    fig = Figure(figsize=(10, 0.55 * len(rows) + 1.5), layout="constrained")
    ax = fig.add_subplot()
    _strip(ax, rows, view.model.k, steps)
    _boundaries([ax], inside)
    ax.set_xlabel(xlabel)
    handles = [Patch(color=color(j), label=f"state {j}") for j in range(view.model.k)]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(view.model.k, 8),
               fontsize=8, frameon=False)
    fig.suptitle(f"{title} — " + "; ".join(notes))
    return fig


def transition_figure(view: CellView, title: str) -> Figure | None:
    """The transition matrices of the truth and the fits, as heat maps with numbers."""
    panels = []
    if view.truth is not None:
        panels.append(("truth", view.truth["transition"].numpy()))
    for label, params in view.fits.items():
        order = _order(view, params)
        matrix = params["transition"].numpy()[np.ix_(order, order)]
        panels.append((LABEL[label].split(" (")[0], matrix))
    if not panels:
        return None
    k = view.model.k
    size = 1.0 + 0.55 * k
    fig = Figure(figsize=(size * len(panels) + 1.0, size + 0.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, matrix) in zip(axes, panels):
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
        for i in range(k):
            for j in range(k):
                value = matrix[i, j]
                ax.text(j, i, f"{value:.3f}" if k <= 6 else f"{value:.2f}", ha="center",
                        va="center", fontsize=8 if k <= 6 else 6,
                        color="white" if value > 0.6 else "black")
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xlabel("to state")
        ax.set_ylabel("from state")
        ax.set_title(name, fontsize=10)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="probability")
    fig.suptitle(title)
    return fig


def hmm_figures(view: CellView, name: str, plots: dict) -> list[tuple[str, Figure]]:
    """Every figure of an HMM cell, as ``(file stem, figure)``."""
    model = view.model.describe()
    figures = [
        (f"{name}_posterior", posterior_figure(view, f"{name}: observations and state "
                                                     f"posteriors ({model})")),
        (f"{name}_viterbi", viterbi_figure(view, f"{name}: Viterbi path vs truth")),
        (f"{name}_transition", transition_figure(view, f"{name}: transition matrices")),
        (f"{name}_trajectories", trajectories_figure(view, f"{name}: parameters per iteration")),
        (f"{name}_objective", objective_figure(view, f"{name}: convergence, EM vs VI")),
    ]
    return [(stem, fig) for stem, fig in figures if fig is not None]
