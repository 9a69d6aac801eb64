"""The component-family contract: one observation distribution in exponential-family form.

For component ``j`` with parameters ``theta_j`` a family writes

    log p(x | theta_j) = T(x) . eta_j - A_j + log h(x)

so that a mixture's E-step is one matrix product ``T @ eta.T`` and its M-step
needs only the additive sufficient statistics ``counts_j = sum_n r_nj`` and
``sums_j = sum_n r_nj T(x_n)``, which add across chunks and processes. The same
family gives the Pyro distribution used by the model's generative program.

Missing entries (NaN) are for families that declare ``supports_missing = True``: their
``check_data`` lets NaN through, their E-step pieces marginalise the missing entries
exactly (the log density of what is observed; expected statistics in the M-step's own
form), their Pyro distribution observes only what is there, and :meth:`Family.impute_mean`
/ :meth:`Family.impute_draw` fill the entries in (see :mod:`models.families.missing`).

Those defaults live in :meth:`Family.prepare`, :meth:`Family.log_densities` and
:meth:`Family.accumulate`; a family that needs more (the Gaussian's statistics
around each component's own mean, for precision far from the data's mean)
overrides them. Every family writes :meth:`Family.maximize`: the *constrained*
maximiser, in which the parameters named in ``fixed`` keep their values and the
free ones maximise the expected complete-data log-likelihood given them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
from pyro.ops.indexing import Vindex

from ..params import Params, ParamSpec
from ..recipe import capture


class Prepared(NamedTuple):
    """A chunk of data reduced to what a family's E-step needs.

    Attributes:
        statistics: ``(m, n)`` sufficient statistics ``T(x)``, one column per point
            (components-by-points is the layout in which the E-step's reductions
            over components run as fast elementwise passes).
        log_base: ``(n,)`` log base measure, or ``None`` where it is zero.
        shift: the reference the statistics were formed around (see :meth:`Family.shift`).
    """

    statistics: torch.Tensor
    log_base: torch.Tensor | None
    shift: object


def pick(param: torch.Tensor, z: torch.Tensor, event_dim: int = 0) -> torch.Tensor:
    """Select component ``z`` of a per-component parameter inside a Pyro program.

    Args:
        param: ``(*batch, k, *event)``; a restart batch sits on the restart plate (dim -2).
        z: assignment values, enumerated or sampled, shaped by the plates.
        event_dim: number of event dimensions of ``param``.

    Returns:
        ``param`` indexed by ``z``, broadcast against the plates.
    """
    if param.dim() - 1 - event_dim > 0:
        param = param.unsqueeze(-(event_dim + 2))  # room for the data plate
    return Vindex(param)[(Ellipsis, z) + (slice(None),) * event_dim]


def upper_triangle(d: int):
    """Index helpers for statistics that hold the upper triangle of a symmetric d x d matrix.

    Returns:
        ``rows, cols``: the triangle's ``(i, j)``, ``i <= j``, in row-major order; and
        ``symmetric: (d * d,)``, the triangle position of every entry of the full matrix.
    """
    rows, cols = torch.triu_indices(d, d)
    where = torch.zeros(d, d, dtype=torch.long)
    where[rows, cols] = torch.arange(len(rows))
    return rows, cols, torch.maximum(where, where.T).reshape(-1)


def shared(param: torch.Tensor, event_dim: int) -> torch.Tensor:
    """A parameter shared by all components, broadcast against the plates."""
    if param.dim() - event_dim > 0:
        param = param.unsqueeze(-(event_dim + 1))
    return param


class Family(ABC):
    """One observation distribution, with closed-form weighted maximum likelihood."""

    name: str = "family"

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        capture(self, args, kwargs)  # how to build it again (saved fits)
        return self

    #: shape of one observation
    event_shape: tuple[int, ...] = ()
    #: observations are whole numbers (plots draw a probability mass function)
    discrete: bool = False
    #: what one observation is called on plot axes
    value_label: str = "x"
    #: NaN in the data marks a missing entry, which the family marginalises exactly
    supports_missing: bool = False

    @abstractmethod
    def specs(self, k: int) -> dict[str, ParamSpec]:
        """Per-component parameter specs for ``k`` components."""

    @abstractmethod
    def check_data(self, data, name: str = "data") -> torch.Tensor:
        """Validate and convert data to ``(n, *event_shape)`` float64."""

    def shift(self, data: torch.Tensor):
        """A reference computed once from all the data (e.g. its mean), the same for every
        chunk, around which statistics are formed; ``None`` when not needed."""
        return None

    def statistics(self, data: torch.Tensor, shift) -> torch.Tensor:
        """Sufficient statistics ``T(x)``, one column per point: ``(m, n)``."""
        raise NotImplementedError(f"{type(self).__name__} defines neither statistics() nor "
                                  "prepare()")

    def log_base(self, data: torch.Tensor) -> torch.Tensor | None:
        """Log base measure ``log h(x)``: ``(n,)``, or ``None`` where it is zero."""
        return None

    def natural(self, params: Params, shift):
        """Natural parameters and log normalisers.

        Returns:
            ``eta: (*batch, k, m)`` and ``log_normalizer: (*batch, k)``.
        """
        raise NotImplementedError(f"{type(self).__name__} defines neither natural() nor "
                                  "log_densities()")

    # -- the E-step pieces a mixture (or an HMM) calls; exponential-family defaults -------
    def prepare(self, data: torch.Tensor, shift) -> Prepared:
        """What the E-step needs of a chunk ``data: (n, *event_shape)``, computed once."""
        return Prepared(self.statistics(data, shift), self.log_base(data), shift)

    def log_densities(self, prepared: Prepared, params: Params) -> torch.Tensor:
        """``log p(x_n | theta_j)``: ``(*batch, k, n)`` (components by points)."""
        eta, log_norm = self.natural(params, prepared.shift)
        stats = prepared.statistics
        if eta.dim() == 2:
            joint = torch.addmm(-log_norm.unsqueeze(-1), eta, stats)
        else:  # all restarts in one matrix product
            joint = (eta.reshape(-1, eta.shape[-1]) @ stats).reshape(*eta.shape[:-1], -1)
            joint -= log_norm.unsqueeze(-1)
        if prepared.log_base is not None:
            joint += prepared.log_base
        return joint

    def accumulate(self, prepared: Prepared, resp: torch.Tensor, params: Params) -> dict:
        """Additive statistics of a chunk, weighted by ``resp: (*batch, k, n)``.

        Returns:
            ``{"sums": (*batch, k, m)}``, the weighted sums of ``T(x)``: one matrix
            product ``T @ resp.T`` (the faster operand order for BLAS) for every restart.
            The caller adds ``counts``.
        """
        flat = resp.reshape(-1, resp.shape[-1])
        sums = (prepared.statistics @ flat.T).T.reshape(*resp.shape[:-1], -1)
        return {"sums": sums}

    def centers(self, prepared: Prepared, resp: torch.Tensor) -> dict:
        """Provisional values that :meth:`accumulate` forms its statistics around when the
        caller has no current parameters (an M-step straight from responsibilities).
        Default: none needed."""
        return {}

    @abstractmethod
    def maximize(self, stats: dict, params: Params, fixed=frozenset()) -> dict[str, torch.Tensor]:
        """The constrained closed-form weighted maximum likelihood.

        Args:
            stats: summed statistics: ``counts: (*batch, k)`` (kept off zero) and what
                :meth:`accumulate` gave, e.g. ``sums: (*batch, k, m)``.
            params: current parameters (the values of fixed ones, the reference of
                centred statistics).
            fixed: names of the parameters held at ``params``: the free ones maximise
                the expected complete-data log-likelihood *given* them (e.g. Gaussian
                covariances around fixed means).

        Returns:
            New values of the family's parameters (fixed ones may be left out).
        """

    @abstractmethod
    def distribution(self, params: Params, z: torch.Tensor, inputs=None):
        """The Pyro distribution of one observation given assignment ``z``.

        Args:
            inputs: what :meth:`inputs` gave (covariates), or ``None``.
        """

    def inputs(self, data: torch.Tensor | None, n: int):
        """Covariates the observation is conditioned on (regressions), read from the data
        or, when simulating (``data is None``), drawn inside the program. Default: none."""
        return None

    def observed(self, data: torch.Tensor | None):
        """What the program's observation site sees (default: the whole row)."""
        return data

    def assemble(self, inputs, observed: torch.Tensor) -> torch.Tensor:
        """Simulated data rows from the program's covariates and observations."""
        return observed

    def features(self, data: torch.Tensor) -> torch.Tensor:
        """Points in a Euclidean space for distance-based initialisation: ``(n, f)``."""
        return data.reshape(data.shape[0], -1)

    def grid(self, data: torch.Tensor) -> torch.Tensor:
        """Points at which plots draw the fitted density of a scalar observation."""
        x = data.reshape(-1)
        pad = 0.05 * float(x.max() - x.min() + 1e-9)
        return torch.linspace(float(x.min()) - pad, float(x.max()) + pad, 400, dtype=data.dtype)

    def diagnose(self, data: torch.Tensor, params: Params, fixed=frozenset()) -> list[str]:
        """Notes on fitted parameters (e.g. a collapsed component; ``fixed`` names the
        parameters the user fixed, which need no notes); default none."""
        return []

    def canonical(self, values: dict) -> dict:
        """Accept convenient aliases for user-given parameters (e.g. covariances)."""
        return values

    def check_params(self, values: Params, name: str) -> None:
        """Semantic checks beyond shape and constraint; raise ``ValueError`` naming ``name``."""

    @abstractmethod
    def random_params(self, k: int, data: torch.Tensor, generator: torch.Generator) -> dict:
        """Random but sensible parameters near the data (tests and random starts)."""

    def describe(self) -> str:
        return self.name

    # -- priors (optional): see models/priors.py ---------------------------------------
    def prior_keys(self) -> dict[str, str]:
        """The prior keys this family takes (``{key: what it is}``); default none."""
        return {}

    def prior_sites(self, prior, k: int) -> list:
        """The ``PriorSite`` list for ``prior`` (ordered: a site may depend on earlier ones).
        Its ``maximize`` then reads ``stats["prior"]`` and returns the MAP estimate."""
        return []

    # -- imputation (families that support missing entries override these) ------------------
    def impute_mean(self, data: torch.Tensor, params: Params, resp: torch.Tensor):
        """``(n, *event_shape)``: ``data`` with each missing entry (NaN) at its conditional
        expectation given the row's observed entries, weighted over components by
        ``resp: (n, k)``. Default: nothing is missing."""
        return data.clone()

    def impute_draw(self, data: torch.Tensor, params: Params, labels: torch.Tensor,
                    generator: torch.Generator):
        """``(m, n, *event_shape)``: ``m`` copies of ``data``, each row's missing entries
        drawn from their conditional distribution under component ``labels: (m, n)``.
        Default: nothing is missing."""
        return data.expand(len(labels), *data.shape).clone()

    @classmethod
    def missing_methods(cls) -> list[str]:
        """What a subclass still has to define: the abstract methods, and either the
        exponential-family pair ``statistics`` + ``natural`` or the E-step pair
        ``log_densities`` + ``accumulate``."""
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        own = {name for name in ("statistics", "natural", "log_densities", "accumulate")
               if getattr(cls, name) is not getattr(Family, name)}
        if not {"statistics", "natural"} <= own and not {"log_densities", "accumulate"} <= own:
            missing.append("statistics and natural (or log_densities and accumulate)")
        return missing
