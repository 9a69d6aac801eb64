"""Parameter specs and the container that both fitting paths share.

A model declares its parameters once, as :class:`ParamSpec` entries: the shape
of one parameter set, the constraint (which also gives the unconstrained space
that ``pyro.param`` optimises in), whether the value is fixed, and whether the
leading axis indexes components (so label alignment may permute it).

:class:`Params` is a plain mapping from names to ``float64`` tensors. Each
tensor may carry extra *leading* batch dimensions on top of its spec shape: a
batch of restarts is one ``Params`` whose tensors start with ``(R, ...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch.distributions import constraints

DTYPE = torch.float64


@dataclass(frozen=True)
class ParamSpec:
    """One named parameter of a model.

    Attributes:
        shape: shape of one parameter set, without restart batch dimensions.
        constraint: the support; VI optimises in ``biject_to(constraint)``'s domain.
        fixed: held at the model's value by both EM and VI.
        per_component: one axis indexes mixture components (label alignment permutes it).
        doc: a few words for reports.
        component_axis: which axis of ``shape`` indexes the components (0: the leading one;
            -1 for per-group weights ``(groups, k)``).
    """

    shape: tuple[int, ...]
    constraint: constraints.Constraint = constraints.real
    fixed: bool = False
    per_component: bool = True
    doc: str = ""
    component_axis: int = 0


class Params(dict):
    """Named parameter tensors, ``name -> (*batch, *spec.shape)``."""

    def detach(self) -> Params:
        return Params({k: v.detach().clone() for k, v in self.items()})

    def map(self, fn) -> Params:
        return Params({k: fn(v) for k, v in self.items()})

    def batch_shape(self, specs: Mapping[str, ParamSpec]) -> tuple[int, ...]:
        """The restart batch shape shared by all tensors (``()`` when unbatched)."""
        for name, spec in specs.items():
            if name in self:
                value = self[name]
                return tuple(value.shape[: value.dim() - len(spec.shape)])
        return ()

    def select(self, index: int, specs: Mapping[str, ParamSpec]) -> Params:
        """The parameter set of one restart from a batch of one leading dimension."""
        if not self.batch_shape(specs):
            return Params(self)
        return Params({k: v[index] for k, v in self.items()})

    def to_lists(self) -> dict[str, list | float]:
        """Plain nested lists, for JSON and TOML."""
        return {k: v.detach().cpu().tolist() for k, v in self.items()}

    @staticmethod
    def stack(sets: Iterable[Mapping[str, torch.Tensor]]) -> Params:
        """Stack parameter sets along a new leading restart dimension."""
        sets = list(sets)
        return Params({k: torch.stack([s[k] for s in sets]) for k in sets[0]})


def interior(value: torch.Tensor, constraint: constraints.Constraint) -> torch.Tensor:
    """Nudge a value off the boundary of its support, so its unconstrained image is finite.

    EM can land exactly on a boundary (a probability of 0 or 1, a weight of 0);
    ``biject_to`` maps those to infinities, which gradient steps cannot leave.
    """
    tiny = 1e-12
    if constraint is constraints.unit_interval:
        return value.clamp(tiny, 1 - tiny)
    if constraint is constraints.simplex:
        value = value.clamp_min(tiny)
        return value / value.sum(-1, keepdim=True)
    if constraint is constraints.positive:
        return value.clamp_min(1e-300)
    return value
