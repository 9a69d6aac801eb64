"""Checks at the public boundary: every message names the argument and what was expected."""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import torch

from .params import DTYPE


class InputError(ValueError):
    """A value given to emvi by its user is not acceptable; the message names the argument.

    The command line answers these (and :class:`InputTypeError`) in one line with exit
    status 2; any other exception is a bug in emvi and exits 1.
    """


class InputTypeError(TypeError):
    """A value given to emvi by its user has the wrong type; the message names the argument."""


def as_tensor(value, name: str) -> torch.Tensor:
    """Convert array-like numeric input to a float64 tensor, or raise ``TypeError``.

    float32 input is promoted to float64 (both fitting paths are compared in
    float64); booleans and integers are accepted as numbers.
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    elif isinstance(value, np.ma.MaskedArray):  # masked entries are missing, never dropped
        if value.dtype.kind not in "biuf":
            raise InputTypeError(f"{name}: expected numbers, got array of dtype {value.dtype}")
        tensor = torch.as_tensor(value.astype(np.float64).filled(np.nan))
    else:
        if isinstance(value, (str, bytes)):
            raise InputTypeError(f"{name}: expected numbers, got a string {value!r:.40}")
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise InputError(f"{name}: expected a rectangular array of numbers ({exc})") from None
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
        ):
            raise InputTypeError(f"{name}: expected numbers, got array of dtype {array.dtype}")
        if not array.flags.writeable:  # e.g. a pandas frame's values: torch would warn
            array = array.astype(np.float64)
        tensor = torch.as_tensor(array)
    if tensor.is_complex():
        raise InputTypeError(f"{name}: expected real numbers, got dtype {tensor.dtype}")
    return tensor.to(DTYPE)


def refuse(tensor: torch.Tensor, bad: torch.Tensor, name: str, expected: str) -> torch.Tensor:
    """Raise ``ValueError`` naming the first entry where ``bad`` holds; else return ``tensor``."""
    if bad.any():
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        where = index[0] if len(index) == 1 else index
        raise InputError(f"{name}: expected {expected}, found {tensor[index].item()} "
                         f"at index {where}")
    return tensor


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every entry of a floating ``tensor`` is finite: one pass, no allocation (the
    smallest and largest entry are finite only when no entry is NaN or infinite; NaN
    propagates through both). The common case of the checks below, which look further
    only when it fails."""
    if tensor.numel() == 0 or not tensor.is_floating_point():
        return True
    low, high = torch.aminmax(tensor)
    return math.isfinite(float(low)) and math.isfinite(float(high))


