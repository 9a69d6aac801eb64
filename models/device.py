"""Device names: ``cpu``, ``cuda`` or ``cuda:N``, checked for their form and for whether
this machine has them (one clear :class:`InputError` naming the argument)."""

from __future__ import annotations

import re

import torch

from .validation import InputError, InputTypeError

PATTERN = re.compile(r"cpu|cuda(?::(\d{1,3}))?")


def parse(value, name: str = "device") -> str:
    """The device string, checked for its form only (``cpu``, ``cuda``, ``cuda:N``)."""
    if isinstance(value, torch.device):
        value = str(value)
    if not isinstance(value, str):
        raise InputTypeError(f"{name}: expected 'cpu', 'cuda' or 'cuda:N', got {value!r:.60}")
    if not PATTERN.fullmatch(value):
        raise InputError(f"{name}: expected 'cpu', 'cuda' or 'cuda:N', got {value!r:.60}")
    return value


def resolve(value, name: str = "device") -> torch.device:
    """A device this machine has.

    Raises:
        InputError: naming ``name``: not ``cpu``/``cuda``/``cuda:N``, CUDA not available
            (torch built without it, or no GPU visible), or no GPU of that index.
    """
    text = parse(value, name)
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = ("this torch was built without CUDA" if torch.version.cuda is None else
               "no GPU is visible")
        raise InputError(f"{name}: {text!r} asked, but CUDA is not available here ({why}); "
                         "use 'cpu'")
    index = PATTERN.fullmatch(text).group(1)
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise InputError(f"{name}: {text!r} asked, but this machine has {count} GPU(s) "
                         f"(cuda:0 .. cuda:{count - 1})")
    return torch.device(text)
