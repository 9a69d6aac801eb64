"""Missing entries in an experiment: removed from the data (``data.missing``, seeded), then
exact EM compared with the common shortcuts against the truth.

``data.missing = 0.2`` removes that fraction of all entries completely at random (MCAR);
``data.missing = { fraction = 0.3, mechanism = "mar", column = 0, strength = 2.0 }``
removes them at random given what is observed (MAR): column ``column`` is always
observed, and every other entry of a row is missing with probability
``sigmoid(a + strength * z)``, ``z`` the row's standardised value in ``column`` and
``a`` set so that ``fraction`` of all entries go missing. Either way a row keeps at
least one entry (a row with nothing observed carries no information). The removal is
seeded by ``data.seed`` on a stream of its own.

A hidden Markov model's steps lose entries the same way, except that a step may lose every
entry under ``mcar`` (it stays in its sequence: it emits with probability one but moves
the chain). There are no shortcuts to compare (dropping steps would join the steps either
side of them) and no imputation: the result holds the exact fits' errors.

The shortcuts, fitted with the cell's own ``[init]`` and ``[em]`` options:

- ``drop_rows``: fit on the complete rows only (listwise deletion), impute with that fit;
- ``mean_impute``: fill each missing entry with its column's observed mean, then fit.

Per method: the largest error of each parameter after label alignment (as the
comparison reports it) and the imputation error (RMSE of the imputed entries against
the values that were removed).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from ..inference import fit_em, initialize
from ..inference.compare import parameter_errors
from ..models.sequences import Sequences, pad
from .config import ConfigError

MECHANISMS = ("mcar", "mar")
KEYS = ("fraction", "mechanism", "column", "strength")
METHODS = ("em", "vi", "drop_rows", "mean_impute")
LABELS = {"em": "exact EM", "vi": "exact VI (TraceEnum_ELBO)", "drop_rows": "drop incomplete rows",
          "mean_impute": "mean-impute, then EM"}
#: a separate random stream for the removal ("miss" in ASCII)
STREAM = 0x6D697373


def check_spec(value, source, key: str = "data.missing") -> dict | None:
    """``data.missing`` as ``{fraction, mechanism, column, strength}``, or ``None`` (nothing
    removed: absent or a fraction of 0)."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = {"fraction": value}
    if not isinstance(value, dict):
        raise ConfigError(source, key, f"expected a fraction of entries or a table "
                          f"{{ fraction = ..., mechanism = ... }}, got {value!r:.60}")
    unknown = [k for k in value if k not in KEYS]
    if unknown:
        raise ConfigError(source, f"{key}.{unknown[0]}", f"unknown key; expected {list(KEYS)}")
    fraction = value.get("fraction")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (
            0 <= fraction < 1):
        raise ConfigError(source, f"{key}.fraction" if "fraction" in value else key,
                          f"expected a fraction of entries in [0, 1), got {fraction!r:.40}")
    mechanism = value.get("mechanism", "mcar")
    if mechanism not in MECHANISMS:
        raise ConfigError(source, f"{key}.mechanism", f"expected one of {list(MECHANISMS)}, "
                          f"got {mechanism!r:.40}")
    column = value.get("column", 0)
    if isinstance(column, bool) or not isinstance(column, int) or column < 0:
        raise ConfigError(source, f"{key}.column", f"expected a column index >= 0, got "
                          f"{column!r:.40}")
    strength = value.get("strength", 2.0)
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not (
            math.isfinite(strength)):
        raise ConfigError(source, f"{key}.strength", f"expected a finite number, got "
                          f"{strength!r:.40}")
    if fraction == 0:
        return None
    return {"fraction": float(fraction), "mechanism": mechanism, "column": column,
            "strength": float(strength)}


