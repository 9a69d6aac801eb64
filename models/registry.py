"""Registered models by name, and user models loaded from the code a config names.

A model name is either a registered name (``"gaussian_mixture"``) or a reference
to a class in the user's own code. The class is either a component
:class:`~models.families.Family` (the model is then ``Mixture(family, k)``) or a whole
model (a :class:`~models.base.LatentModel` subclass, e.g. a
:class:`~models.pyro_model.PyroModel`).

Which code a reference may import (checked before anything is imported):

- ``"path/to/my_models.py:Class"``: a ``.py`` file. Named in a config, the file must lie
  inside the config's own folder tree (resolved, so a symbolic link out of the tree is
  refused); named from Python, any file the caller names.
- ``"package.module:Class"``: an installed module, only one that a distribution
  advertises in the entry-point group ``emvi.models`` (the Python plugin convention)::

      [project.entry-points."emvi.models"]
      my_models = "my_package.models"

  Then ``"my_package.models:Class"`` (or ``"my_models:Class"``, by the entry point's
  name) works; naming any other module is refused before it is imported.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import sys
from importlib.metadata import entry_points
from pathlib import Path

from .validation import InputError

REGISTRY: dict[str, type] = {}
_LOADED: dict[tuple, object] = {}
#: the packaging entry-point group through which installed modules offer models
ENTRY_POINT_GROUP = "emvi.models"


def register(cls: type) -> type:
    """Class decorator: make a model buildable by its ``name``."""
    REGISTRY[cls.name] = cls
    return cls


def is_reference(name: str) -> bool:
    """``module:Class`` or ``file.py:Class`` rather than a registered name."""
    return ":" in name


def _split(name: str) -> tuple[str, str, bool]:
    """``(file or module, class name, is a file)``; refuses a malformed reference."""
    where, _, attr = name.rpartition(":")
    if not where or not attr or "\0" in name:
        raise InputError(f"model: expected 'file.py:Class' or 'module:Class', got {name!r:.80}")
    return where, attr, where.endswith(".py") or "/" in where or "\\" in where


def plugin_modules() -> dict[str, str]:
    """``{entry point name: module}`` of the installed ``emvi.models`` entry points.

    Reads the installed distributions' metadata only; imports nothing.
    """
    return {ep.name: ep.module for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _advertised(module: str) -> str:
    """The module a ``module:Class`` reference may import; ``InputError`` if not advertised."""
    plugins = plugin_modules()
    if module in plugins.values():
        return module
    if module in plugins:
        return plugins[module]
    known = sorted(set(plugins.values()))
    raise InputError(f"model: module {module!r} does not offer emvi models: only modules "
                     f"advertised in the entry-point group {ENTRY_POINT_GROUP!r} are imported "
                     f"(installed: {known}), or name a .py file in the config's folder")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def resolve_reference(name: str, base: Path | None = None) -> str:
    """Check a reference against the import policy, importing nothing; its canonical form.

    Args:
        name: ``file.py:Class`` or ``module:Class``.
        base: the folder of the config that names it. A file must lie inside this folder
            tree (after resolving symbolic links); a relative file is read from it.
            ``None``: named from Python, any file (relative to the working directory).

    Returns:
        ``/absolute/file.py:Class`` or ``module:Class`` (an entry point's name replaced
        by its module).

    Raises:
        InputError: a malformed reference, a file outside the config's folder tree, a
            module not advertised in the ``emvi.models`` entry-point group.
    """
    where, attr, is_file = _split(name)
    if not is_file:
        return f"{_advertised(where)}:{attr}"
    path = Path(where).expanduser()
    if base is None:
        return f"{path.resolve()}:{attr}"
    folder = Path(base).resolve()
    resolved = (path if path.is_absolute() else folder / path).resolve()
    if not _inside(resolved, folder):
        raise InputError(f"model: {where!r} lies outside the config's folder {str(folder)!r} "
                         f"(resolved to {str(resolved)!r}): a config may import model code "
                         "only from its own folder tree")
    return f"{resolved}:{attr}"


def user_files() -> set[str]:
    """The user model files imported so far (for telling their errors from emvi's)."""
    return {path for path, _ in _LOADED}


def _import_file(path: Path):
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _LOADED:
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        module_name = f"emvi_user_{path.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the user's code: report it in one line
            del sys.modules[module_name]
            raise InputError(f"model: importing {path} failed: {type(exc).__name__}: "
                             f"{exc}") from None
        _LOADED[key] = module
    return _LOADED[key]


def load_reference(name: str) -> type:
    """The class a ``file.py:Class`` or ``package.module:Class`` reference names.

    A module is imported only when it is advertised in the ``emvi.models`` entry-point
    group; a file is imported as named (a config's references are checked against its
    folder by :func:`resolve_reference` first).
    """
    where, attr, is_file = _split(name)
    if is_file:
        path = Path(where).expanduser()
        if not path.is_file():
            raise InputError(f"model: no such file {str(path)!r}")
        module = _import_file(path.resolve())
    else:
        where = _advertised(where)  # before any of its code runs
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise InputError(f"model: cannot import module {where!r}: "
                             f"{type(exc).__name__}: {exc}") from None
    if not hasattr(module, attr):
        classes = [n for n, v in vars(module).items() if inspect.isclass(v)
                   and v.__module__ == module.__name__]
        close = difflib.get_close_matches(attr, classes, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"model: no class {attr!r} in {where}{hint}; it defines {classes}")
    cls = getattr(module, attr)
    check_contract(cls, name)
    return cls


def check_contract(cls, name: str) -> None:
    """A user class must be a complete Family or a LatentModel with a program."""
    from .base import LatentModel, missing_members
    from .families.base import Family

    if not inspect.isclass(cls) or not issubclass(cls, (Family, LatentModel)):
        raise InputError(f"model: {name} does not meet the model contract: expected a "
                         "subclass of emvi.Family or emvi.LatentModel (e.g. emvi.PyroModel)")
    missing = missing_members(cls)
    if missing:
        raise InputError(f"model: {name} does not meet the model contract: it does not "
                         f"define {', '.join(missing)}")


def model_class(name: str) -> type:
    """The class called ``name`` (registered or referenced); ``ValueError`` otherwise."""
    if is_reference(name):
        return load_reference(name)
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"model: unknown model {name!r}{hint}; registered: {sorted(REGISTRY)}")
    return REGISTRY[name]


