"""Readable names for reports and figures: models, sweep values and axes."""

from __future__ import annotations

from ..models import registry

#: what a config key means on a figure's axis
AXIS_LABELS = {
    "model.k": "number of components",
    "data.n": "number of observations (n)",
    "data.seed": "data seed",
    "init.seed": "init seed",
    "init.restarts": "restarts",
    "em.max_iter": "EM max_iter",
    "vi.steps": "VI steps",
}
#: registered model names as words
MODEL_WORDS = {"kmeans": "K-means", "two_coins": "Two-coin binomial mixture"}


def axis_label(key: str) -> str:
    return AXIS_LABELS.get(key, key)


def model_name(name: str) -> str:
    """``gaussian_mixture`` -> ``Gaussian mixture``; ``file.py:Class`` -> ``Class``."""
    if registry.is_reference(name):
        return name.rpartition(":")[2]
    if name in MODEL_WORDS:
        return MODEL_WORDS[name]
    words = name.replace("_", " ")
    return words[:1].upper() + words[1:]


def values_text(values: list) -> str:
    """``[1, 2, 3, 4]`` -> ``1–4``; other lists as ``{a, b, c}``."""
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if ints and len(values) > 2 and list(values) == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return "{" + ", ".join(str(v) for v in values) + "}"


def model_title(options: dict, fixed=(), swept: dict | None = None) -> str:
    """``Gaussian mixture (k = 3, dim = 2, covariance = full)``; swept options as sets
    (``k ∈ 1–8``); list-valued options (given fixed values) are named as held fixed."""
    swept = swept or {}
    parts = []
    for key, value in options.items():
        if key == "name":
            continue
        if key in swept:
            parts.append(f"{key} ∈ {values_text(swept[key])}")
        elif isinstance(value, (bool, int, float, str)):
            parts.append(f"{key} = {value:g}" if isinstance(value, float) else
                         f"{key} = {value}")
    held = list(fixed)
    inside = ", ".join(parts)
    if held:
        names = " and ".join([", ".join(held[:-1]), held[-1]] if len(held) > 1 else held)
        inside += ("; " if inside else "") + f"{names} held fixed"
    inside = f" ({inside})" if inside else ""
    return f"{model_name(options['name'])}{inside}"