def check_finite(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` naming the first non-finite entry."""
    return refuse(tensor, ~torch.isfinite(tensor), name, "finite values")


#: whether :func:`check_data` keeps rows with every entry missing (an HMM's steps: such a
#: step emits with probability one but still moves the chain)
_EMPTY_ROWS = ContextVar("empty_rows", default=False)


@contextmanager
def empty_rows_allowed():
    """Inside, :func:`check_data` with ``missing=True`` keeps rows whose every entry is
    missing instead of refusing them (what a family's own ``check_data`` calls)."""
    token = _EMPTY_ROWS.set(True)
    try:
        yield
    finally:
        _EMPTY_ROWS.reset(token)


def check_data(data, name: str, event_shape: tuple[int, ...],
               missing: bool = False) -> torch.Tensor:
    """Data as a float64 tensor of shape ``(n, *event_shape)``, n >= 1, finite except for
    missing entries (NaN) where ``missing`` allows them.

    A 1-D array is accepted for a one-dimensional event (``(n,)`` -> ``(n, 1)``).

    Args:
        missing: NaN marks a missing entry (the family marginalises it); a row with every
            entry missing carries no information and is refused (kept inside
            :func:`empty_rows_allowed`). Without it, NaN is
            refused with one error naming the rows. Infinities are always refused.
    """
    tensor = as_tensor(data, name)
    if event_shape == (1,) and tensor.dim() == 1:
        tensor = tensor.unsqueeze(-1)
    expected = 1 + len(event_shape)
    if tensor.dim() != expected or tuple(tensor.shape[1:]) != tuple(event_shape):
        want = "(n" + "".join(f", {d}" for d in event_shape) + ")"
        raise InputError(f"{name}: expected shape {want}, got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise InputError(f"{name}: expected at least one observation, got an empty array")
    if all_finite(tensor):
        return tensor
    infinite, nan, empty = row_flags(tensor)
    if bool(infinite.any()):
        refuse(tensor, torch.isinf(tensor), name,
               "finite values (or NaN for a missing entry)" if missing else "finite values")
    if not bool(nan.any()):
        return tensor
    if not missing:
        raise InputError(f"{name}: missing values (NaN) in {_rows(nan)}; this model "
                         "cannot take missing values: drop or impute those rows")
    if bool(empty.any()) and not _EMPTY_ROWS.get():
        raise InputError(f"{name}: every entry is missing (NaN) in {_rows(empty)}: such rows "
                         "carry no information; drop them")
    return tensor


#: bytes per block when data are scanned for NaN and infinities: the scan's memory is one
#: block's intermediates, whatever the size of the data (a memory-mapped file is read,
#: not copied)
SCAN_BYTES = 1 << 20


def block_rows(tensor: torch.Tensor) -> int:
    """Rows per block of about :data:`SCAN_BYTES` of ``tensor``."""
    row = max(1, tensor[:1].numel()) * tensor.element_size()
    return max(1, SCAN_BYTES // row)


def row_flags(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(n,)`` flags of the rows holding an infinity, a NaN, and only NaN; block by block,
    into buffers made once (no allocation per block: the process does not grow)."""
    n, step = len(tensor), block_rows(tensor)
    device = tensor.device  # on the data's device, as every buffer below
    infinite, nan, empty = (torch.empty(n, dtype=torch.bool, device=device) for _ in range(3))
    flat = tensor.reshape(n, -1)
    work = torch.empty((min(step, n), flat.shape[1]), dtype=tensor.dtype, device=device)
    nan_work, inf_work = (torch.empty(work.shape, dtype=torch.bool, device=device)
                          for _ in range(2))
    for start in range(0, n, step):
        block = flat[start: start + step]
        rows, m = slice(start, start + len(block)), len(block)
        torch.ne(block, block, out=nan_work[:m])  # NaN is the value unequal to itself
        torch.abs(block, out=work[:m])
        torch.eq(work[:m], math.inf, out=inf_work[:m])
        torch.any(inf_work[:m], 1, out=infinite[rows])
        torch.any(nan_work[:m], 1, out=nan[rows])
        torch.all(nan_work[:m], 1, out=empty[rows])
    return infinite, nan, empty


def _rows(flags: torch.Tensor, shown: int = 8) -> str:
    """``row 3`` or ``rows 3, 7, 9 (and 12 more)`` for the true entries of ``flags: (n,)``."""
    rows = torch.nonzero(flags).flatten().tolist()
    text = ", ".join(str(r) for r in rows[:shown])
    more = f" (and {len(rows) - shown} more)" if len(rows) > shown else ""
    return f"row{'s' if len(rows) > 1 else ''} {text}{more}"


def check_observed_columns(data: torch.Tensor, name: str) -> None:
    """Refuse data in which some coordinate is missing (NaN) in every row: nothing can be
    learned about it (its parameters would stay where they started)."""
    if not data.is_floating_point() or data.dim() < 2 or all_finite(data):
        return
    empty = torch.ones(data.shape[1:], dtype=torch.bool, device=data.device)
    step = block_rows(data)
    for start in range(0, len(data), step):  # block by block: see row_flags
        empty &= torch.isnan(data[start: start + step]).all(0)
    if bool(empty.any()):
        index = tuple(int(i) for i in torch.nonzero(empty)[0])
        where = index[0] if len(index) == 1 else index
        raise InputError(f"{name}: every entry of column {where} is missing (NaN): nothing "
                         "can be learned about it; drop that column")


def precision_notes(data) -> list[str]:
    """Notes for a fit's result when the input was held in lower precision than float64."""
    dtype = getattr(data, "dtype", None)
    if dtype in (torch.float32, torch.float16, torch.bfloat16, np.float32, np.float16):
        return [f"data promoted from {dtype} to float64 (both paths compute in float64)"]
    return []


def check_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """An integer in ``[low, high]``; bools and non-integral floats are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InputTypeError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise InputError(f"{name}: expected an integer >= {low}, got {value}")
    if high is not None and value > high:
        raise InputError(f"{name}: expected an integer <= {high}, got {value}")
    return value


def check_real(value, name: str, low: float | None = None, high: float | None = None,
               open_low: bool = False) -> float:
    """A finite real number (Python or NumPy, any precision; not a bool) in range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name}: expected a number, got {value!r:.60}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{name}: expected a finite number, got {value}")
    if low is not None and (value < low or (open_low and value <= low)):
        raise InputError(f"{name}: expected a number {'>' if open_low else '>='} {low:g}, "
                         f"got {value:g}")
    if high is not None and value > high:
        raise InputError(f"{name}: expected a number <= {high:g}, got {value:g}")
    return value


def check_bool(value, name: str) -> bool:
    """``True`` or ``False`` (a string such as ``"false"`` is refused, not read as truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name}: expected True or False, got {value!r:.60}")
    return bool(value)


def check_callable(value, name: str):
    """A function (or other callable)."""
    if not callable(value):
        raise InputTypeError(f"{name}: expected a function, got {value!r:.60}")
    return value


def check_positive(value, name: str) -> float:
    """A finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name}: expected a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{name}: expected a positive finite number, got {value}")
    return float(value)


def check_k(k: int, n: int) -> None:
    """K components need at least K observations."""
    if k > n:
        raise InputError(f"k: expected at most as many components as observations ({n}), got {k}")
