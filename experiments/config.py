"""Experiment configs: TOML read with ``tomllib``, validated into typed experiments.

A config holds one experiment at its top level, or several under
``[experiments.NAME]``. An experiment has the sections ``model``, ``truth``,
``data``, ``init``, ``em``, ``vi``, ``compare`` and ``plots``. A list given
where a scalar is expected (``n = [100, 1000]``) is a sweep axis; the cells of
an experiment are the grid of all its axes. Configs are data: they are parsed,
never evaluated.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ..inference import options
from ..models import registry
from ..models.validation import InputError, InputTypeError
from . import store

CONFIG_DIR = Path(__file__).parent / "configs"
REQUIRED = object()


class ConfigError(InputError):
    """A user error in a config: says which file and key, in one line.

    A subclass of :class:`~models.validation.InputError`: the command answers it in one
    line with exit status 2, like every other error in what the user gave.
    """

    def __init__(self, source, key: str, message: str):
        self.source, self.key, self.message = str(source), key, message
        where = f"{key}: " if key else ""
        super().__init__(f"{self.source}: {where}{message}")


@dataclass(frozen=True)
class Field:
    """One config key: its type, default, allowed values and whether a list sweeps it."""

    kind: type | tuple
    default: Any = REQUIRED
    low: float | None = None
    choices: tuple | None = None
    sweep: bool = True
    open_low: bool = False
    high: float | None = None


def from_option(option: options.Option) -> Field:
    """A config field for a fitting option: the same type, range and default."""
    return Field(option.kind, option.default, low=option.low, choices=option.choices,
                 open_low=option.open_low, high=option.high)


SECTIONS: dict[str, dict[str, Field]] = {
    "data": {
        "n": Field(int, None, low=1, high=10**9),
        # a fraction of entries removed at random, or a table (see experiments/missing.py)
        "missing": Field(object, None),
        "seed": Field(int, 0, low=0, high=2**63 - 1),
        "assignments": Field(str, "sampled", choices=("sampled", "balanced")),
        "generator": Field(dict, None, sweep=False),
        "file": Field(str, None, sweep=False),
        "columns": Field(list, None, sweep=False),
        # sequence models (HMMs): simulated lengths, or how a file's rows form sequences
        "lengths": Field((list, str), None, sweep=False),
        "sequences": Field(int, None, low=1, high=10**7),
        "length": Field(int, None, low=1, high=10**9),
        "sequence": Field(str, None, sweep=False),
        # never hold the data whole: a mapped .npy (or folder of shards), or simulated
        # chunk by chunk; EM reads one chunk at a time (see experiments/stream.py)
        "stream": Field(bool, False, sweep=False),
    },
    # [init], [em] and [vi] are the Python API's options (one table: inference.options),
    # plus what only a config says: fitting a path at all, starting from given values
    "init": {
        **{name: from_option(option) for name, option in options.INIT.items()},
        "method": Field(str, "kmeans++", choices=options.INIT_METHODS + ("params",)),
        "params": Field(dict, None, sweep=False),
    },
    "em": {"enabled": Field(bool, True),
           **{name: from_option(option) for name, option in options.EM.items()},
           # a table: fit by online (stepwise) EM with these options (ONLINE_FIELDS)
           "online": Field(dict, None, sweep=False)},
    "vi": {"enabled": Field(bool, True),
           **{name: from_option(option) for name, option in options.VI.items()}},
    "compare": {"rtol": Field(float, 1e-6, low=0)},
    "plots": {
        "enabled": Field(bool, True),
        "iterations": Field(list, [0, 5, 20], sweep=False),
        "panels": Field(int, 4, low=1, high=50),
        "yscale": Field(str, "linear", choices=("linear", "log"), sweep=False),
    },
    # how sure the EM fit is (inference.uncertainty): observed-information standard errors,
    # and a bootstrap of that many replicates beside them
    "uncertainty": {
        "standard_errors": Field(bool, False),
        "level": Field(float, 0.95, low=0.0, open_low=True, high=1.0),
        "bootstrap": Field(int, 0, low=0, high=100_000),
        "bootstrap_kind": Field(str, "nonparametric", choices=("nonparametric", "parametric")),
        "seed": Field(int, 0, low=0, high=2**63 - 1),
    },
}
#: the keys of the table ``em.online`` (not swept: one online EM per cell)
ONLINE_FIELDS = {name: dataclasses.replace(from_option(option), sweep=False)
                 for name, option in options.ONLINE.items()}
EXPERIMENT_KEYS = ("description", "model", "truth") + tuple(SECTIONS)
#: run-wide keys: ``threads`` (torch threads; see experiments/threads.py for precedence) and
#: ``device`` (``cpu``, ``cuda``, ``cuda:N``: where the fits compute; ``--device`` wins)
TOP_KEYS = ("description", "threads", "device", "experiments") + EXPERIMENT_KEYS
#: smoke mode: small and quick, but every code path
SMOKE = {"n": 120, "max_iter": 15, "steps": 15, "restarts": 2, "axis": 2, "bootstrap": 5}


@dataclass
class Experiment:
    """One validated experiment; ``axes`` are its sweep axes ``[(key.path, values)]``."""

    name: str
    description: str
    model: dict
    truth: dict | None
    data: dict
    init: dict
    em: dict
    vi: dict
    compare: dict
    plots: dict
    uncertainty: dict
    axes: list = field(default_factory=list)
    #: smoke mode: at most this many rows of a data file
    max_rows: int | None = None
    #: where the fits compute (the run's ``device``; data and starts are made on the CPU)
    device: str = "cpu"

    def sections(self) -> dict:
        return {"model": self.model, "truth": self.truth, "data": self.data, "init": self.init,
                "em": self.em, "vi": self.vi, "compare": self.compare, "plots": self.plots,
                "uncertainty": self.uncertainty}

    def cells(self) -> list[tuple[str, dict, Experiment]]:
        """The grid: ``(cell id, {key.path: value}, experiment with those values)``."""
        if not self.axes:
            return [("all", {}, self)]
        keys = [key for key, _ in self.axes]
        out = []
        for combo in itertools.product(*(values for _, values in self.axes)):
            values = dict(zip(keys, combo))
            cell = copy.deepcopy(self)
            cell.axes = []
            for key, value in values.items():
                section, name = key.split(".", 1)
                getattr(cell, section)[name] = value
            ident = ",".join(f"{key.split('.', 1)[1]}={value}" for key, value in values.items())
            out.append((ident, values, cell))
        return out


@dataclass
class Config:
    """A whole config file: a name, a description and its experiments."""

    name: str
    source: str
    description: str
    experiments: list[Experiment]
    #: torch threads (``None``: auto; ``--threads`` and ``EMVI_THREADS`` take precedence)
    threads: int | None = None
    #: where the fits compute (``None``: the CPU; ``--device`` takes precedence)
    device: str | None = None

    def to_dict(self) -> dict:
        """The resolved config (defaults filled, sweeps kept as lists), ``None``s dropped."""
        def resolved(exp: Experiment) -> dict:
            body = {"description": exp.description, **copy.deepcopy(exp.sections())}
            for key, values in exp.axes:
                section, name = key.split(".", 1)
                body[section][name] = list(values)
            return _drop_none(body)

        threads = {} if self.threads is None else {"threads": self.threads}
        if self.device is not None:
            threads["device"] = self.device
        return {"description": self.description, **threads,
                "experiments": {e.name: resolved(e) for e in self.experiments}}


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(kind) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "a table"}
    if isinstance(kind, tuple):
        return " or ".join(_type_name(k) for k in kind)
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def check_value(value, spec: Field, source, key: str):
    """One scalar (or list/table) value against its field; returns the normalised value."""
    kind = spec.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(source, key, f"expected {_type_name(kind)}, got {value!r:.60}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(source, key, f"expected a finite number, got {value}")
    if spec.low is not None and (value < spec.low or (spec.open_low and value <= spec.low)):
        bound = f"> {spec.low}" if spec.open_low else f">= {spec.low}"
        raise ConfigError(source, key, f"expected a value {bound}, got {value}")
    if spec.high is not None and value > spec.high:
        raise ConfigError(source, key, f"expected a value <= {spec.high:g}, got {value}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(source, key, f"expected one of {list(spec.choices)}, got {value!r}"
                          + _suggest(str(value), spec.choices))
    return value


def _section(raw, fields: dict[str, Field], source, prefix: str, axes: list) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, prefix, f"expected a table, got {raw!r:.60}")
    out = {}
    for key in raw:
        if key not in fields:
            raise ConfigError(source, f"{prefix}.{key}",
                              "unknown key" + _suggest(key, fields) + f"; expected {list(fields)}")
    for key, spec in fields.items():
        path = f"{prefix}.{key}"
        if key not in raw:
            if spec.default is REQUIRED:
                raise ConfigError(source, path, "missing")
            out[key] = copy.deepcopy(spec.default)
            continue
        value = raw[key]
        if isinstance(value, list) and spec.sweep and spec.kind is not list:
            if not value:
                raise ConfigError(source, path, "a sweep needs at least one value")
            values = [check_value(v, spec, source, path) for v in value]
            axes.append((path, values))
            out[key] = values[0]
        else:
            out[key] = check_value(value, spec, source, path)
    return out


def model_options(name: str) -> dict[str, Any]:
    """Constructor options of a model class, with their defaults."""
    return registry.options(name)


def _model_section(raw, source, axes: list, base: Path) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(source, "model", "expected a table with at least `name`")
    if "name" not in raw:
        raise ConfigError(source, "model.name", "missing (the registered model to fit)")
    name = raw["name"]
    if not isinstance(name, str):
        raise ConfigError(source, "model.name", f"expected a string, got {name!r:.60}")
    try:
        if registry.is_reference(name):  # checked against the import policy, not imported
            name = registry.resolve_reference(name, base)
        options = model_options(name)
    except (InputError, InputTypeError) as exc:
        raise ConfigError(source, "model.name", str(exc).removeprefix("model: ")) from None
    out = {"name": name}
    for key, value in raw.items():
        if key == "name":
            continue
        if key not in options:
            raise ConfigError(source, f"model.{key}", f"unknown option of {name}"
                              + _suggest(key, options) + f"; expected {list(options)}")
        default = options[key]
        scalar = isinstance(default, (int, float, str)) and not isinstance(default, bool)
        if isinstance(value, list) and scalar:
            if not value:
                raise ConfigError(source, f"model.{key}", "a sweep needs at least one value")
            axes.append((f"model.{key}", value))
            value = value[0]
        out[key] = value
    return out


def build_model(options: dict, source, key: str = "model"):
    """Instantiate the configured model; constructor errors become config errors."""
    kwargs = {k: v for k, v in options.items() if k != "name"}
    try:
        return registry.build(options["name"], **kwargs)
    except (InputError, InputTypeError) as exc:
        raise ConfigError(source, key, str(exc).removeprefix("model: ")) from None


def _experiment(name: str, raw: dict, source, base: Path) -> Experiment:
    for key in raw:
        if key not in EXPERIMENT_KEYS:
            prefix = f"experiments.{name}." if name else ""
            raise ConfigError(source, prefix + key, "unknown key" + _suggest(key, EXPERIMENT_KEYS)
                              + f"; expected {list(EXPERIMENT_KEYS)}")
    axes: list = []
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(source, "description", "expected a string")
    model = _model_section(raw.get("model"), source, axes, base)
    sections = {s: _section(raw.get(s), f, source, s, axes) for s, f in SECTIONS.items()}
    if sections["em"]["online"] is not None:
        sections["em"]["online"] = _section(sections["em"]["online"], ONLINE_FIELDS, source,
                                            "em.online", axes)
    truth = raw.get("truth")
    if truth is not None and not isinstance(truth, dict):
        raise ConfigError(source, "truth", f"expected a table of values, got {truth!r:.60}")
    exp = Experiment(name, description, model, truth, axes=axes, **sections)
    _check_data_source(exp, source, base)
    folders: dict[str, str] = {}
    for ident, _, cell in exp.cells():  # every cell must build: catch errors before running
        check_cell(cell, source)
        folder = store.cell_dir(ident).casefold()
        if folder in folders:
            raise ConfigError(source, ", ".join(key for key, _ in axes), f"the sweep cells "
                              f"{folders[folder]!r:.60} and {ident!r:.60} would share one "
                              "folder: a sweep repeats a value")
        folders[folder] = ident
    return exp


def _shown(name: str) -> str:
    """A name as it can appear in a one-line message (control characters escaped)."""
    return name if name.isprintable() and len(name) <= 60 else repr(name)[:60]


def check_names(names: list[str], source, prefix: str) -> None:
    """Names that become folders: safe path components, not differing only in case."""
    seen: dict[str, str] = {}
    for name in names:
        problem = store.name_problem(name)
        if problem is not None:
            raise ConfigError(source, f"{prefix}{_shown(name)}", f"not usable as a folder "
                              f"name: {problem}")
        if name.casefold() in seen:
            raise ConfigError(source, f"{prefix}{_shown(name)}", f"differs only in case from "
                              f"{seen[name.casefold()]!r}: their results would share a folder")
        seen[name.casefold()] = name


def _check_data_source(exp: Experiment, source, base: Path) -> None:
    data = exp.data
    if data["file"] is not None:
        path = Path(data["file"])
        path = path if path.is_absolute() else (base / path)
        if path.is_dir():  # a folder of .npy shards: streamed (each shard checked as read)
            if not any(p.suffix == ".npy" for p in path.iterdir()):
                raise ConfigError(source, "data.file", f"no .npy shards in the folder {path}")
        elif not path.is_file():
            raise ConfigError(source, "data.file", f"no such file: {path}")
        elif path.suffix not in (".csv", ".npy"):
            raise ConfigError(source, "data.file", f"expected a .csv or .npy file, got {path.name}")
        data["file"] = str(path.resolve())
        if data["columns"] is not None and not all(isinstance(c, (str, int)) and not
                                                   isinstance(c, bool) for c in data["columns"]):
            raise ConfigError(source, "data.columns", "expected column names or indices")
    else:
        if exp.truth is None:
            raise ConfigError(source, "truth", "missing: simulated data need true parameters "
                              "(or give data.file)")
        if data["n"] is None and data["lengths"] is None and data["sequences"] is None:
            raise ConfigError(source, "data.n", "missing: how many observations to simulate")
    _check_sequence_keys(data, source)
    _check_stream(exp, source)
    if exp.init["method"] == "params" and exp.init["params"] is None:
        raise ConfigError(source, "init.params", "missing: init.method = 'params' needs values")


def _check_stream(exp: Experiment, source) -> None:
    """What a streamed cell cannot do: it reads float64 rows whole, never all at once."""
    from .stream import streams

    data = exp.data
    if not streams(data):
        return
    if data["file"] is not None and not (Path(data["file"]).is_dir()
                                         or data["file"].endswith(".npy")):
        raise ConfigError(source, "data.stream", "streams a .npy file or a folder of .npy "
                          "shards (memory-mapped), not a .csv")
    refused = [("data.columns", data["columns"] is not None),
               ("data.missing", data["missing"] is not None),
               ("data.lengths", any(data[k] is not None for k in
                                    ("lengths", "sequences", "length", "sequence"))),
               ("uncertainty.standard_errors", exp.uncertainty["standard_errors"]),
               ("uncertainty.bootstrap", exp.uncertainty["bootstrap"] > 0)]
    for key, bad in refused:
        if bad:
            raise ConfigError(source, key, "does not apply to streamed data (data.stream, or "
                              "a folder of shards): they are read chunk by chunk, never whole")
    if exp.vi["enabled"] and exp.vi["batch_size"] is None:
        raise ConfigError(source, "vi.batch_size", "missing: streamed data are fitted by "
                          "mini-batch VI (give vi.batch_size, or vi.enabled = false)")


def _check_sequence_keys(data: dict, source) -> None:
    """The sequence keys that go together (which model takes them: :func:`check_cell`)."""
    if (data["sequences"] is None) != (data["length"] is None):
        raise ConfigError(source, "data.sequences" if data["length"] is not None else
                          "data.length", "give data.sequences and data.length together")
    lengths = data["lengths"]
    if data["file"] is None:
        if data["sequence"] is not None or isinstance(lengths, str):
            raise ConfigError(source, "data.sequence" if data["sequence"] is not None else
                              "data.lengths", "a file of lengths or a sequence column needs "
                              "data.file")
        if lengths is not None and data["sequences"] is not None:
            raise ConfigError(source, "data.lengths", "give data.lengths or data.sequences "
                              "and data.length, not both")
    elif data["sequences"] is not None or data["n"] is not None:
        key = "data.sequences" if data["sequences"] is not None else "data.n"
        raise ConfigError(source, key, "sizes of simulated data do not apply to data.file")
    elif data["sequence"] is not None and (lengths is not None
                                           or not data["file"].endswith(".csv")):
        raise ConfigError(source, "data.sequence", "a sequence column applies to a .csv file "
                          "without data.lengths")
    if isinstance(lengths, list) and (not lengths or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in lengths)):
        raise ConfigError(source, "data.lengths", f"expected whole numbers >= 1, got "
                          f"{lengths!r:.60}")


def takes_sequences(model) -> bool:
    """Whether a model's data are sequences (it counts its units itself, as an HMM)."""
    from ..models.base import LatentModel

    return type(model).n_units is not LatentModel.n_units


