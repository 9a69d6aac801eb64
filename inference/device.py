"""Where the tensors of a fit live: ``cpu``, ``cuda`` or ``cuda:N``.

The fitting functions compute on the device of their data and refuse parameters on
another one (a clear :class:`InputError` instead of torch's mid-fit device error);
:func:`to_device` moves data and parameters together, and :func:`resolve` turns a
user's string into a device, refusing one this machine does not have.
"""

from __future__ import annotations

import torch

from ..models.device import parse, resolve  # noqa: F401 (parse: public here too)
from ..models.params import Params
from ..models.validation import InputError


def to_device(value, device):
    """A tensor, :class:`Params` (or dict of tensors) moved to ``device`` (checked by
    :func:`resolve`); anything else is returned as it is."""
    device = resolve(device)
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, dict):
        return Params({k: v.to(device) if torch.is_tensor(v) else v for k, v in value.items()})
    return value


def check_same_device(data, params: Params, name: str = "init") -> None:
    """Refuse parameters on another device than the data (rows; other data pass)."""
    where = getattr(data, "device", None)
    if not isinstance(where, torch.device):
        return
    for key, value in params.items():
        if torch.is_tensor(value) and value.device != where:
            raise InputError(f"{name}: {key} is on {value.device} but the data are on "
                             f"{where}; move both to one device (emvi.inference.device."
                             "to_device)")


def fit_on_cpu(fit, data=None):
    """A shallow copy of a :class:`~emvi.inference.fit.Fit` whose tensors are on the CPU
    (``data``: the CPU copy of its data, kept for its per-point numbers)."""
    import copy
    import dataclasses

    out = copy.copy(fit)
    for f in dataclasses.fields(fit):
        value = getattr(fit, f.name)
        if torch.is_tensor(value):
            setattr(out, f.name, value.cpu())
        elif isinstance(value, Params):
            setattr(out, f.name, value.map(lambda t: t.cpu()))
        elif f.name == "param_trace" and value is not None:
            out.param_trace = [p.map(lambda t: t.cpu()) for p in value]
    kept = getattr(fit, "_responsibilities", None)
    out._responsibilities = None if kept is None else kept.cpu()
    if data is not None:
        out.data = data
    return out
