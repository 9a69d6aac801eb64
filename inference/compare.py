"""Side-by-side comparison of fits: label alignment, parameter errors, objective gap, ARI, speed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..models.params import Params
from ..models.validation import InputError, InputTypeError, check_real


def alignment(model, reference: Params, other: Params) -> np.ndarray:
    """Permutation ``perm`` with ``other[perm[j]]`` matching ``reference[j]`` (Hungarian).

    Components are compared by their per-component parameters, each column
    scaled by its spread, so locations and scales weigh alike.
    """
    names = [n for n, s in model.specs.items() if s.per_component and not s.fixed]
    if not names:
        return np.arange(model.k)

    def rows(params, name):  # (k, everything else) with the component axis first
        axis = model.specs[name].component_axis
        return params[name].movedim(axis, 0).reshape(model.k, -1)

    a = torch.cat([rows(reference, n) for n in names], 1)
    b = torch.cat([rows(other, n) for n in names], 1)
    scale = torch.cat([a, b]).std(0).clamp_min(1e-12)
    cost = torch.cdist(a / scale, b / scale) ** 2
    _, perm = linear_sum_assignment(cost.numpy())
    return perm


def permute(model, params: Params, perm) -> Params:
    """Reorder the component axis of every per-component parameter."""
    return model.permute(params, torch.as_tensor(np.asarray(perm), dtype=torch.long))


def parameter_errors(model, reference: Params, other: Params) -> dict[str, float]:
    """Largest absolute difference per free parameter, after alignment."""
    aligned = permute(model, other, alignment(model, reference, other))
    return {n: float((aligned[n] - reference[n]).abs().max())
            for n, s in model.specs.items() if not s.fixed}


def adjusted_rand_index(a, b) -> float:
    """Adjusted Rand index of two labellings (1: identical up to relabelling)."""
    a, b = np.asarray(a), np.asarray(b)
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    if len(a) < 2:  # no pairs to disagree about (scikit-learn's convention)
        return 1.0
    total, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / pairs(np.array([len(a)]))
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return float((total - expected) / (maximum - expected))


def time_to_reach(fit, target: float, rtol: float) -> tuple[int | None, float | None]:
    """First iteration (and seconds) at which the fit's log-likelihood is within rtol of target."""
    trace = fit.log_likelihood_trace  # NaN where not tracked: never counts as reached
    reached = torch.nonzero(trace >= target - rtol * abs(target)).flatten()
    if len(reached) == 0:
        return None, None
    i = int(reached[0])
    return i, float(fit.seconds[i])


@dataclass
class Comparison:
    """Fits side by side.

    Attributes:
        names: labels of the fits (their methods unless given).
        log_likelihoods: final marginal log-likelihood of each fit.
        objective_gap: ``max - min`` of the final log-likelihoods.
        relative_gap: ``objective_gap / |max|``.
        parameter_errors: ``(a, b) -> {param: max abs difference}`` after alignment.
        truth_errors: ``name -> {param: max abs error vs truth}`` after alignment.
        ari: ``(a, b) -> adjusted Rand index`` of MAP assignments; ``truth`` too if known.
        iterations, seconds: per fit, total.
        to_tolerance: per fit, ``(iterations, seconds)`` to reach ``rtol`` of the best.
    """

    names: list
    log_likelihoods: dict
    objective_gap: float
    relative_gap: float
    parameter_errors: dict
    truth_errors: dict
    ari: dict
    iterations: dict
    seconds: dict
    converged: dict
    to_tolerance: dict
    rtol: float
    aligned_params: dict = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "log_likelihoods": self.log_likelihoods,
            "objective_gap": self.objective_gap,
            "relative_gap": self.relative_gap,
            "parameter_errors": {f"{a} vs {b}": v for (a, b), v in self.parameter_errors.items()},
            "truth_errors": self.truth_errors,
            "ari": {f"{a} vs {b}": v for (a, b), v in self.ari.items()},
            "iterations": self.iterations,
            "converged": self.converged,
            "iterations_to_tolerance": {k: v[0] for k, v in self.to_tolerance.items()},
            "rtol": self.rtol,
        }

    def timings(self) -> dict:
        """Wall-clock numbers (kept apart: they differ between runs)."""
        return {"seconds": self.seconds,
                "seconds_to_tolerance": {k: v[1] for k, v in self.to_tolerance.items()}}

    def table(self) -> str:
        """A plain-text table, one column per fit."""
        rows = [("log-likelihood", lambda n: f"{self.log_likelihoods[n]:.6f}"),
                ("iterations", lambda n: str(self.iterations[n])),
                ("seconds", lambda n: f"{self.seconds[n]:.3f}"),
                ("converged", lambda n: str(self.converged[n])),
                (f"iters to {self.rtol:g}", lambda n: str(self.to_tolerance[n][0]))]
        if self.truth_errors:
            for p in next(iter(self.truth_errors.values())):
                rows.append((f"|{p} - truth|", lambda n, p=p: f"{self.truth_errors[n][p]:.2e}"))
        width = max(len(r[0]) for r in rows) + 2
        cols = [2 + max(len(n), *(len(cell(n)) for _, cell in rows)) for n in self.names]
        lines = ["".ljust(width) + "".join(n.rjust(c) for n, c in zip(self.names, cols))]
        for label, cell in rows:
            lines.append(label.ljust(width) + "".join(cell(n).rjust(c)
                                                      for n, c in zip(self.names, cols)))
        lines.append(f"objective gap: {self.objective_gap:.3e} (relative {self.relative_gap:.3e})")
        for (a, b), errs in self.parameter_errors.items():
            worst = max(errs.values()) if errs else 0.0
            lines.append(f"max |param| difference {a} vs {b}: {worst:.3e};"
                         f" ARI {self.ari[(a, b)]:.4f}")
        return "\n".join(lines)


