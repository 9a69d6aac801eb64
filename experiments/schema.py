"""The shape of a run's ``metrics.json``, checked before ``emvi report`` renders it.

A results file is input like any other: a hand-edited or truncated one gets one line
naming the file and the key (``experiments.x.cells[0].fits: missing``), never a
``KeyError`` from deep inside the report.
"""

from __future__ import annotations

from ..models import registry
from ..models.validation import InputError
from . import store
from .config import ConfigError

NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))
NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
         list: "a list", dict: "a table", type(None): "null"}

PROVENANCE = {"versions": dict, "python": str, "torch_threads": int,
              "git_commit": (str, type(None)), "started": str}
TOP = {"config": str, "provenance": PROVENANCE, "experiments": dict}
EXPERIMENT = {"axes": list, "plots": {"enabled": bool, "iterations": list, "panels": int},
              "cells": list}
CELL = {
    "cell": str, "values": dict, "model": {"name": str}, "model_description": str,
    "data": {"source": str, "n": int},
    "init": {"method": str, "seed": (int, type(None)), "restarts": int, "params": dict},
    "fits": dict,
    "comparison": {"truth_errors": (dict, type(None)), "ari": dict, "parameter_errors": dict,
                   "rtol": NUMBER, "iterations_to_tolerance": dict,
                   "objective_gap": NUMBER, "relative_gap": NUMBER},
    "timing": {"seconds": dict, "seconds_per_iteration": dict, "seconds_to_tolerance": dict},
}
FIT = {"params": dict, "log_likelihood": NUMBER, "iterations": int, "converged": bool,
       "method": str, "m_step": str, "notes": list, "events": list}
LABELS = ("em", "vi")


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(NAMES.get(k, k.__name__) for k in kinds)


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str):
        raise ConfigError(self.source, key, message)

    def value(self, value, kind, key: str):
        if isinstance(kind, dict):
            self.value(value, dict, key)
            for name, sub in kind.items():
                where = f"{key}.{name}" if key else name
                if name not in value:
                    self.fail(where, "missing")
                self.value(value[name], sub, where)
            return value
        kinds = kind if isinstance(kind, tuple) else (kind,)
        is_bool = isinstance(value, bool)
        if not isinstance(value, kinds) or (is_bool and bool not in kinds):
            self.fail(key, f"expected {_kind_name(kind)}, got {value!r:.40}")
        return value

    def table_of(self, table: dict, kind, key: str, labels) -> None:
        for label in labels:
            if label not in table:
                self.fail(f"{key}.{label}", "missing")
            self.value(table[label], kind, f"{key}.{label}")


def check_metrics(metrics, source: str) -> None:
    """Check every key the report reads; raises :class:`ConfigError` naming the first bad one.

    Experiment names must be safe path components (figures are written under their
    names), fit labels are ``em``/``vi``, and a registered model's options must be its own.
    """
    c = _Checker(source)
    if not isinstance(metrics, dict):
        c.fail("", f"expected a table of results, got {type(metrics).__name__}")
    c.value(metrics, TOP, "")
    if "description" in metrics:
        c.value(metrics["description"], (str, type(None)), "description")
    experiments = metrics["experiments"]
    if not experiments:
        c.fail("experiments", "expected at least one experiment")
    for name, exp in experiments.items():
        prefix = f"experiments.{name}"
        problem = store.name_problem(name)
        if problem is not None:
            c.fail(prefix, f"not a usable experiment name: {problem}")
        c.value(exp, EXPERIMENT, prefix)
        if "description" in exp:
            c.value(exp["description"], (str, type(None)), f"{prefix}.description")
        for i, axis in enumerate(exp["axes"]):
            if not (isinstance(axis, list) and len(axis) == 2 and isinstance(axis[0], str)
                    and isinstance(axis[1], list)):
                c.fail(f"{prefix}.axes[{i}]", "expected [key, [values]]")
        if not exp["cells"]:
            c.fail(f"{prefix}.cells", "expected at least one cell")
        for i, cell in enumerate(exp["cells"]):
            _check_cell(c, cell, f"{prefix}.cells[{i}]")


def _check_cell(c: _Checker, cell, key: str) -> None:
    c.value(cell, CELL, key)
    model = cell["model"]
    if not registry.is_reference(model["name"]):
        try:
            options = registry.options(model["name"])
        except InputError as exc:
            c.fail(f"{key}.model.name", str(exc).removeprefix("model: "))
        unknown = [name for name in model if name != "name" and name not in options]
        if unknown:
            c.fail(f"{key}.model.{unknown[0]}", f"not an option of {model['name']}")
    fits = cell["fits"]
    if not fits or any(label not in LABELS for label in fits):
        c.fail(f"{key}.fits", f"expected fits labelled {list(LABELS)}, got {list(fits)}")
    labels = list(fits)
    for label, fit in fits.items():
        c.value(fit, FIT, f"{key}.fits.{label}")
        for j, event in enumerate(fit["events"]):
            c.value(event, {"iteration": int}, f"{key}.fits.{label}.events[{j}]")
    if "missing" in cell:
        from .missing_plots import check

        check(cell["missing"], f"{key}.missing", c.source)
    timing, comp = cell["timing"], cell["comparison"]
    c.table_of(timing["seconds"], NUMBER, f"{key}.timing.seconds", labels)
    c.table_of(timing["seconds_per_iteration"], NUMBER, f"{key}.timing.seconds_per_iteration",
               labels)
    c.table_of(timing["seconds_to_tolerance"], OPTIONAL_NUMBER,
               f"{key}.timing.seconds_to_tolerance", labels)
    c.table_of(comp["iterations_to_tolerance"], (int, type(None)),
               f"{key}.comparison.iterations_to_tolerance", labels)
    if comp["truth_errors"]:
        c.table_of(comp["truth_errors"], dict, f"{key}.comparison.truth_errors", labels)
        first = comp["truth_errors"][labels[0]]
        for label in labels:
            c.table_of(comp["truth_errors"][label], NUMBER,
                       f"{key}.comparison.truth_errors.{label}", list(first))
    if len(labels) == 2:
        pair = f"{labels[0]} vs {labels[1]}"
        c.table_of(comp["ari"], NUMBER, f"{key}.comparison.ari", [pair])
        c.table_of(comp["parameter_errors"], dict, f"{key}.comparison.parameter_errors", [pair])
        errors = comp["parameter_errors"][pair]
        c.table_of(errors, NUMBER, f"{key}.comparison.parameter_errors.{pair}", list(errors))
