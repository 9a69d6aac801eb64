"""The model contract shared by every latent-assignment model.

A model owns its parameter specs, its Pyro program (with the assignment site
marked for enumeration), simulation by running that program, initialisation
and the pieces of EM. It knows nothing about optimisers, files or plots.

The EM pieces come in four calls that the loop in ``inference.em`` drives:

- ``shift(data)``: a reference point fixed for a whole fit;
- ``prepare(data, shift)``: per-observation quantities computed once (cacheable);
- ``expect(prepared, params, hard)``: the E-step on one chunk -> :class:`EStep`,
  whose ``stats`` add across chunks;
- ``maximize(stats, params, shift)``: the constrained M-step from summed statistics (fixed
  parameters keep their values; the free ones maximise given them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import pyro.poutine as poutine
import torch
from torch.distributions import constraints

from .params import Params, ParamSpec
from .validation import InputError, InputTypeError, as_tensor, check_finite, check_int

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


class LatentModel:
    """Base class: validation, simulation, initialisation and whole-data E/M steps."""

    name: str = "model"
    #: which EM a fit uses unless told otherwise (K-means: hard)
    default_hard: bool = False
    #: the M-step this model's EM uses
    m_step_kind: str = "closed-form"

    def __init__(self, k: int, specs: dict[str, ParamSpec], fixed: Mapping | None = None):
        self.k = check_int(k, "k", low=1, high=100_000)
        fixed = dict(fixed or {})
        for name in fixed:
            if name not in specs:
                raise InputError(f"fixed: unknown parameter {name!r}; expected {list(specs)}")
        self.specs = {
            name: ParamSpec(s.shape, s.constraint, name in fixed or s.fixed, s.per_component, s.doc)
            for name, s in specs.items()
        }
        self.fixed = Params()
        self.fixed = self._check_values(fixed, "fixed", allow_missing=True)

    # -- the contract a concrete model fills in -------------------------------------
    def program(self, params: Params, data: torch.Tensor | None = None, n: int | None = None):
        """The Pyro generative program; ``data: (n, ...)`` observed, or ``n`` to simulate."""
        raise NotImplementedError

    def check_data(self, data, name: str = "data") -> torch.Tensor:
        raise NotImplementedError

    def features(self, data: torch.Tensor) -> torch.Tensor:
        """``(n, f)`` points for distance-based initialisation."""
        return data.reshape(data.shape[0], -1)

    def random_params(self, data: torch.Tensor, generator: torch.Generator) -> Params:
        raise NotImplementedError

    def canonical(self, values: dict) -> dict:
        return values

    def describe(self) -> str:
        return f"{self.name}(k={self.k})"

    def diagnose(self, data: torch.Tensor, params: Params) -> list[str]:
        """Plain-words notes on fitted parameters a user should know about (default: none)."""
        return []

    def plate_nesting(self, params: Params) -> int:
        """Plates in the program: the data plate, plus the restart plate for a batch."""
        return 1 + len(params.batch_shape(self.specs))

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
    def simulate(self, params, n: int, seed: int = 0, assignments=None) -> Simulation:
        """Draw ``n`` observations by running the Pyro program with ``params``.

        Args:
            params: true parameters (one set, no restart batch).
            n: number of observations.
            seed: seed of a private RNG stream (the global torch RNG is left as it was).
            assignments: ``None`` to sample them, ``"balanced"`` for n/k per
                component in blocks (as the seed examples), or ``(n,)`` labels.
        """
        params = self.check_params(params, "params")
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
                labels = torch.as_tensor(assignments, dtype=torch.long)
                if labels.shape != (n,) or bool(((labels < 0) | (labels >= self.k)).any()):
                    raise InputError(f"assignments: expected {n} labels in [0, {self.k})")
            program = poutine.condition(program, data={ASSIGNMENT: labels})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            trace = poutine.trace(program).get_trace(params, None, n)
        data = self.from_trace(trace).detach().to(torch.float64)
        return Simulation(data, trace.nodes[ASSIGNMENT]["value"].detach().long())

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

    def centers(self, prepared, responsibilities) -> Params:
        """Reference values for statistics when an M-step starts from responsibilities
        alone (default: none needed)."""
        return Params()
