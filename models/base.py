"""The model protocol: everything the fitting loops, initialisation, the comparison and
the reports ask of a model, declared once in :class:`LatentModel`.

A model owns its parameter specs, its Pyro program (with the assignment site
marked for enumeration), simulation by running that program and the pieces of
EM. It knows nothing about optimisers, files or plots. A new model type (a
mixture, an HMM, a program-only model) subclasses :class:`LatentModel` and
fills in the abstract methods; the others have defaults that suit row-wise data.

Data are whatever :meth:`LatentModel.check_data` returns (a ``(n, ...)`` tensor
for mixtures); the loops only cut it with :meth:`~LatentModel.split` and count it
with :meth:`~LatentModel.n_observations`. The EM pieces that ``inference.em``
drives:

- ``shift(data)``: a reference computed once from all the data (fixed for a fit);
- ``prepare(chunk, shift)``: what the E-step needs of a chunk (cacheable);
- ``expect(prepared, params, hard, marginal)`` -> :class:`EStep`, whose ``stats``
  add across chunks (and processes);
- ``maximize(stats, params, shift)``: the constrained M-step (fixed parameters keep
  their values; the free ones maximise given them).

A class that leaves any abstract method out cannot be built: Python's error, or,
for a class named in a config, one line listing what is missing
(:func:`missing_members`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import NamedTuple

import pyro.poutine as poutine
import torch
from torch.distributions import constraints

from .params import Params, ParamSpec
from .priors import log_prior
from .recipe import capture
from .validation import (
    InputError,
    InputTypeError,
    as_tensor,
    check_finite,
    check_int,
    check_k,
    check_observed_columns,
)

ASSIGNMENT = "assignment"
OBSERVATION = "obs"
EXP_FLOOR = 700.0


class EStep(NamedTuple):
    """What one E-step over a chunk of data gives.

    Attributes:
        stats: additive sufficient statistics (sum over the chunk's points).
        log_likelihood: ``(*batch,)`` marginal log-likelihood of the chunk (``None``
            when not asked for).
        objective: ``(*batch,)`` what the E-step's EM variant maximises (the
            marginal log-likelihood; for hard EM the classification log-likelihood).
        responsibilities: ``(*batch, n, k)`` posterior (or one-hot) assignments.
        scores: ``(*batch, n)`` each point's log joint under its MAP component.
    """

    stats: dict
    log_likelihood: torch.Tensor
    objective: torch.Tensor
    responsibilities: torch.Tensor
    scores: torch.Tensor


def posterior(joint: torch.Tensor, hard: bool, marginal: bool = True):
    """Responsibilities from log joints, in the E-step's components-by-points layout.

    Args:
        joint: ``(*batch, k, n)`` log p(x_n, z_n = j).
        hard: one-hot MAP assignments instead of posterior probabilities.
        marginal: in hard mode, also compute the marginal log-likelihood.

    Returns:
        ``(resp (*batch, k, n), log_likelihood (*batch,) or None, objective (*batch,),
        top (*batch, n))`` where ``top`` is each point's largest log joint.
    """
    if hard:
        top, labels = joint.max(-2, keepdim=True)  # (*B, 1, n); argmax over dim -2 is slow
        resp = torch.zeros_like(joint).scatter_(-2, labels, 1.0)
        objective = top.sum((-2, -1))
        log_lik = None
        if marginal:
            log_lik = (joint - top).clamp_min_(-EXP_FLOOR).exp_().sum(-2).log_().add_(
                top.squeeze(-2)).sum(-1)
    else:
        top = joint.amax(-2, keepdim=True)
        # exp of very negative numbers takes a slow path (subnormal results): ~20x slower;
        # below exp(-700) ~ 1e-304 nothing changes a responsibility or a log-likelihood
        resp = (joint - top).clamp_min_(-EXP_FLOOR).exp_()
        total = resp.sum(-2, keepdim=True)
        resp /= total
        objective = log_lik = total.log_().add_(top).sum((-2, -1))
    return resp, log_lik, objective, top.squeeze(-2)


class Simulation(NamedTuple):
    """Data drawn from a model's Pyro program: ``data: (n, ...)``, ``assignments: (n,)``."""

    data: torch.Tensor
    assignments: torch.Tensor