def remove(data: torch.Tensor, spec: dict | None, seed: int, source,
           key: str = "data.missing") -> torch.Tensor:
    """``data: (n, d)`` with entries removed (NaN) as ``spec`` says, seeded by ``seed``."""
    if spec is None:
        return data
    if isinstance(data, Sequences):
        return _remove_from_steps(data, spec, seed, source, key)
    if not isinstance(data, torch.Tensor):
        raise ConfigError(source, key, "entries are removed from a mixture's rows or an "
                          "HMM's steps")
    if data.dim() != 2 or data.shape[1] < 2:
        raise ConfigError(source, key, "the model's observations have one coordinate: an "
                          "entry cannot go missing without its whole row")
    n, d = data.shape
    if bool(torch.isnan(data).any()):
        raise ConfigError(source, key, "the data have missing entries already")
    most = (d - 1) / d
    if spec["fraction"] > most:
        raise ConfigError(source, f"{key}.fraction", f"at most {most:.3g} of the entries can "
                          f"go missing with {d} per row (each row keeps one), got "
                          f"{spec['fraction']:g}")
    rng = np.random.default_rng([seed, STREAM])
    if spec["mechanism"] == "mcar":
        missing = _completely_at_random(n, d, spec["fraction"], rng)
    else:
        if spec["column"] >= d:
            raise ConfigError(source, f"{key}.column", f"no column {spec['column']} in {d}")
        missing = _at_random(data.numpy(), spec, rng)
    return data.masked_fill(torch.as_tensor(missing), math.nan)


def _remove_from_steps(data: Sequences, spec: dict, seed: int, source, key: str) -> Sequences:
    """An HMM's steps with entries removed: under ``mcar`` exactly ``round(fraction * N * d)``
    of all entries, whole steps included; ``mar`` as for rows (the driving column is kept)."""
    flat = data.flat()
    entries = flat.reshape(len(flat), -1)
    if bool(torch.isnan(entries).any()):
        raise ConfigError(source, key, "the data have missing entries already")
    n, d = entries.shape
    rng = np.random.default_rng([seed, STREAM])
    if spec["mechanism"] == "mcar":
        missing = np.zeros(n * d, dtype=bool)
        missing[rng.choice(n * d, size=round(spec["fraction"] * n * d), replace=False)] = True
    else:
        if d < 2:
            raise ConfigError(source, f"{key}.mechanism", "'mar' keeps one coordinate of each "
                              "step observed: these steps have only one (use 'mcar')")
        if spec["column"] >= d:
            raise ConfigError(source, f"{key}.column", f"no column {spec['column']} in {d}")
        most = (d - 1) / d
        if spec["fraction"] > most:
            raise ConfigError(source, f"{key}.fraction", f"at most {most:.3g} of the entries "
                              f"can go missing with {d} per step under 'mar', got "
                              f"{spec['fraction']:g}")
        missing = _at_random(entries.numpy(), spec, rng)
    hidden = torch.as_tensor(missing.reshape(flat.shape))
    return pad(flat.masked_fill(hidden, math.nan), data.lengths)


def _completely_at_random(n: int, d: int, fraction: float, rng) -> np.ndarray:
    """Exactly ``round(fraction * n * d)`` entries, uniformly among those that leave every
    row one entry (which one is kept is drawn too)."""
    kept = rng.integers(d, size=n)
    candidates = np.ones((n, d), dtype=bool)
    candidates[np.arange(n), kept] = False
    flat = np.flatnonzero(candidates)
    chosen = rng.choice(flat, size=min(round(fraction * n * d), len(flat)), replace=False)
    missing = np.zeros(n * d, dtype=bool)
    missing[chosen] = True
    return missing.reshape(n, d)


