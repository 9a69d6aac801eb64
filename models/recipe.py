"""A model's recipe: its class and constructor arguments as plain JSON, to build it again.

Saved fits carry their model this way (never a pickled object). Rebuilding follows the same
rules as configs: emvi's own classes always; a class from an installed module only
when that module is advertised in the ``emvi.models`` entry-point group; a class from
a ``.py`` file only when the caller says it trusts that code.
"""

from __future__ import annotations

import numpy as np
import torch

from .validation import InputError, InputTypeError

DTYPES = {"float64": torch.float64, "float32": torch.float32, "int64": torch.int64,
          "int32": torch.int32, "bool": torch.bool}


def capture(obj, args: tuple, kwargs: dict) -> None:
    """Remember how ``obj`` was constructed (called from ``__new__``)."""
    obj.__dict__.setdefault("_construction", (args, dict(kwargs)))


def _origin(cls: type) -> dict:
    """Where a class comes from, in a form :func:`rebuild` can check before importing."""
    from . import registry

    module, name = cls.__module__, cls.__qualname__
    if module == "emvi" or module.startswith("emvi."):
        return {"emvi": f"{module}:{name}"}
    for (path, _), loaded in list(registry._LOADED.items()):
        if loaded.__name__ == module:
            return {"file": path, "class": name}
    if module in registry.plugin_modules().values():
        return {"module": f"{module}:{name}"}
    return {"python": f"{module}:{name}"}


def encode(value):
    """A constructor argument as JSON: numbers, strings, lists, tables, tensors, and the
    recipes of families or models; anything else is recorded by its repr only."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (torch.Tensor, np.ndarray)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        return {"__tensor__": array.tolist(), "dtype": str(array.dtype)}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return encode(value.item())
    if hasattr(value, "_construction"):
        return {"__object__": recipe(value)}
    return {"__unencodable__": repr(value)[:200]}


def recipe(obj) -> dict:
    """``{"origin": ..., "args": [...], "kwargs": {...}}`` of a model or a family."""
    args, kwargs = getattr(obj, "_construction", ((), {}))
    return {"origin": _origin(type(obj)), "args": encode(list(args)),
            "kwargs": encode(kwargs)}


def _decode(value, trust_model_code: bool):
    if isinstance(value, list):
        return [_decode(v, trust_model_code) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return torch.tensor(value["__tensor__"], dtype=DTYPES.get(value.get("dtype"),
                                                                   torch.float64))
    if "__float__" in value:
        return float(value["__float__"])
    if "__object__" in value:
        return rebuild(value["__object__"], trust_model_code)
    if "__unencodable__" in value:
        raise InputError(f"model: the saved model was built from {value['__unencodable__']}, "
                         "which cannot be saved as data; pass model= to emvi.load")
    return {k: _decode(v, trust_model_code) for k, v in value.items()}


def _class(origin: dict, trust_model_code: bool) -> type:
    from . import registry

    if "emvi" in origin:
        return registry.emvi_class(origin["emvi"])
    if "module" in origin:  # the entry-point policy is enforced before any import
        return registry.load_reference(origin["module"])
    if "file" in origin:
        if not trust_model_code:
            raise InputError(f"model: the fit's model class {origin['class']} lives in "
                             f"{origin['file']}; loading it runs that file's code: pass "
                             "trust_model_code=True (or --trust-model-code), or model=")
        return registry.load_reference(f"{origin['file']}:{origin['class']}")
    raise InputError(f"model: the fit's model class {origin.get('python')!r} was defined "
                     "outside emvi, a model file or an installed plugin (e.g. in a script); "
                     "pass model= to emvi.load")


def rebuild(saved: dict, trust_model_code: bool = False):
    """The model (or family) a :func:`recipe` describes."""
    if not isinstance(saved, dict) or "origin" not in saved:
        raise InputTypeError("model: expected a saved model recipe")
    cls = _class(saved["origin"], trust_model_code)
    args = _decode(saved.get("args", []), trust_model_code)
    kwargs = _decode(saved.get("kwargs", {}), trust_model_code)
    return cls(*args, **kwargs)
