"""Registered models by name, so configs and the CLI can build them."""

from __future__ import annotations

import difflib

REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a model buildable by its ``name``."""
    REGISTRY[cls.name] = cls
    return cls


def model_class(name: str) -> type:
    """The registered class called ``name``; ``ValueError`` with a suggestion otherwise."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"model: unknown model {name!r}{hint}; registered: {sorted(REGISTRY)}")
    return REGISTRY[name]


def build(name: str, **options):
    """Instantiate the registered model ``name`` with its hyper-parameters."""
    return model_class(name)(**options)