def compare(*fits, truth: Params | None = None, truth_assignments=None, names=None,
            rtol: float = 1e-6) -> Comparison:
    """Compare fits of one model on one data set.

    Args:
        fits: two or more :class:`~inference.fit.Fit` results.
        truth: true parameters, if the data were simulated.
        truth_assignments: ``(n,)`` true labels, for the ARI against the truth.
        names: labels for the fits (default: their methods).
        rtol: relative tolerance of "reached the best objective".
    """
    from .fit import Fit

    if len(fits) < 1:
        raise InputError("fits: expected at least one fit")
    for i, fit in enumerate(fits):
        if not isinstance(fit, Fit):
            raise InputTypeError(f"fits: expected Fit results, got {type(fit).__name__} at "
                                 f"position {i}")
    model = fits[0].model
    for i, fit in enumerate(fits[1:], 1):
        if fit.model is not model and fit.model.describe() != model.describe():
            raise InputError(f"fits: expected fits of one model, got {model.describe()} and "
                             f"{fit.model.describe()} (position {i})")
        if fit.responsibilities.shape != fits[0].responsibilities.shape:
            raise InputError(f"fits: expected fits of one data set, got {len(fits[0].assignments)}"
                             f" and {len(fit.assignments)} observations (position {i})")
    names = list(names) if names is not None else [f.method for f in fits]
    if len(names) != len(fits):
        raise InputError(f"names: expected one label per fit ({len(fits)}), got {names}")
    if len(set(names)) != len(names):
        raise InputError(f"names: expected distinct labels, got {names}")
    rtol = check_real(rtol, "rtol", low=0.0)
    if truth_assignments is not None:
        labels = np.asarray(truth_assignments)
        if labels.shape != (len(fits[0].assignments),):
            raise InputError(f"truth_assignments: expected {len(fits[0].assignments)} labels, "
                             f"got shape {labels.shape}")
    by_name = dict(zip(names, fits))
    lls = {n: f.log_likelihood for n, f in by_name.items()}
    best = max(lls.values())
    gap = best - min(lls.values())
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    errors = {(a, b): parameter_errors(model, by_name[a].params, by_name[b].params)
              for a, b in pairs}
    ari = {(a, b): adjusted_rand_index(by_name[a].assignments, by_name[b].assignments)
           for a, b in pairs}
    truth_errors, aligned = {}, {}
    if truth is not None:
        truth = model.check_params(truth, "truth")
        for n, f in by_name.items():
            truth_errors[n] = parameter_errors(model, truth, f.params)
            aligned[n] = permute(model, f.params, alignment(model, truth, f.params))
    if truth_assignments is not None:
        for n, f in by_name.items():
            ari[(n, "truth")] = adjusted_rand_index(f.assignments, truth_assignments)
    return Comparison(
        names=names,
        log_likelihoods=lls,
        objective_gap=gap,
        relative_gap=gap / abs(best) if best else 0.0,
        parameter_errors=errors,
        truth_errors=truth_errors,
        ari=ari,
        iterations={n: f.iterations for n, f in by_name.items()},
        seconds={n: f.elapsed for n, f in by_name.items()},
        converged={n: f.converged for n, f in by_name.items()},
        to_tolerance={n: time_to_reach(f, best, rtol) for n, f in by_name.items()},
        rtol=rtol,
        aligned_params=aligned,
    )
