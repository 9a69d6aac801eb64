"""Many sequences of different lengths, held padded: the data of a hidden Markov model.

``Sequences(values, lengths)`` keeps ``values: (B, T, *event)`` float64, padded at the
end of each sequence, and ``lengths: (B,)``. A padded step holds a copy of its
sequence's first observation (any value a family accepts: a Poisson count, a category),
so that distributions may be evaluated there and masked; it never counts. The valid
steps, sequence after sequence, are :meth:`Sequences.flat` ``(N, *event)``: the layout
of an HMM's responsibilities, assignments and emission statistics.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC

import numpy as np
import torch

from .params import DTYPE
from .validation import InputError, InputTypeError, as_tensor, check_int


class Sequences:
    """Padded sequences.

    Args:
        values: ``(B, T, *event)`` padded values (what lies beyond a sequence's length is
            ignored, NaN included).
        lengths: ``(B,)`` valid steps of each sequence, each in ``1 .. T``; ``None``:
            every sequence has ``T`` steps.

    Attributes:
        values: ``(B, T, *event)`` float64, padded steps filled with a valid value.
        lengths: ``(B,)`` long.
    """

    def __init__(self, values, lengths=None):
        values = as_tensor(values, "values")
        if values.dim() < 2:
            raise InputError(f"values: expected a padded (sequences, steps, ...) array, got "
                             f"shape {tuple(values.shape)}")
        count, steps = values.shape[:2]
        if count == 0 or steps == 0:
            raise InputError(f"values: expected at least one sequence of at least one step, "
                             f"got shape {tuple(values.shape)}")
        if lengths is None:
            lengths = torch.full((count,), steps, dtype=torch.long)
        else:
            lengths = _lengths(lengths, count, steps)
        self.lengths = lengths
        self.mask = torch.arange(steps) < lengths.unsqueeze(-1)  # (B, T)
        # padded steps: a copy of the sequence's first value (valid for every family)
        first = values[:, :1].expand_as(values)
        where = self.mask.reshape(count, steps, *([1] * (values.dim() - 2)))
        self.values = torch.where(where, values, first).contiguous()
        self.equal = bool((lengths == steps).all())

    # -- sizes -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def max_length(self) -> int:
        return self.values.shape[1]

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape[2:])

    @property
    def n_observations(self) -> int:
        return int(self.lengths.sum())

    def __repr__(self) -> str:
        return (f"Sequences({len(self)} sequences, {self.n_observations} steps, lengths "
                f"{int(self.lengths.min())}..{int(self.lengths.max())}, event "
                f"{self.event_shape})")

    # -- views ------------------------------------------------------------------------
    def flat(self) -> torch.Tensor:
        """``(N, *event)``: the valid steps, sequence after sequence."""
        if self.equal:
            return self.values.reshape(-1, *self.event_shape)
        return self.values[self.mask]

    def __getitem__(self, index: int) -> torch.Tensor:
        """Sequence ``index``: ``(T_index, *event)``."""
        return self.values[index, : int(self.lengths[index])]

    def to_list(self) -> list[torch.Tensor]:
        return [self[i] for i in range(len(self))]

    def select(self, start: int, stop: int) -> Sequences:
        """Sequences ``start .. stop - 1`` (trimmed to their own longest length)."""
        lengths = self.lengths[start:stop]
        steps = int(lengths.max())
        out = Sequences.__new__(Sequences)
        out.values = self.values[start:stop, :steps]
        out.lengths = lengths
        out.mask = self.mask[start:stop, :steps]
        out.equal = bool((lengths == steps).all())
        return out

    def positions(self) -> torch.Tensor:
        """``(N,)`` positions of the valid steps in the flattened ``(B * T)`` padded grid."""
        return torch.nonzero(self.mask.reshape(-1)).squeeze(-1)

    def unflatten(self, flat: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """Per-step values ``(*batch, N, c)`` back on the padded grid ``(*batch, B, T, c)``
        (``fill`` at padded steps)."""
        batch, c = flat.shape[:-2], flat.shape[-1]
        count, steps = self.mask.shape
        if self.equal:
            return flat.reshape(*batch, count, steps, c)
        out = flat.new_full((*batch, count * steps, c), fill)
        out.index_copy_(-2, self.positions(), flat)
        return out.reshape(*batch, count, steps, c)

    def numpy_arrays(self) -> dict[str, np.ndarray]:
        """``{"data": (N, *event), "lengths": (B,)}``: what a run saves."""
        return {"data": self.flat().numpy(), "lengths": self.lengths.numpy()}


def _lengths(lengths, count: int, steps: int) -> torch.Tensor:
    tensor = as_tensor(lengths, "lengths")
    if tensor.dim() != 1 or tensor.shape[0] != count:
        raise InputError(f"lengths: expected one length per sequence ({count}), got shape "
                         f"{tuple(tensor.shape)}")
    bad = (tensor != tensor.round()) | (tensor < 1) | (tensor > steps)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise InputError(f"lengths: expected whole numbers in 1..{steps} (the padded length), "
                         f"got {tensor[i].item():g} for sequence {i}")
    return tensor.long()


def from_list(arrays, name: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """A list of ``(T_i, ...)`` arrays as ``(flat (N, ...), lengths (B,))``."""
    parts = []
    for i, array in enumerate(arrays):
        tensor = as_tensor(array, f"{name}[{i}]")
        if tensor.dim() == 0:
            raise InputError(f"{name}[{i}]: expected a sequence (an array of steps), got a "
                             "single number")
        if tensor.shape[0] == 0:
            raise InputError(f"{name}[{i}]: expected at least one step, got an empty sequence")
        if parts and tuple(tensor.shape[1:]) != tuple(parts[0].shape[1:]):
            raise InputError(f"{name}[{i}]: expected steps of shape {tuple(parts[0].shape[1:])} "
                             f"as in {name}[0], got {tuple(tensor.shape[1:])}")
        parts.append(tensor)
    if not parts:
        raise InputError(f"{name}: expected at least one sequence, got an empty list")
    lengths = torch.tensor([p.shape[0] for p in parts], dtype=torch.long)
    return torch.cat(parts), lengths


def pad(flat: torch.Tensor, lengths: torch.Tensor) -> Sequences:
    """Sequences from the valid steps ``flat: (N, *event)`` and ``lengths: (B,)``."""
    steps = int(lengths.max())
    mask = torch.arange(steps) < lengths.unsqueeze(-1)
    values = flat.new_zeros(len(lengths), steps, *flat.shape[1:])
    values[mask] = flat
    return Sequences(values, lengths)


def as_sequences(data, name: str, check_flat) -> Sequences:
    """User data as :class:`Sequences`, the valid steps checked by ``check_flat``.

    Args:
        data: :class:`Sequences`, a list (or tuple) of ``(T_i, ...)`` arrays, or one
            ``(T, ...)`` array (one sequence).
        check_flat: ``(flat (N, ...), name) -> (N, *event)`` float64, raising
            :class:`InputError` (the family's own check).
    """
    if isinstance(data, Sequences):
        flat, lengths = data.flat(), data.lengths
    elif isinstance(data, (list, tuple)) and not _numbers(data):
        flat, lengths = from_list(data, name)
    elif isinstance(data, (str, bytes)) or isinstance(data, SequenceABC) and not data:
        raise InputTypeError(f"{name}: expected sequences (a list of arrays, "
                             f"emvi.Sequences(padded, lengths) or one array), got {data!r:.40}")
    else:
        tensor = as_tensor(data, name)
        if tensor.dim() == 0 or tensor.shape[0] == 0:
            raise InputError(f"{name}: expected at least one step, got shape "
                             f"{tuple(tensor.shape)}")
        flat, lengths = tensor, torch.tensor([tensor.shape[0]])
    try:
        checked = check_flat(flat, name)
    except (InputError, InputTypeError):
        _locate(flat, lengths, name, check_flat)
        raise
    if checked.shape[0] != flat.shape[0]:
        raise InputError(f"{name}: expected one observation per step, got {checked.shape[0]} "
                         f"for {flat.shape[0]} steps")
    if (isinstance(data, Sequences) and data.values.dtype == DTYPE
            and tuple(checked.shape[1:]) == data.event_shape):
        if torch.allclose(checked, flat, rtol=0, atol=0, equal_nan=True):  # NaN: missing
            return data
    return pad(checked, lengths)


def _numbers(items) -> bool:
    """A flat list of numbers (one sequence of scalars), not a list of sequences."""
    return all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool)
               for x in items)


def _locate(flat, lengths, name, check_flat) -> None:
    """Re-raise a failed check naming the sequence and step (``data[3]: ... index 5``)."""
    if len(lengths) == 1:
        return
    start = 0
    for i, length in enumerate(lengths.tolist()):
        check_flat(flat[start: start + length], f"{name}[{i}]")
        start += length


def check_lengths(lengths, name: str = "lengths") -> list[int]:
    """Sequence lengths: a non-empty list of whole numbers >= 1."""
    if isinstance(lengths, (int, np.integer)) and not isinstance(lengths, bool):
        lengths = [lengths]
    if isinstance(lengths, torch.Tensor):
        lengths = lengths.tolist()
    if not isinstance(lengths, (list, tuple, np.ndarray)) or len(lengths) == 0:
        raise InputError(f"{name}: expected a non-empty list of sequence lengths, "
                         f"got {lengths!r:.60}")
    return [check_int(v, f"{name}[{i}]", low=1) for i, v in enumerate(lengths)]