def _at_random(data: np.ndarray, spec: dict, rng) -> np.ndarray:
    """Entries outside ``spec["column"]`` missing with probability rising with that column's
    (always observed) value; the intercept solved so that the expected fraction is right."""
    n, d = data.shape
    driver = data[:, spec["column"]]
    z = (driver - driver.mean()) / (driver.std() or 1.0)
    target = spec["fraction"] * d / (d - 1)  # of the entries that may go missing
    low, high = -50.0, 50.0
    for _ in range(200):  # bisection: the mean probability rises with the intercept
        middle = 0.5 * (low + high)
        if np.mean(_sigmoid(middle + spec["strength"] * z)) < target:
            low = middle
        else:
            high = middle
    probability = _sigmoid(0.5 * (low + high) + spec["strength"] * z)
    missing = rng.random((n, d)) < probability[:, None]
    missing[:, spec["column"]] = False
    return missing


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# -- the comparison -----------------------------------------------------------------------
def evaluate(cell, model, complete: torch.Tensor, observed: torch.Tensor, fits: dict, truth,
             comparable: bool) -> dict:
    """Exact fits (``fits``: em, vi) beside the shortcuts, on the data with entries removed.

    Returns:
        ``{"fraction": realised fraction, "methods": {name: {"errors": {param: max abs
        error} or None, "imputation_rmse": float or None, "notes": [...]}}}``.
    """
    if isinstance(observed, Sequences):
        return _exact_only(model, observed, fits, truth, comparable)
    hidden = torch.isnan(observed)
    out = {}
    for label, fit in fits.items():
        out[label] = _score(model, fit.params, fit.impute(observed), complete, hidden, truth,
                            comparable)
    rows = ~hidden.reshape(len(observed), -1).any(1)
    if int(rows.sum()) >= model.k:
        fit = _shortcut(cell, model, observed[rows])
        out["drop_rows"] = _score(model, fit.params, fit.impute(observed), complete, hidden,
                                  truth, comparable)
    else:
        out["drop_rows"] = {"errors": None, "imputation_rmse": None,
                            "notes": [f"{int(rows.sum())} complete rows: fewer than k"]}
    means = torch.nanmean(observed, 0)
    filled = torch.where(hidden, means.expand_as(observed), observed)
    fit = _shortcut(cell, model, filled)
    out["mean_impute"] = _score(model, fit.params, filled, complete, hidden, truth, comparable)
    return {"fraction": float(hidden.double().mean()), "complete_rows": int(rows.sum()),
            "methods": out}


def _exact_only(model, observed: Sequences, fits: dict, truth, comparable) -> dict:
    """An HMM's exact fits against the truth: no shortcuts, no imputation."""
    hidden = torch.isnan(observed.flat()).reshape(observed.n_observations, -1)
    note = "a hidden Markov model: no shortcuts to compare and no imputation"
    methods = {label: {"errors": parameter_errors(model, truth, fit.params) if comparable
                       else None, "imputation_rmse": None, "notes": [note]}
               for label, fit in fits.items()}
    return {"fraction": float(hidden.double().mean()),
            "complete_rows": int((~hidden.any(1)).sum()), "methods": methods}


def _shortcut(cell, model, data):
    """A fit with the cell's ``[init]`` and ``[em]`` options on data without missing entries."""
    init, em = cell.init, cell.em
    if init["method"] == "params":
        start = model.check_params(init["params"], "init.params")
    else:
        start = initialize(model, data, method=init["method"], seed=init["seed"],
                           restarts=init["restarts"])
    return fit_em(model, data, start, max_iter=em["max_iter"], tol=em["tol"], hard=em["hard"],
                  chunk_size=em["chunk_size"], record_params=False)


def _score(model, params, imputed, complete, hidden, truth, comparable) -> dict:
    errors = parameter_errors(model, truth, params) if comparable else None
    rmse = None
    if bool(hidden.any()):
        rmse = float((imputed - complete)[hidden].square().mean().sqrt())
    return {"errors": errors, "imputation_rmse": rmse, "notes": []}


def summary(result: dict) -> dict:
    """``method -> (max parameter error or None, imputation RMSE or None)``."""
    out = {}
    for method, numbers_ in result["methods"].items():
        errors = numbers_["errors"]
        out[method] = (max(errors.values()) if errors else None, numbers_["imputation_rmse"])
    return out

