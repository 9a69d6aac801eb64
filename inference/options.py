"""The fitting options, declared once: type, range, default and a line of help each.

The Python API (:func:`~emvi.inference.em.fit_em`, :func:`~emvi.inference.vi.fit_vi`,
:func:`~emvi.inference.init.initialize`, :func:`~emvi.inference.online.fit_online_em`),
the config loader (sections ``[em]``, ``[vi]``, ``[init]``, the table ``em.online``)
and ``emvi options`` all read these tables, so a default or a range cannot differ between
them (as scikit-learn's ``_parameter_constraints``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models.validation import (
    InputError,
    InputTypeError,
    check_bool,
    check_callable,
    check_int,
    check_real,
)

INIT_METHODS = ("random", "random_points", "kmeans++", "kmeans", "random_params")
OPTIMIZERS = ("lbfgs", "adam")


@dataclass(frozen=True)
class Option:
    """One option of a fitting function.

    Attributes:
        kind: ``int``, ``float``, ``bool``, ``str`` or ``callable``.
        default: the value when not given (``None``: unset, where ``nullable``).
        help: one line for ``emvi options`` and the docs.
        low, high: inclusive bounds (``open_low``: ``> low``).
        choices: the allowed strings.
        nullable: ``None`` is a legal value (it means what ``help`` says).
    """

    kind: Any
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    choices: tuple | None = None
    nullable: bool = False

    def check(self, value, name: str):
        """The value, validated (``InputError``/``InputTypeError`` naming ``name``)."""
        if value is None:
            if self.nullable:
                return None
            raise InputTypeError(f"{name}: expected {self.describe_kind()}, got None")
        if self.kind is int:
            return check_int(value, name, low=None if self.low is None else int(self.low),
                             high=None if self.high is None else int(self.high))
        if self.kind is float:
            return check_real(value, name, low=self.low, high=self.high, open_low=self.open_low)
        if self.kind is bool:
            return check_bool(value, name)
        if self.kind is callable:
            return check_callable(value, name)
        if not isinstance(value, str):
            raise InputTypeError(f"{name}: expected a string, got {value!r:.60}")
        if self.choices is not None and value not in self.choices:
            raise InputError(f"{name}: expected one of {list(self.choices)}, got {value!r}")
        return value

    def describe_kind(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        names = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                 callable: "a function"}
        text = names.get(self.kind, str(self.kind))
        if self.low is not None or self.high is not None:
            low = "" if self.low is None else f"{'>' if self.open_low else '>='} {self.low:g}"
            high = "" if self.high is None else f"<= {self.high:g}"
            text += " " + " and ".join(part for part in (low, high) if part)
        return text


EM = {
    "max_iter": Option(int, 1000, "most M-steps", low=0, high=10**8),
    "tol": Option(float, 1e-8, "stop a restart when its objective per observation changes by "
                  "at most tol (unit-free); none: run all max_iter", low=0.0, nullable=True),
    "hard": Option(bool, None, "classification EM (MAP assignments); none: the model's "
                   "default (K-means: hard)", nullable=True),
    "chunk_size": Option(int, None, "observations per chunk: memory stays at the data plus one "
                         "chunk; none: all at once", low=1, high=10**9, nullable=True),
}
VI = {
    "optimizer": Option(str, "lbfgs", "lbfgs (strong-Wolfe line search; the objective is "
                        "deterministic) or adam", choices=OPTIMIZERS),
    "lr": Option(float, None, "learning rate; none: 1.0 for L-BFGS, 0.05 for Adam", low=0.0,
                 open_low=True, nullable=True),
    "steps": Option(int, 500, "most optimiser steps", low=0, high=10**8),
    "tol": Option(float, 1e-10, "stop when the objective per observation changes by at most "
                  "tol for patience steps; none: run all steps", low=0.0, nullable=True),
    "patience": Option(int, None, "consecutive small changes needed; none: 1 for L-BFGS, 10 "
                       "for Adam", low=1, high=10**8, nullable=True),
    "posterior": Option(str, None, "point (maximum likelihood), map (AutoDelta: the MAP, "
                        "needs priors), normal or mvn (AutoNormal / AutoMultivariateNormal "
                        "posteriors, with adam); none: map when the model has priors, else "
                        "point", choices=("point", "map", "normal", "mvn"), nullable=True),
    "batch_size": Option(int, None, "mini-batch VI: rows per Adam step, the data plate's terms "
                         "scaled by n / batch (an unbiased gradient); steps then count "
                         "mini-batches and the objective is recorded per pass; none: all "
                         "the data every step", low=1, high=10**9, nullable=True),
    "seed": Option(int, 0, "mini-batch VI: the order of the mini-batches (a private "
                   "generator)", low=0, high=2**63 - 1),
}
INIT = {
    "method": Option(str, "kmeans++", "how starts are made: k-means++ centres (as "
                     "scikit-learn), k-means, random points, random responsibilities or "
                     "random parameters", choices=INIT_METHODS),
    "seed": Option(int, 0, "seed of a private generator (the global one is untouched)", low=0,
                   high=2**63 - 1),
    "restarts": Option(int, 1, "independent starts, fitted as one batch; the best is kept",
                       low=1, high=10_000),
}
ONLINE = {
    "batch_size": Option(int, 256, "observations (rows) per mini-batch", low=1,
                         high=10**9),
    "alpha": Option(float, 0.6, "step-size exponent: gamma_t = (t + t0)^-alpha, in (1/2, 1]",
                    low=0.5, open_low=True, high=1.0),
    "t0": Option(float, 2.0, "step-size offset: larger takes smaller early steps", low=0.0),
    "passes": Option(int, 1, "passes over the data", low=1, high=10**6),
    "polyak": Option(bool, False, "return the average of the second half's iterates"),
    "seed": Option(int, 0, "the order of the mini-batches (a private generator)", low=0,
                   high=2**63 - 1),
}
TABLES = {"em": EM, "vi": VI, "init": INIT, "online": ONLINE}


def check_all(table: dict[str, Option], values: dict) -> dict:
    """Every value of ``values`` checked against ``table`` (keys are the option names)."""
    return {name: table[name].check(value, name) for name, value in values.items()}


def describe(table: dict[str, Option]) -> list[str]:
    """Lines ``name  default  kind: help`` for ``emvi options``."""
    width = max(len(name) for name in table)
    return [f"{name.ljust(width)}  default {option.default!s:<10} {option.describe_kind()}: "
            f"{option.help}" for name, option in table.items()]