class LatentModel(ABC):
    """The protocol every model type implements (see the module docstring).

    Class attributes:
        name: the registered name (``emvi list``, configs).
        default_hard: which EM a fit uses unless told otherwise (K-means: hard).
        m_step_kind: ``closed-form`` or ``generic`` (a numerical M-step); reports say which.
        chunkable: whether the statistics add across chunks (a generic M-step needs all
            the data at once).
    """

    name: str = "model"
    default_hard: bool = False
    m_step_kind: str = "closed-form"
    chunkable: bool = True

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        capture(self, args, kwargs)  # how to build it again (saved fits)
        return self

    def __init__(self, k: int, specs: dict[str, ParamSpec], fixed: Mapping | None = None):
        self.k = check_int(k, "k", low=1, high=100_000)
        if fixed is not None and not isinstance(fixed, Mapping):
            raise InputTypeError(f"fixed: expected a table of parameter values, got "
                                 f"{fixed!r:.60}")
        fixed = self.canonical(dict(fixed or {}))  # aliases too (covariances -> scale_tril)
        for name in fixed:
            if name not in specs:
                raise InputError(f"fixed: unknown parameter {name!r}; expected {list(specs)}")
        self.specs = {
            name: dataclasses.replace(s, fixed=name in fixed or s.fixed)
            for name, s in specs.items()
        }
        self.fixed = Params()
        self.fixed = self._check_values(fixed, "fixed", allow_missing=True)

    # -- the contract: data and the generative program ----------------------------------
    @abstractmethod
    def check_data(self, data, name: str = "data"):
        """Validate user data (raise :class:`InputError` naming ``name``) and return it in
        the model's own form: a ``(n, *event)`` float64 tensor for row-wise models."""

    @abstractmethod
    def program(self, params: Params, data=None, n: int | None = None):
        """The Pyro generative program: observes ``data`` (checked form), or simulates ``n``
        observations when ``data`` is None. ``params`` may carry a restart batch
        ``(R, ...)`` when :meth:`plate_nesting` says the program has a restart plate."""

    @abstractmethod
    def random_params(self, data, generator: torch.Generator) -> Params:
        """Random but sensible free parameters near ``data`` (random starts, tests)."""

    # -- the contract: EM pieces -------------------------------------------------------
    @abstractmethod
    def shift(self, data):
        """A reference computed once from all of ``data`` and passed to every chunk's
        :meth:`prepare` and to :meth:`maximize` (``None`` when not needed)."""

    @abstractmethod
    def prepare(self, data, shift):
        """What the E-step needs of one chunk (``data`` as :meth:`split` cut it)."""

    @abstractmethod
    def expect(self, prepared, params: Params, hard: bool = False,
               marginal: bool = True) -> EStep:
        """The E-step on one chunk: statistics that add across chunks, the chunk's
        ``(*batch,)`` log-likelihood and objective, ``(*batch, n, k)`` responsibilities
        and ``(*batch, n)`` scores (each observation's MAP log joint; hard EM)."""

    @abstractmethod
    def summarize(self, prepared, responsibilities: torch.Tensor, params: Params) -> dict:
        """The statistics :meth:`expect` would give for ``responsibilities: (*batch, n, k)``
        (an M-step straight from responsibilities: initialisation)."""

    @abstractmethod
    def maximize(self, stats: dict, params: Params, shift=None) -> Params:
        """The constrained M-step from summed ``stats``: fixed parameters keep their values,
        the free ones maximise the expected complete-data log-likelihood given them."""

    # -- defaults that suit row-wise data -----------------------------------------------
    def split(self, data, size: int) -> list:
        """``data`` cut into chunks of at most ``size`` observations (rows; an HMM keeps
        sequences whole), in order."""
        return [data[i: i + size] for i in range(0, self.n_units(data), size)]

    def n_units(self, data) -> int:
        """How many indivisible pieces ``data`` has (rows; sequences for an HMM)."""
        return data.shape[0]

    def n_observations(self, data) -> int:
        """Observations in ``data``: the unit of the per-observation convergence rule,
        of BIC's ``log n`` and of responsibilities' first axis."""
        return data.shape[0]

    def check_fit_data(self, data, name: str = "data") -> None:
        """What fitting needs of checked ``data`` beyond :meth:`check_data`: at least ``k``
        observations, and no coordinate missing (NaN) in every row."""
        check_k(self.k, self.n_observations(data))
        if torch.is_tensor(data):
            check_observed_columns(data, name)

    def impute(self, data, params: Params, draws: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Missing entries (NaN) of ``data`` filled in: ``(n, ...)`` conditional expectations,
        or ``(draws, n, ...)`` draws from their conditional distribution. Default: models
        that take no missing values have nothing to fill in."""
        raise InputError(f"impute: {self.describe()} does not impute missing values")

    def features(self, data) -> torch.Tensor:
        """``(n_observations, f)`` points for distance-based initialisation."""
        return data.reshape(data.shape[0], -1)

    def centers(self, prepared, responsibilities) -> Params:
        """Reference values for statistics when an M-step starts from responsibilities
        alone (default: none needed)."""
        return Params()

    def empty_components(self, stats: dict) -> torch.Tensor:
        """``(*batch, k)`` components no observation is assigned to (hard EM relocates
        them); default: none."""
        counts = stats.get("counts")
        if counts is None:
            raise InputError(f"hard: {self.describe()} does not support hard (classification) EM")
        return torch.zeros_like(counts, dtype=torch.bool)

    def move_points(self, stats, restart, targets, indices, data, params, shift) -> None:
        """Hard EM: move observations ``indices`` to components ``targets`` in ``stats``
        (in place). Needed only by models whose :meth:`empty_components` can be true."""
        raise NotImplementedError(f"{type(self).__name__} cannot relocate observations")

    def plate_nesting(self, params: Params) -> int:
        """Plates in the program: the data plate, plus the restart plate for a batch."""
        return 1 + len(params.batch_shape(self.specs))

    def canonical(self, values: dict) -> dict:
        """Accept convenient aliases in user-given parameters (e.g. ``covariances``)."""
        return values

    def permute(self, params: Params, index: torch.Tensor) -> Params:
        """Components relabelled: new component ``j`` is old component ``index[j]`` (the
        leading axis of every per-component parameter; an HMM also permutes its
        transition matrix)."""
        return Params({name: value.index_select(self.specs[name].component_axis % value.dim(),
                                                index)
                       if self.specs[name].per_component else value
                       for name, value in params.items()})

    def pyro_assignments(self, values: dict, data) -> torch.Tensor:
        """The assignments among Pyro's sample sites, in the layout of responsibilities:
        ``values`` maps site names to values (``infer_discrete``: gives ``(*batch, n)``)
        or to marginal logits (``compute_marginals``: gives ``(*batch, n, k)``)."""
        return values[ASSIGNMENT]

    def describe(self) -> str:
        """A short description for reports, e.g. ``mixture(k=3, gaussian(dim=2, ...))``."""
        return f"{self.name}(k={self.k})"

    def diagnose(self, data, params: Params) -> list[str]:
        """Plain-words notes on fitted parameters a user should know about (default: none)."""
        return []

    #: the model's priors (empty: maximum likelihood); see models/priors.py
    prior: dict = {}

    def prior_sites(self) -> list:
        """The ``pyro.sample`` globals of the program under the model's priors, in order
        (``PriorSite`` objects); empty without priors."""
        return []

    def log_prior(self, params: Params):
        """``(*batch,)`` log prior density of ``params`` (0 without priors): EM maximises the
        log-likelihood plus this; VI's program samples the same sites."""
        return log_prior(self.prior_sites(), params)

    # -- parameters ----------------------------------------------------------------
    def params(self, **values) -> Params:
        """Validated parameters from plain numbers, e.g. ``model.params(probs=[0.6, 0.2])``."""
        return self.check_params(values, "params")

    def check_params(self, values, name: str = "params") -> Params:
        """Validate a full parameter set (fixed values may be left out)."""
        return self._check_values(values, name, allow_missing=False)

    def _check_values(self, values, name: str, allow_missing: bool) -> Params:
        if not isinstance(values, Mapping):
            raise InputTypeError(f"{name}: expected a mapping of parameter names to values, "
                            f"got {type(values).__name__}")
        values = self.canonical(dict(values))
        for key in values:
            if key not in self.specs:
                raise InputError(f"{name}: unknown parameter {key!r}; expected {list(self.specs)}")
        out, batch = Params(), None
        for key, spec in self.specs.items():
            if key not in values:
                if key in self.fixed:
                    out[key] = self.fixed[key]
                    continue
                if allow_missing:
                    continue
                raise InputError(f"{name}: missing parameter {key!r}")
            value = self._check_value(values[key], spec, f"{name}.{key}")
            if spec.fixed and key in self.fixed and not torch.allclose(value, self.fixed[key]):
                raise InputError(f"{name}.{key}: fixed by the model at {self.fixed[key].tolist()}")
            extra = tuple(value.shape[: value.dim() - len(spec.shape)])
            if batch is not None and extra and batch and extra != batch:
                raise InputError(f"{name}.{key}: restart batch {extra} differs from {batch}")
            batch = extra or batch
            out[key] = value
        if batch:  # broadcast unbatched (e.g. fixed) values over the restart batch
            for key, spec in self.specs.items():
                if key in out and out[key].dim() == len(spec.shape):
                    out[key] = out[key].expand(*batch, *spec.shape)
        return out

    @staticmethod
    def _check_value(value, spec: ParamSpec, name: str) -> torch.Tensor:
        tensor = as_tensor(value, name)
        if spec.shape and spec.shape[-1] == 1 and tuple(tensor.shape[-len(spec.shape) + 1 :]) == (
            spec.shape[:-1]
        ) and tensor.dim() == len(spec.shape) - 1:
            tensor = tensor.unsqueeze(-1)  # dim = 1 convenience: locs [1., 2.] -> [[1.], [2.]]
        rank = len(spec.shape)
        if tuple(tensor.shape[tensor.dim() - rank :]) != spec.shape or tensor.dim() > rank + 1:
            raise InputError(f"{name}: expected shape {spec.shape} (or (restarts, *{spec.shape})), "
                             f"got {tuple(tensor.shape)}")
        check_finite(tensor, name)
        constraint = spec.constraint
        if constraint is constraints.simplex:
            total = tensor.sum(-1, keepdim=True)
            if bool((tensor < 0).any()) or bool(((total - 1).abs() > 1e-6).any()):
                raise InputError(f"{name}: expected non-negative weights summing to 1, "
                                 f"got {tensor.tolist()}")
            return tensor / total
        if constraint is constraints.lower_cholesky:
            if not bool((tensor == tensor.tril()).all()):
                raise InputError(f"{name}: expected lower-triangular Cholesky factors")
            if not bool((torch.diagonal(tensor, 0, -2, -1) > 0).all()):
                raise InputError(f"{name}: expected a positive diagonal (positive definite)")
            return tensor
        if not bool(constraint.check(tensor).all()):
            what = {constraints.positive: "positive values",
                    constraints.unit_interval: "probabilities in [0, 1]"}.get(constraint,
                                                                            str(constraint))
            raise InputError(f"{name}: expected {what}, got {tensor.tolist()}")
        return tensor

    # -- simulation ----------------------------------------------------------------
    def simulate(self, params, n: int, seed: int = 0, assignments=None,
                 device=None) -> Simulation:
        """Draw ``n`` observations by running the Pyro program with ``params``.

        Args:
            params: true parameters (one set, no restart batch).
            n: number of observations.
            seed: seed of a private RNG stream (the global torch RNG is left as it was).
            assignments: ``None`` to sample them, ``"balanced"`` for n/k per
                component in blocks (as the seed examples), or ``(n,)`` labels.
            device: where the data and assignments are returned (``cpu``, ``cuda``,
                ``cuda:N``); drawn on the CPU, so every device gets the same numbers.
        """
        from .device import resolve

        where = None if device is None else resolve(device)
        params = self.check_params(params, "params").map(lambda t: t.cpu())  # CPU draws
        if params.batch_shape(self.specs):
            raise InputError("params: expected one parameter set, got a restart batch")
        n = check_int(n, "n", low=1)
        seed = check_int(seed, "seed", low=0)
        program = self.program
        if assignments is not None:
            if isinstance(assignments, str):
                if assignments != "balanced":
                    raise InputError(f"assignments: expected 'balanced' or labels, "
                                     f"got {assignments!r}")
                labels = torch.arange(n) * self.k // n
            else:
                labels = torch.as_tensor(assignments, dtype=torch.long).cpu()
                if labels.shape != (n,) or bool(((labels < 0) | (labels >= self.k)).any()):
                    raise InputError(f"assignments: expected {n} labels in [0, {self.k})")
            program = poutine.condition(program, data={ASSIGNMENT: labels})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            trace = poutine.trace(program).get_trace(params, None, n)
        data = self.from_trace(trace).detach().to(torch.float64)
        labels = trace.nodes[ASSIGNMENT]["value"].detach().long()
        if where is not None:
            data, labels = data.to(where), labels.to(where)
        return Simulation(data, labels)

    def from_trace(self, trace) -> torch.Tensor:
        """The simulated data rows in a trace of the program (default: the observations)."""
        return trace.nodes[OBSERVATION]["value"]

    # -- whole-data E and M steps ----------------------------------------------------
    def e_step(self, data, params, hard: bool = False):
        """Responsibilities ``(*batch, n, k)`` and log-likelihood ``(*batch,)`` on all data."""
        data = self.check_data(data)
        params = self.check_params(params)
        step = self.expect(self.prepare(data, self.shift(data)), params, hard)
        return step.responsibilities, step.log_likelihood

    def log_joint(self, data, params) -> torch.Tensor:
        """``log p(x_n, z_n = j | params)``: ``(*batch, n, k)``."""
        data = self.check_data(data)
        params = self.check_params(params)
        return self.joint(self.prepare(data, self.shift(data)), params)

    def log_likelihood(self, data, params) -> torch.Tensor:
        """``log p(data | params)``: ``(*batch,)``."""
        return self.e_step(data, params)[1]

    def m_step(self, data, responsibilities, params=None) -> Params:
        """Weighted maximum likelihood given ``responsibilities: (*batch, n, k)``.

        ``params`` supplies fixed values (default: the model's); statistics formed
        around current values (the Gaussian's means) use :meth:`centers` of the
        responsibilities where ``params`` has none, which makes this a two-pass M-step.
        """
        data = self.check_data(data)
        params = Params(self.fixed if params is None else self.check_params(params))
        shift = self.shift(data)
        prepared = self.prepare(data, shift)
        for name, value in self.centers(prepared, responsibilities).items():
            params.setdefault(name, value)
        return self.maximize(self.summarize(prepared, responsibilities, params), params, shift)


def missing_members(cls) -> list[str]:
    """The parts of the protocol a model class (or a family) does not define yet."""
    from .families.base import Family

    if isinstance(cls, type) and issubclass(cls, Family):
        return cls.missing_methods()
    return sorted(getattr(cls, "__abstractmethods__", ()))