def options(name: str) -> dict:
    """The options a model takes, with their defaults (a family gets ``k`` and ``weights``)."""
    from .families.base import Family

    cls = model_class(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    found = {p.name: p.default for p in params
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if issubclass(cls, Family):
        return {"k": 2, "weights": None, **found}
    return found


def build(name: str, **kwargs):
    """Instantiate the model ``name`` with its options.

    For a family, ``k`` (default 2) and ``weights`` (fixed mixing weights, default
    learned) go to :class:`~models.mixture.Mixture`; the rest to the family.
    """
    from .families.base import Family
    from .mixture import Mixture

    cls = model_class(name)
    if issubclass(cls, Family):
        k = kwargs.pop("k", 2)
        weights = kwargs.pop("weights", None)
        return Mixture(cls(**kwargs), k, fixed=None if weights is None else {"weights": weights})
    return cls(**kwargs)


def emvi_class(reference: str) -> type:
    """One of emvi's own classes by ``emvi.module:Class`` (a saved fit's model); any other
    module is refused before it is imported."""
    module, _, name = reference.partition(":")
    if not (module == "emvi" or module.startswith("emvi.")) or not name:
        raise InputError(f"model: {reference!r} is not one of emvi's classes")
    try:
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        raise InputError(f"model: emvi has no class {reference!r} (saved by another "
                         "version?)") from None
    return found
