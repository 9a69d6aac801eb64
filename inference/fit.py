"""One result type for both fitting paths, with scikit-learn's conveniences on top."""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch.distributions import constraints

from ..models.params import Params
from ..models.validation import check_int


@contextmanager
def warnings_as_notes(notes: list):
    """Collect warnings raised inside the block into ``notes`` (each distinct one once)
    instead of printing them; NaN warnings are reported by the fits themselves."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for item in caught:
        text = f"warning during the fit: {item.category.__name__}: {item.message}"
        if "Encountered NaN" not in str(item.message) and text not in notes:
            notes.append(text)


class Progress(NamedTuple):
    """What a fitting loop tells its callback after each iteration or step."""

    method: str
    iteration: int
    max_iterations: int
    objective: float
    seconds: float


@dataclass(repr=False)
class Fit:
    """The outcome of ``fit_em`` or ``fit_vi``.

    Attributes:
        model: the model that was fitted.
        method: ``em``, ``hard-em``, ``vi-adam`` or ``vi-lbfgs``.
        params: final parameters of the best restart (no batch dimension).
        log_likelihood: marginal log-likelihood of the data at ``params``.
        objective: ``(T,)`` what the method maximised, per iteration (index 0 = init).
        log_likelihood_trace: ``(T,)`` marginal log-likelihood per iteration.
        seconds: ``(T,)`` wall-clock seconds since the fit started.
        iterations: EM iterations (M-steps) or optimiser steps the best restart took.
        converged: whether the best restart met the tolerance.
        responsibilities: ``(n, k)`` posterior (hard EM: one-hot) assignments of the
            training data at ``params``; computed on first use, chunk by chunk, when the
            fit did not keep them (``kept_responsibilities``): a chunked fit keeps its
            memory at the data plus one chunk.
        param_trace: parameters per iteration (best restart), if recorded.
        restart_log_likelihoods: ``(R,)`` final marginal log-likelihood of every restart.
        restart_objectives: ``(R,)`` final objective of every restart (what chose the
            best: for hard EM the classification log-likelihood).
        restart_converged: whether each restart met the tolerance.
        best_restart: index of the restart kept.
        m_step: ``closed-form``, ``generic`` (numerical) or ``none`` (VI).
        notes: anything the user should know (promotions, collapsed components,
            no convergence, warnings raised during the fit).
        events: what happened at given iterations, e.g. an empty component relocated
            (``{"iteration": t, "event": ..., ...}``); such a step may lower the objective.
    """

    model: object = field(repr=False)
    method: str
    params: Params
    log_likelihood: float
    objective: torch.Tensor
    log_likelihood_trace: torch.Tensor
    seconds: torch.Tensor
    iterations: int
    converged: bool
    kept_responsibilities: InitVar[torch.Tensor | None] = None
    data: torch.Tensor | None = field(default=None, repr=False)
    chunk_size: int | None = field(default=None, repr=False)
    hard: bool = False
    param_trace: list | None = field(default=None, repr=False)
    restart_log_likelihoods: torch.Tensor | None = None
    restart_objectives: torch.Tensor | None = None
    restart_converged: list | None = None
    best_restart: int = 0
    m_step: str = "closed-form"
    notes: list = field(default_factory=list)
    events: list = field(default_factory=list)
    #: a VI posterior's ``{parameter: (mean, sd)}`` (``posterior="normal"`` or ``"mvn"``)
    posterior: dict | None = None

    def __post_init__(self, kept_responsibilities):
        self._responsibilities = kept_responsibilities

    @property
    def responsibilities(self) -> torch.Tensor:
        """``(n, k)`` at ``params`` on the training data (computed on first use)."""
        if self._responsibilities is None and self.data is not None:
            self._responsibilities = self._training_responsibilities()
        return self._responsibilities

    def _training_responsibilities(self) -> torch.Tensor:
        """``(n, k)`` at ``params`` on the training data, chunk by chunk into one output."""
        data, model = self.data, self.model
        out, at = None, 0
        for piece in model.split(data, self.chunk_size or model.n_units(data)):
            resp = model.e_step(piece, self.params, hard=self.hard)[0]
            if out is None:
                out = resp.new_empty(model.n_observations(data), resp.shape[-1])
            out[at: at + resp.shape[0]] = resp
            at += resp.shape[0]
        return out

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in self.params.items())
        state = "converged" if self.converged else "not converged"
        notes = f"; {len(self.notes)} note(s)" if self.notes else ""
        return (f"Fit({self.method}, {self.model.describe()}: {self.iterations} iterations, "
                f"{state}, log-likelihood {self.log_likelihood:.6g}; params: {shapes}{notes})")

    def save(self, path) -> Path:
        """Keep this fit in a file (tensors and JSON only); :func:`emvi.load` reads it."""
        from .persist import save_fit

        return save_fit(self, path)

    @property
    def assignments(self) -> torch.Tensor:
        """``(n,)`` MAP component of each training point."""
        return self.responsibilities.argmax(-1)

    @property
    def elapsed(self) -> float:
        return float(self.seconds[-1]) if len(self.seconds) else 0.0

    # -- scikit-learn style conveniences on new data ------------------------------------
    def predict_proba(self, data) -> torch.Tensor:
        """``(n, k)`` posterior probabilities of each component."""
        return self.model.e_step(data, self.params)[0]

    def predict(self, data) -> torch.Tensor:
        """``(n,)`` most probable component."""
        return self.predict_proba(data).argmax(-1)

    def score_samples(self, data) -> torch.Tensor:
        """``(n,)`` log density of each observation."""
        return torch.logsumexp(self.model.log_joint(data, self.params), -1)

    def score(self, data) -> float:
        """Mean log density per observation (as scikit-learn's ``score``)."""
        return float(self.score_samples(data).mean())

    def impute(self, data, draws: int | None = None, seed: int = 0) -> torch.Tensor:
        """``data`` with its missing entries (NaN) filled in at ``params``.

        Args:
            draws: ``None``: ``(n, ...)`` conditional expectations given each row's
                observed entries (mixture-weighted); ``m``: ``(m, n, ...)`` multiple
                imputations drawn from the conditional distribution.
            seed: seed of the draws' private random stream.
        """
        if draws is not None:
            draws = check_int(draws, "draws", low=1, high=100_000)
        generator = torch.Generator().manual_seed(check_int(seed, "seed", low=0, high=2**63 - 1))
        return self.model.impute(data, self.params, draws, generator)

    def sample(self, n: int, seed: int = 0):
        """``(data, assignments)`` drawn from the fitted model's Pyro program."""
        return self.model.simulate(self.params, n, seed=seed)

    # -- how sure the fit is (inference.uncertainty) ------------------------------------
    def standard_errors(self, method: str = "observed", **options):
        """Standard errors of the free parameters, shaped as they are; ``inf`` where none
        exists (``.unavailable``, ``.notes`` say where and why). ``method``: ``observed``
        (observed information), ``louis`` or ``bootstrap`` (options: ``replicates``,
        ``kind``, ``seed``, ...); see :mod:`inference.uncertainty`."""
        from .uncertainty import uncertainty

        return uncertainty(self, method, **options).standard_errors

    def confidence_intervals(self, level: float = 0.95, method: str = "observed", **options):
        """``lower, upper`` bounds of each free parameter at ``level`` (Wald, clipped to the
        support; percentile for the bootstrap); see :mod:`inference.uncertainty`."""
        from .uncertainty import uncertainty

        return uncertainty(self, method, **options).intervals(level)

    def n_parameters(self) -> int:
        """Number of free scalar parameters (simplex and Cholesky constraints counted)."""
        return free_parameter_count(self.model)

    def bic(self, data) -> float:
        """Bayesian information criterion on ``data`` (lower is better)."""
        n = self.model.n_observations(self.model.check_data(data))
        return -2 * self.score(data) * n + self.n_parameters() * math.log(n)

    def aic(self, data) -> float:
        """Akaike information criterion on ``data`` (lower is better)."""
        n = self.model.n_observations(self.model.check_data(data))
        return -2 * self.score(data) * n + 2 * self.n_parameters()


def free_parameter_count(model) -> int:
    """Free scalars in a model's specs, respecting simplex and Cholesky constraints."""
    total = 0
    for spec in model.specs.values():
        if spec.fixed:
            continue
        size = math.prod(spec.shape)
        if spec.constraint is constraints.simplex:
            size -= size // spec.shape[-1]
        elif spec.constraint is constraints.lower_cholesky:
            d = spec.shape[-1]
            size = size // (d * d) * d * (d + 1) // 2
        total += size
    return total
