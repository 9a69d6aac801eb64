"""Fits you can keep: ``fit.save(path)`` and ``emvi.load(path)``.

A fit file is one ``torch.save`` archive holding only tensors and a JSON string, read
back with ``torch.load(weights_only=True)`` (no pickle of arbitrary objects): the
parameters, the objective trace, every restart's numbers, the notes and events, and
the model's recipe (its class and constructor arguments, see
:mod:`emvi.models.recipe`). The training data and responsibilities are not kept:
``predict`` and ``predict_proba`` work on new data.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch

from ..models.params import Params
from ..models.recipe import rebuild, recipe
from ..models.validation import InputError, InputTypeError
from .fit import Fit

FORMAT = "emvi-fit"
VERSION = 1
TENSORS = ("objective", "log_likelihood_trace", "seconds", "restart_log_likelihoods",
           "restart_objectives")
SCALARS = ("method", "log_likelihood", "iterations", "converged", "best_restart", "m_step",
           "notes", "events", "hard", "restart_converged")


def fit_bytes(fit: Fit) -> bytes:
    """The fit as the bytes of a fit file."""
    meta = {name: getattr(fit, name) for name in SCALARS}
    meta["model"] = recipe(fit.model)
    meta["model_description"] = fit.model.describe()
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "meta": json.dumps(meta, allow_nan=True),
        "params": {k: v.detach().cpu().clone() for k, v in fit.params.items()},
        **{name: getattr(fit, name).detach().cpu().clone() for name in TENSORS
           if getattr(fit, name) is not None},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_fit(fit: Fit, path) -> Path:
    """Write ``fit`` to ``path`` atomically (a reader sees the old file or the new one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(fit_bytes(fit))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def load_fit(path, model=None, trust_model_code: bool = False) -> Fit:
    """A fit saved by :meth:`Fit.save`.

    Args:
        path: the fit file.
        model: the model to attach (checked against the saved description); by default it
            is rebuilt from the saved recipe.
        trust_model_code: allow importing the ``.py`` file a user model came from (the
            same rule as configs and ``emvi report --trust-model-code``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"path: no such fit file {str(path)!r}")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: refused below anyway
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch archive, or one holding more than tensors
        raise InputError(f"path: {path.name} is not an emvi fit file ({type(exc).__name__})"
                         ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"path: {path.name} is not an emvi fit file")
    if payload.get("version") != VERSION:
        raise InputError(f"path: {path.name} has fit format version {payload.get('version')}; "
                         f"this emvi reads version {VERSION}")
    meta = json.loads(payload["meta"])
    if model is None:
        model = rebuild(meta["model"], trust_model_code)
    elif not hasattr(model, "describe") or model.describe() != meta["model_description"]:
        raise InputTypeError(f"model: expected the fit's model {meta['model_description']}, got "
                             f"{model.describe() if hasattr(model, 'describe') else model!r}")
    params = model.check_params(Params(payload["params"]), "params")
    return Fit(model=model, params=params,
               **{name: meta[name] for name in SCALARS},
               **{name: payload.get(name) for name in TENSORS})
