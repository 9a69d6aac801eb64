"""The component-family contract: one observation distribution in exponential-family form.

For component ``j`` with parameters ``theta_j`` a family writes

    log p(x | theta_j) = T(x) . eta_j - A_j + log h(x)

so that a mixture's E-step is one matrix product ``T @ eta.T`` and its M-step
needs only the additive sufficient statistics ``counts_j = sum_n r_nj`` and
``sums_j = sum_n r_nj T(x_n)``, which add across chunks and processes. The same
family gives the Pyro distribution used by the model's generative program.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from pyro.ops.indexing import Vindex

from ..params import Params, ParamSpec


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
    #: shape of one observation
    event_shape: tuple[int, ...] = ()
    #: observations are whole numbers (plots draw a probability mass function)
    discrete: bool = False
    #: what one observation is called on plot axes
    value_label: str = "x"

    @abstractmethod
    def specs(self, k: int) -> dict[str, ParamSpec]:
        """Per-component parameter specs for ``k`` components."""

    @abstractmethod
    def check_data(self, data, name: str = "data") -> torch.Tensor:
        """Validate and convert data to ``(n, *event_shape)`` float64."""

    def shift(self, data: torch.Tensor) -> torch.Tensor | None:
        """A reference point subtracted before forming statistics (numerical stability)."""
        return None

    @abstractmethod
    def statistics(self, data: torch.Tensor, shift: torch.Tensor | None) -> torch.Tensor:
        """Sufficient statistics ``T(x)``, one column per point: ``(m, n)``."""

    def log_base(self, data: torch.Tensor) -> torch.Tensor | None:
        """Log base measure ``log h(x)``: ``(n,)``, or ``None`` where it is zero."""
        return None

    @abstractmethod
    def natural(self, params: Params, shift: torch.Tensor | None):
        """Natural parameters and log normalisers.

        Returns:
            ``eta: (*batch, k, m)`` and ``log_normalizer: (*batch, k)``.
        """

    @abstractmethod
    def maximize(self, counts, sums, shift, params: Params) -> dict[str, torch.Tensor]:
        """Closed-form weighted maximum likelihood from additive statistics.

        Args:
            counts: ``(*batch, k)`` summed responsibilities (already kept off zero).
            sums: ``(*batch, k, m)`` responsibility-weighted sums of ``T(x)``.
            shift: the reference point the statistics were formed around.
            params: current parameters (for shared or fixed values).
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

    def diagnose(self, data: torch.Tensor, params: Params) -> list[str]:
        """Notes on fitted parameters (e.g. a collapsed component); default none."""
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