def sequence_keys(data: dict) -> list[str]:
    """The sequence keys a data section sets (only sequence models take them)."""
    return [f"data.{k}" for k in ("lengths", "sequences", "length", "sequence")
            if data[k] is not None]


def simulated_lengths(data: dict) -> list[int] | None:
    """Lengths of simulated sequences: ``data.lengths``, or ``data.sequences`` times
    ``data.length`` (``None``: rows, or one sequence of ``data.n``)."""
    if isinstance(data["lengths"], list):
        return list(data["lengths"])
    if data["sequences"] is not None:
        return [data["length"]] * data["sequences"]
    return None


def simulated_size(data: dict) -> int:
    """Observations (steps) that simulating ``data`` gives."""
    lengths = simulated_lengths(data)
    return data["n"] if lengths is None else sum(lengths)


def check_cell(cell: Experiment, source) -> None:
    """Build the cell's models and parameters once, so bad values fail at load time."""
    from .missing import check_spec

    check_spec(cell.data["missing"], source)
    model = build_model(cell.model, source)
    keys = sequence_keys(cell.data)
    if cell.data["stream"] and takes_sequences(model):
        raise ConfigError(source, "data.stream", f"{cell.model['name']} takes sequences; "
                          "streamed data are rows")
    if keys and not takes_sequences(model):
        raise ConfigError(source, keys[0], f"{cell.model['name']} takes rows, not sequences")
    if cell.truth is not None:
        generator = generator_model(cell, source)
        try:
            generator.check_params(cell.truth, "truth")
        except (InputError, InputTypeError) as exc:
            raise ConfigError(source, "", str(exc)) from None
        if cell.data["file"] is None and simulated_size(cell.data) < model.k:
            raise ConfigError(source, "data.n", f"expected at least k={model.k} observations, "
                              f"got {simulated_size(cell.data)}")
    if cell.init["params"] is not None:
        try:
            model.check_params(cell.init["params"], "init.params")
        except (InputError, InputTypeError) as exc:
            raise ConfigError(source, "", str(exc)) from None
    if cell.uncertainty["level"] >= 1:
        raise ConfigError(source, "uncertainty.level", "expected a number below 1")
    if cell.uncertainty["bootstrap"] == 1:
        raise ConfigError(source, "uncertainty.bootstrap", "expected 0 (none) or at least 2 "
                          "replicates")
    for key in cell.plots["iterations"]:
        if not isinstance(key, int) or isinstance(key, bool) or key < 0:
            raise ConfigError(source, "plots.iterations", f"expected iteration numbers >= 0, "
                              f"got {key!r}")


