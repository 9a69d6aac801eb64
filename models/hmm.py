"""A hidden Markov model over any component family: two Pyro programs and Baum–Welch.

    z_0 ~ Categorical(initial)
    z_t | z_{t-1} = i ~ Categorical(transition_i)      (enumerated: summed out exactly)
    x_t | z_t = j ~ family(theta_j)

Data are :class:`~models.sequences.Sequences` (many sequences of different lengths).
The reference program is a plate over sequences and ``pyro.markov`` over time, as
Pyro's HMM examples; a padded step keeps its transition (a row sums to one, so the
enumerated state adds nothing) and masks its observation. The second program, for
fast VI on long sequences, is one ``DiscreteHMM`` per sequence: it applies a transition
*before* the first observation, so its first step's transition has every row equal to
``initial``.

EM (Baum–Welch): forward–backward (:mod:`models.hmm_numerics`) gives state
posteriors, expected transition counts and the log-likelihood; the emission
statistics are the family's own, weighted by the posteriors, so the family's
closed-form M-step is reused. Hard EM decodes with Viterbi (Viterbi training).
Responsibilities are per step: ``(N, k)`` over the valid steps, sequence after sequence.

Missing entries (NaN) are for families that take them (``Family.supports_missing``): the
family's masked log densities enter forward–backward and its masked expected statistics
are weighted by the state posteriors; both programs observe the family's NaN-masked
distributions (placeholders before any arithmetic, so no NaN reaches a gradient). A step
with every entry missing has emission density one: it stays in its sequence and moves
the chain (unlike a mixture's empty row, which would be dropped).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import NamedTuple

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.ops.indexing import Vindex
from torch.distributions import constraints

from .base import ASSIGNMENT, OBSERVATION, EStep, LatentModel, Simulation
from .families.base import Family
from .hmm_numerics import forward_backward, pair_counts, viterbi
from .params import Params, ParamSpec
from .priors import PriorSite, check_prior, simplex_site
from .sequences import Sequences, as_sequences, check_lengths
from .validation import (
    InputError,
    InputTypeError,
    check_int,
    check_observed_columns,
    empty_rows_allowed,
)

EPS = torch.finfo(torch.float64).eps
TINY = torch.finfo(torch.float64).tiny
PROGRAMS = ("markov", "discrete_hmm")
#: pseudo-count added to every initial and transition count of an initial labelling
PSEUDO_COUNT = 1.0
SOFTEN = 0.1


class HMMPrepared(NamedTuple):
    """A chunk of sequences prepared for the E-step.

    Attributes:
        emissions: the family's prepared valid steps (``N`` of them).
        mask: ``(B, T)`` valid steps, ``None`` when every sequence has ``T`` steps.
        positions: ``(N,)`` valid steps' places in the ``B * T`` grid (``None`` likewise).
        shape: ``(B, T)``.
    """

    emissions: object
    mask: torch.Tensor | None
    positions: torch.Tensor | None
    shape: tuple


class HMM(LatentModel):
    """A hidden Markov model with ``k`` states emitting from one family.

    Args:
        family: the emission family, e.g. ``Gaussian(dim=1, covariance="diag")``.
        k: number of states.
        fixed: parameters held fixed, e.g. ``{"transition": [[0.95, 0.05], [0.1, 0.9]]}``.
        program: the Pyro program VI uses: ``markov`` (``pyro.markov`` over time with the
            state enumerated at every step: the reference) or ``discrete_hmm`` (one
            vectorised ``DiscreteHMM`` per sequence: fast on long sequences).
    """

    name = "hmm"

    def __init__(self, family: Family, k: int, fixed: dict | None = None,
                 program: str = "markov", prior: dict | None = None):
        if not isinstance(family, Family):
            raise InputTypeError(f"family: expected a Family, got {type(family).__name__}")
        missing = family.missing_methods()
        if missing:
            raise InputError(f"family: {type(family).__name__} does not define "
                             f"{', '.join(missing)}")
        if type(family).inputs is not Family.inputs:
            raise InputError(f"family: {type(family).__name__} takes covariates, which HMM "
                             "emissions do not support")
        if program not in PROGRAMS:
            raise InputError(f"program: expected one of {list(PROGRAMS)}, got {program!r}")
        self.family, self.program_kind = family, program
        k = check_int(k, "k", low=1, high=100_000)
        specs = {
            "initial": ParamSpec((k,), constraints.simplex, per_component=False,
                                 doc="initial state probabilities"),
            "transition": ParamSpec((k, k), constraints.simplex, per_component=False,
                                    doc="transition probabilities (row: from)"),
        }
        specs.update(family.specs(k))
        super().__init__(k, specs, fixed)
        allowed = {"initial": "Dirichlet(concentration) on the initial probabilities",
                   "transition": "Dirichlet(concentration) on each row of the transition",
                   **family.prior_keys()}
        self.prior = check_prior(prior, allowed, self.specs)
        self._sites = self._prior_sites()

    def _prior_sites(self) -> list[PriorSite]:
        k = self.k
        return (simplex_site("initial", self.prior, k)
                + simplex_site("transition", self.prior, k, rows=k)
                + self.family.prior_sites(self.prior, k))

    def prior_sites(self) -> list[PriorSite]:
        return self._sites

    def describe(self) -> str:
        fixed, prior = ", ".join(self.fixed), ", ".join(self.prior)
        return f"{self.name}(k={self.k}, {self.family.describe()}, {self.program_kind}" + (
            f", fixed: {fixed}" if fixed else "") + (f", prior: {prior}" if prior else "") + ")"

    # -- data ---------------------------------------------------------------------------
    def check_data(self, data, name="data") -> Sequences:
        """Sequences from :class:`Sequences`, a list of ``(T_i, ...)`` arrays or one
        ``(T, ...)`` array (one sequence); every step checked by the family."""
        return as_sequences(data, name, self._check_steps)

    def _check_steps(self, steps, name):
        """One sequence's steps (or all, pooled), checked by the family.

        Missing entries (NaN) are for families that take them (``supports_missing``): the
        emission density is the observed entries' marginal, and a step with every entry
        missing emits with probability one but still moves the chain (it is kept, unlike
        a mixture's empty row). Other families refuse them, naming the steps.
        """
        if self.family.supports_missing:
            with empty_rows_allowed():
                return self.family.check_data(steps, name)
        try:
            values = np.asarray(steps, dtype=np.float64)
        except (TypeError, ValueError, RuntimeError):
            values = None  # the family says what is wrong with them
        if values is not None and values.ndim > 0 and bool(np.isnan(values).any()):
            where = np.flatnonzero(np.isnan(values.reshape(len(values), -1)).any(1))
            shown = ", ".join(str(t) for t in where[:8]) + (
                f" (and {len(where) - 8} more)" if len(where) > 8 else "")
            raise InputError(f"{name}: missing values (NaN) at step{'s' if len(where) > 1 else ''}"
                             f" {shown}; {self.family.describe()} emissions cannot take "
                             "missing values: drop or impute them")
        return self.family.check_data(steps, name)

    def check_fit_data(self, data: Sequences, name: str = "data") -> None:
        """At least ``k`` steps, and no coordinate missing (NaN) at every step."""
        super().check_fit_data(data, name)
        check_observed_columns(data.flat(), name)

    def split(self, data: Sequences, size: int) -> list[Sequences]:
        """Chunks of at most ``size`` whole sequences."""
        return [data.select(i, i + size) for i in range(0, len(data), size)]

    def n_units(self, data: Sequences) -> int:
        return len(data)

    def n_observations(self, data: Sequences) -> int:
        return data.n_observations

    def features(self, data: Sequences) -> torch.Tensor:
        """``(N, f)``: the emissions of every valid step, pooled."""
        return self.family.features(data.flat())

    # -- the Pyro programs --------------------------------------------------------------
    def program(self, params, data=None, n=None):
        """The Pyro program: observes ``data`` (:class:`Sequences`), or simulates sequences
        of lengths ``n`` (an int or a list) when ``data`` is None (always the ``markov``
        program, which samples the states)."""
        if data is None or self.program_kind == "markov":
            return self.markov_program(params, data, n)
        return self.discrete_hmm_program(params, data)

    def markov_program(self, params, data: Sequences | None = None, lengths=None):
        """A plate over sequences, ``pyro.markov`` over time, the state enumerated."""
        if data is not None:
            lengths, steps, mask = data.lengths, data.max_length, data.mask
        else:
            lengths = torch.as_tensor(check_lengths(lengths, "n"))
            steps = int(lengths.max())
            mask = torch.arange(steps) < lengths.unsqueeze(-1)
        initial, transition = params["initial"], params["transition"]
        values = []
        with ExitStack() as plates:
            if initial.dim() > 1:  # a restart batch sits on its own plate
                plates.enter_context(pyro.plate("restarts", initial.shape[0], dim=-2))
                initial, transition = initial.unsqueeze(-2), transition.unsqueeze(-3)
            plates.enter_context(pyro.plate("sequences", len(lengths), dim=-1))
            stay = torch.eye(self.k, dtype=transition.dtype)
            z = None
            for t in pyro.markov(range(steps)):
                # a padded step stays where it is (identity transition): it changes neither
                # the likelihood nor the MAP path (masking the state instead would sum it
                # out: log k per padded step)
                if t == 0:
                    probs = initial
                else:
                    valid = mask[:, t].reshape(-1, 1, 1)
                    step = transition if bool(valid.all()) else torch.where(valid, transition,
                                                                            stay)
                    probs = Vindex(step)[..., z, :]
                z = pyro.sample(f"{ASSIGNMENT}_{t}", dist.Categorical(probs),
                                infer={"enumerate": "parallel"})
                with poutine.mask(mask=mask[:, t]):
                    x = pyro.sample(f"{OBSERVATION}_{t}", self.family.distribution(params, z),
                                    obs=None if data is None else data.values[:, t])
                values.append((z, x))
        return values

    def discrete_hmm_program(self, params, data: Sequences):
        """One ``DiscreteHMM`` per sequence, vectorised over time.

        ``DiscreteHMM`` applies a transition before its first observation, so step 0's
        transition has every row equal to ``initial``; padded steps stay where they are
        (identity transition) and their observations are masked (zero log density).
        """
        initial, transition = params["initial"], params["transition"]
        k, steps = self.k, data.max_length
        batch = tuple(initial.shape[:-1])
        first = initial.log().unsqueeze(-2).expand(*batch, k, k).unsqueeze(-3)
        later = transition.log().unsqueeze(-3).expand(*batch, steps - 1, k, k)
        logits = torch.cat([first, later], -3)  # (*R, T, k, k)
        if batch:
            logits = logits.unsqueeze(-4)  # (R, 1, T, k, k): the sequences' plate
        if not data.equal:  # (*R, B, T, k, k)
            stay = torch.eye(k, dtype=logits.dtype).log()
            logits = torch.where(data.mask.reshape(-1, steps, 1, 1), logits, stay)
        emission = Params(params)
        with ExitStack() as plates:
            if batch:
                plates.enter_context(pyro.plate("restarts", batch[0], dim=-2))
                for name in self.family.specs(self.k):  # (R, 1, 1, ...) for (R, B, T, k)
                    value = emission[name]
                    emission[name] = value.reshape(value.shape[0], 1, 1, *value.shape[1:])
            plates.enter_context(pyro.plate("sequences", len(data), dim=-1))
            states = self.family.distribution(emission, torch.arange(k))
            observation = states.mask(data.mask.unsqueeze(-1))
            hmm = dist.DiscreteHMM(torch.zeros(k, dtype=logits.dtype), logits, observation)
            # the states are summed out inside DiscreteHMM: say so, or TraceEnum_ELBO warns
            # that it found nothing to enumerate
            pyro.sample(OBSERVATION, hmm, obs=data.values, infer={"enumerate": "parallel"})

    def plate_nesting(self, params) -> int:
        return 1 + len(params.batch_shape(self.specs))

    def pyro_assignments(self, values: dict, data: Sequences) -> torch.Tensor:
        """The states ``(*batch, N)`` (or marginal logits ``(*batch, N, k)``) of Pyro's
        per-step sites, over the valid steps."""
        if self.program_kind != "markov":
            raise InputError("program: Pyro's per-step states need the 'markov' program "
                             "(DiscreteHMM sums the states out internally)")
        steps = [values[f"{ASSIGNMENT}_{t}"] for t in range(data.max_length)]
        logits = steps[0].is_floating_point()
        if logits:  # marginal logits (*batch, B, k)
            grid = torch.stack(steps, -2)
        else:  # values (*batch, B) (or broadcastable to it)
            grid = torch.stack([s.expand(*s.shape[:-1], len(data)) for s in steps], -1)
            grid = grid.unsqueeze(-1)
        batch = grid.shape[:-3]
        flat = self._flat(grid.reshape(-1, *grid.shape[-3:]), data)
        flat = flat.reshape(*batch, *flat.shape[-2:])
        return flat if logits else flat.squeeze(-1)

    # -- parameters -------------------------------------------------------------------
    def canonical(self, values):
        return self.family.canonical(values)

    def check_params(self, values, name="params"):
        params = super().check_params(values, name)
        self.family.check_params(params, name)
        return params

    def permute(self, params, index):
        """States relabelled: ``initial[index]``, ``transition[index][:, index]`` and the
        family's per-state parameters."""
        out = Params()
        for name, value in params.items():
            spec = self.specs[name]
            if name == "initial":
                out[name] = value.index_select(-1, index)
            elif name == "transition":
                out[name] = value.index_select(-2, index).index_select(-1, index)
            elif spec.per_component:
                out[name] = value.index_select(value.dim() - len(spec.shape), index)
            else:
                out[name] = value
        return out

    def random_params(self, data, generator):
        """Random initial probabilities, transitions near the diagonal and the family's
        random emissions near the data."""
        k, dtype = self.k, torch.float64
        start = 1 + torch.rand(k, generator=generator, dtype=dtype)
        stay = 0.5 + 0.4 * torch.rand(k, generator=generator, dtype=dtype)
        move = 0.5 + torch.rand(k, k, generator=generator, dtype=dtype)
        move = move * (1 - torch.eye(k, dtype=dtype))
        move = move / move.sum(-1, keepdim=True).clamp_min(EPS) * (1 - stay).unsqueeze(-1)
        transition = move + torch.diag(stay) if k > 1 else torch.ones(1, 1, dtype=dtype)
        values = {"initial": start / start.sum(), "transition": transition,
                  **self.family.random_params(k, data.flat(), generator)}
        return Params({name: v for name, v in values.items() if name not in self.fixed})

    def diagnose(self, data, params):
        return self.family.diagnose(data.flat(), params, frozenset(self.fixed))

    # -- simulation -----------------------------------------------------------------
    def simulate(self, params, n=None, seed: int = 0, assignments=None,
                 lengths=None) -> Simulation:
        """Sequences drawn by running the ``markov`` program with ``params``.

        Args:
            params: true parameters (one set).
            n: one sequence of ``n`` steps (when ``lengths`` is not given).
            seed: seed of a private RNG stream (the global torch RNG is left as it was).
            assignments: not supported (states follow the Markov chain); must be ``None``.
            lengths: the length of every sequence.

        Returns:
            ``Simulation(data: Sequences, assignments: (N,) states of the valid steps)``.
        """
        params = self.check_params(params, "params")
        if params.batch_shape(self.specs):
            raise InputError("params: expected one parameter set, got a restart batch")
        if assignments is not None:
            raise InputError("assignments: an HMM's states follow its Markov chain; "
                             "expected None")
        if lengths is None:
            if n is None:
                raise InputError("lengths: expected the sequence lengths (or n for one "
                                 "sequence)")
            lengths = [check_int(n, "n", low=1)]
        lengths = torch.as_tensor(check_lengths(lengths))
        seed = check_int(seed, "seed", low=0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            steps = poutine.trace(self.markov_program).get_trace(params, None, lengths)
            steps = steps.nodes["_RETURN"]["value"]
        states = torch.stack([z for z, _ in steps], 1).long()
        values = torch.stack([x for _, x in steps], 1).detach().to(torch.float64)
        data = Sequences(values, lengths)
        return Simulation(data, states[data.mask])

    # -- EM pieces ---------------------------------------------------------------------
    def shift(self, data: Sequences):
        return self.family.shift(data.flat())

    def prepare(self, data: Sequences, shift) -> HMMPrepared:
        ragged = not data.equal
        return HMMPrepared(self.family.prepare(data.flat(), shift),
                           data.mask if ragged else None,
                           data.positions() if ragged else None, (len(data), data.max_length))

    def _grid(self, flat: torch.Tensor, prepared: HMMPrepared) -> torch.Tensor:
        """Per-step ``(R, N, c)`` on the padded grid ``(R, B, T, c)`` (zeros when padded)."""
        B, T = prepared.shape
        if prepared.positions is None:
            return flat.reshape(flat.shape[0], B, T, flat.shape[-1])
        out = flat.new_zeros(flat.shape[0], B * T, flat.shape[-1])
        out.index_copy_(1, prepared.positions, flat)
        return out.reshape(flat.shape[0], B, T, flat.shape[-1])

    def _flat(self, grid: torch.Tensor, data) -> torch.Tensor:
        """``(R, B, T, c)`` on the grid -> ``(R, N, c)`` over the valid steps."""
        positions = data.positions if isinstance(data, HMMPrepared) else (
            None if data.equal else data.positions())
        flat = grid.reshape(grid.shape[0], -1, grid.shape[-1])
        return flat if positions is None else flat.index_select(1, positions)

    def _log_emissions(self, prepared: HMMPrepared, params) -> torch.Tensor:
        """``(R, B, T, k)`` emission log densities (0 at padded steps)."""
        dens = self.family.log_densities(prepared.emissions, params)  # (*R, k, N)
        return self._grid(dens.reshape(-1, self.k, dens.shape[-1]).mT, prepared)

    @staticmethod
    def _chain(params):
        """``initial (R, k)`` and ``transition (R, k, k)`` (R = 1 when unbatched)."""
        k = params["initial"].shape[-1]
        return params["initial"].reshape(-1, k), params["transition"].reshape(-1, k, k)

    def expect(self, prepared: HMMPrepared, params, hard=False, marginal=True) -> EStep:
        """Forward–backward (or Viterbi, for hard EM) on a chunk of sequences."""
        batched = bool(params.batch_shape(self.specs))
        initial, transition = self._chain(params)
        log_e = self._log_emissions(prepared, params)
        if hard:
            paths, scores = viterbi(log_e, prepared.mask, initial.log(), transition.log())
            grid = torch.nn.functional.one_hot(paths, self.k).to(log_e.dtype)
            if prepared.mask is not None:
                grid.mul_(prepared.mask.unsqueeze(-1))
            transitions = pair_counts(grid, prepared.mask)
            objective = scores.sum(-1)
            log_lik = None
            if marginal:
                log_lik = forward_backward(log_e, prepared.mask, initial,
                                           transition).log_likelihood
            step = (log_e * grid).sum(-1, keepdim=True)
        else:
            smoothed = forward_backward(log_e, prepared.mask, initial, transition)
            grid, transitions = smoothed.posteriors, smoothed.transitions
            objective = log_lik = smoothed.log_likelihood
            step = smoothed.predictive.unsqueeze(-1)
        resp = self._flat(grid, prepared)  # (R, N, k)
        stats = self._stats(prepared, grid, resp, transitions, params, batched)
        scores = self._flat(step, prepared).squeeze(-1)
        if not batched:
            same = log_lik is objective
            resp, scores, objective = resp[0], scores[0], objective[0]
            log_lik = objective if same else (None if log_lik is None else log_lik[0])
        return EStep(stats, log_lik, objective, resp, scores)

    def _stats(self, prepared, grid, resp, transitions, params, batched) -> dict:
        """``counts (*R, k)``, ``initial (*R, k)``, ``transitions (*R, k, k)`` and the
        family's statistics weighted by the per-step posteriors ``resp: (R, N, k)``."""
        weights = resp.mT if batched else resp[0].mT  # (*R, k, N)
        stats = {"counts": resp.sum(-2), "initial": grid[:, :, 0].sum(1),
                 "transitions": transitions}
        if not batched:
            stats = {key: value[0] for key, value in stats.items()}
        stats.update(self.family.accumulate(prepared.emissions, weights, params))
        return stats

    def summarize(self, prepared, responsibilities, params) -> dict:
        """Statistics from per-step ``responsibilities: (*R, N, k)``: the transitions are
        counted between consecutive steps' responsibilities (exact for one-hot labels)."""
        batched = responsibilities.dim() == 3
        resp = responsibilities if batched else responsibilities.unsqueeze(0)
        grid = self._grid(resp, prepared)
        return self._stats(prepared, grid, resp, pair_counts(grid, prepared.mask), params,
                           batched)

    def centers(self, prepared, responsibilities) -> Params:
        return Params(self.family.centers(prepared.emissions, responsibilities.mT))

    def joint(self, prepared, params) -> torch.Tensor:
        """``log p(x_t, z_t = j | x_<t)``: ``(*batch, N, k)``; its log-sum-exp over states
        is each step's predictive log density, which add up to the log-likelihood."""
        initial, transition = self._chain(params)
        smoothed = forward_backward(self._log_emissions(prepared, params), prepared.mask,
                                    initial, transition, filtered=True)
        joint = smoothed.filtered.log() + smoothed.predictive.unsqueeze(-1)
        joint = self._flat(joint, prepared)
        return joint if params.batch_shape(self.specs) else joint[0]

    def maximize(self, stats, params, shift=None) -> Params:
        """The constrained M-step: normalised expected initial and transition counts, the
        family's closed form on the posterior-weighted statistics. A state (or a row of
        the transition) that no step visited keeps its values: any value maximises."""
        fixed = frozenset(self.fixed)
        new = Params()
        if "initial" not in fixed:  # MAP under Dirichlet(c): counts + c - 1
            start = stats["initial"] + (self.prior["initial"]["concentration"] - 1
                                        if self.prior.on("initial") else 0)
            new["initial"] = start / start.sum(-1, keepdim=True)
        if "transition" not in fixed:
            counts = stats["transitions"] + (self.prior["transition"]["concentration"] - 1
                                             if self.prior.on("transition") else 0)
            total = counts.sum(-1, keepdim=True)
            rows = counts / total.clamp_min(TINY)
            old = params.get("transition")
            new["transition"] = rows if old is None else torch.where(total > 0, rows, old)
        family_stats = {**stats, "counts": stats["counts"] + 10 * EPS, "reference": shift,
                        "prior": self.prior}
        emissions = self.family.maximize(family_stats, params, fixed)
        empty = stats["counts"] <= 0  # (*R, k)
        for name, value in emissions.items():
            spec = self.specs[name]
            if name not in fixed and spec.per_component and name in params and bool(empty.any()):
                where = empty.reshape(*empty.shape, *([1] * (len(spec.shape) - 1)))
                value = torch.where(where, params[name], value)
            new[name] = value
        for name in self.specs:
            if name in fixed or name not in new:
                new[name] = params[name] if name in params else self.fixed[name]
        return new

    def m_step(self, data, responsibilities, params=None) -> Params:
        """An M-step straight from per-step ``responsibilities: (*R, N, k)`` (how
        initialisation turns a labelling into parameters).

        Initial and transition counts are those of the labelling plus a pseudo-count of
        one per entry, so that every transition starts possible: EM never revives an
        exact zero.
        """
        data = self.check_data(data)
        params = Params(self.fixed if params is None else self.check_params(params))
        shift = self.shift(data)
        prepared = self.prepare(data, shift)
        for name, value in self.centers(prepared, responsibilities).items():
            params.setdefault(name, value)
        soft = (1 - SOFTEN) * responsibilities + SOFTEN / self.k
        stats = self.summarize(prepared, soft, params)
        stats["initial"] = stats["initial"] + PSEUDO_COUNT
        stats["transitions"] = stats["transitions"] + PSEUDO_COUNT
        return self.maximize(stats, params, shift)

    # -- decoding ----------------------------------------------------------------------
    def viterbi(self, data, params) -> torch.Tensor:
        """The most probable state path (Viterbi, log space): ``(*batch, N)`` over the valid
        steps, sequence after sequence."""
        data = self.check_data(data)
        params = self.check_params(params)
        prepared = self.prepare(data, self.shift(data))
        initial, transition = self._chain(params)
        paths, _ = viterbi(self._log_emissions(prepared, params), prepared.mask,
                           initial.log(), transition.log())
        flat = self._flat(paths.unsqueeze(-1), prepared).squeeze(-1)
        return flat if params.batch_shape(self.specs) else flat[0]

    def posterior(self, data, params) -> torch.Tensor:
        """State marginals ``p(z_t = j | x)``: ``(*batch, N, k)`` over the valid steps."""
        return self.e_step(data, params)[0]