def generator_model(cell: Experiment, source):
    """The model that simulates the data: the fitted one, with ``data.generator`` overrides."""
    options = dict(cell.model)
    generator = cell.data.get("generator") or {}
    if not isinstance(generator, dict):
        raise ConfigError(source, "data.generator", "expected a table of model options")
    known = model_options(options["name"])
    for key in generator:
        if key not in known:
            raise ConfigError(source, f"data.generator.{key}", "unknown option"
                              + _suggest(key, known))
    options.update(generator)
    return build_model(options, source, "data.generator")


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``key.path=value`` -> (path, value); the value is read as TOML, else as a string."""
    if "=" not in text:
        raise ConfigError("--set", text, "expected key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError("--set", text, "expected key.path=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def check_override(keys: list[str], raw: dict, multi: bool) -> None:
    """Refuse an override whose key is unknown, naming the key as the user wrote it."""
    written = ".".join(keys)
    rest = keys
    if keys[0] == "experiments":
        if not multi:
            raise ConfigError("--set", written, "this config has no [experiments.NAME] "
                              "tables; give the key without 'experiments.'")
        bodies = raw.get("experiments")
        names = list(bodies) if isinstance(bodies, dict) else []
        if len(keys) < 3 or keys[1] not in names:
            raise ConfigError("--set", written, "expected experiments.NAME.key with NAME one "
                              f"of {names}" + _suggest(keys[1] if len(keys) > 1 else "", names))
        rest = keys[2:]
    elif keys in (["description"], ["threads"], ["device"]):
        return
    head = rest[0]
    if head not in EXPERIMENT_KEYS:
        raise ConfigError("--set", written, f"unknown key {head!r}"
                          + _suggest(head, EXPERIMENT_KEYS) + f"; expected {list(EXPERIMENT_KEYS)}")
    if head in SECTIONS and len(rest) > 1:
        fields = SECTIONS[head]
        if rest[1] not in fields:
            raise ConfigError("--set", written, f"unknown key {rest[1]!r} in [{head}]"
                              + _suggest(rest[1], fields) + f"; expected {list(fields)}")
        if len(rest) > 2 and fields[rest[1]].kind is not dict:
            raise ConfigError("--set", written, f"{head}.{rest[1]} is not a table")


def _apply(raw: dict, path: list[str], value, source: str) -> None:
    node = raw
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(source, ".".join(path), f"{part!r} is not a table")
        node = child
    node[path[-1]] = value


def resolve_path(config: str) -> Path:
    """A config path, or the name of a shipped config (``seeds`` -> configs/seeds.toml)."""
    path = Path(config)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / (config if config.endswith(".toml") else f"{config}.toml")
    if shipped.is_file():
        return shipped
    names = [p.stem for p in sorted(CONFIG_DIR.glob("*.toml"))]
    raise ConfigError(config, "", "no such config file or shipped config"
                      + _suggest(path.stem, names) + f"; shipped: {names}")


def load(config: str, overrides: list[str] = (), smoke: bool = False) -> Config:
    """Read, override, validate and (optionally) shrink a config.

    Raises:
        ConfigError: one line naming the file and the key.
    """
    path = resolve_path(config)
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    for key in raw:
        if key not in TOP_KEYS:
            raise ConfigError(source, key, "unknown key" + _suggest(key, TOP_KEYS)
                              + f"; expected {list(TOP_KEYS)}")
    multi = "experiments" in raw
    if multi and any(k in raw for k in EXPERIMENT_KEYS if k != "description"):
        raise ConfigError(source, "experiments", "give experiments either at the top level or "
                          "under [experiments.NAME], not both")
    problem = store.name_problem(path.stem)
    if problem is not None:
        raise ConfigError(source, "", f"the file name {_shown(path.stem)!r} names the run "
                          f"folder, and is not usable as a folder name: {problem}; rename "
                          "the file")
    for text in overrides:
        keys, value = parse_assignment(text)
        check_override(keys, raw, multi)
        if multi and keys[0] not in ("experiments", "threads", "device"):
            for body in raw["experiments"].values():
                if isinstance(body, dict):
                    _apply(body, keys, value, "--set")
        else:
            _apply(raw, keys, value, "--set")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(source, "description", "expected a string")
    threads = _threads(raw.get("threads"), source)
    device = _device(raw.get("device"), source)
    if multi:
        bodies = raw["experiments"]
        if not isinstance(bodies, dict) or not bodies:
            raise ConfigError(source, "experiments", "expected one or more [experiments.NAME]")
        check_names(list(bodies), source, "experiments.")
        for name, body in bodies.items():
            if not isinstance(body, dict):
                raise ConfigError(source, f"experiments.{name}", "expected a table")
        experiments = [_experiment_in(name, body, source, path.parent)
                       for name, body in bodies.items()]
    else:
        body = {k: v for k, v in raw.items() if k not in ("description", "threads", "device")}
        body.setdefault("description", description)
        experiments = [_experiment(path.stem, body, source, path.parent)]
    cfg = Config(path.stem, source, description, experiments, threads, device)
    place(cfg, device)
    return shrink(cfg) if smoke else cfg


def _threads(value, source) -> int | None:
    """The top-level ``threads`` key: a whole number >= 1, or ``"auto"`` (``None``)."""
    from .threads import parse

    if value is None:
        return None
    try:
        return parse(value, "threads")
    except InputError as exc:
        raise ConfigError(source, "threads", str(exc).removeprefix("threads: ")) from None


def _device(value, source) -> str | None:
    """The top-level ``device`` key, checked for its form (whether this machine has it is
    checked when the run starts: a config may be written for another machine)."""
    from ..inference.device import parse

    if value is None:
        return None
    try:
        return parse(value, "device")
    except InputError as exc:
        raise ConfigError(source, "device", str(exc).removeprefix("device: ")) from None


def place(cfg: Config, device: str | None) -> None:
    """Every experiment computes on ``device`` (``None``: the CPU)."""
    for exp in cfg.experiments:
        exp.device = device or "cpu"


def _experiment_in(name, body, source, base):
    try:
        return _experiment(name, body, source, base)
    except ConfigError as exc:
        key = f"experiments.{name}.{exc.key}" if exc.key and not exc.key.startswith(
            "experiments.") else exc.key
        raise ConfigError(exc.source, key, exc.message) from None


def shrink(cfg: Config) -> Config:
    """Smoke mode: fewer points, iterations, steps, restarts and sweep values."""
    for exp in cfg.experiments:
        exp.axes = [(key, values[: SMOKE["axis"]]) for key, values in exp.axes]
        k = build_model(exp.model, cfg.source).k
        cap = max(SMOKE["n"], 10 * k)
        if exp.data["n"] is not None:
            exp.data["n"] = min(exp.data["n"], cap)
        _shrink_sequences(exp, cap)
        exp.axes = [(key, sorted({min(v, cap) for v in values}) if key == "data.n" else values)
                    for key, values in exp.axes]
        exp.max_rows = cap
        exp.em["max_iter"] = min(exp.em["max_iter"], SMOKE["max_iter"])
        exp.vi["steps"] = min(exp.vi["steps"], SMOKE["steps"])
        exp.init["restarts"] = min(exp.init["restarts"], SMOKE["restarts"])
        exp.uncertainty["bootstrap"] = min(exp.uncertainty["bootstrap"], SMOKE["bootstrap"])
    return cfg


def _shrink_sequences(exp: Experiment, cap: int) -> None:
    """Smoke mode for simulated sequences: at most 4 of them, ``cap`` steps in all."""
    data = exp.data
    if isinstance(data["lengths"], list):
        kept = data["lengths"][:4]
        data["lengths"] = [min(v, max(1, cap // len(kept))) for v in kept]
    if data["sequences"] is not None:
        data["sequences"] = min(data["sequences"], 4)
        data["length"] = min(data["length"], max(1, cap // data["sequences"]))
    exp.axes = [(key, sorted({min(v, 4) for v in values}) if key == "data.sequences" else
                 sorted({min(v, max(1, cap // 4)) for v in values}) if key == "data.length"
                 else values) for key, values in exp.axes]
