"""Data for an experiment: simulated by the model's own Pyro program, or read from a file.

Files are parsed, never evaluated: CSV through the ``csv`` module, ``.npy``
with ``allow_pickle=False``. An empty CSV cell, ``NA`` or ``N/A`` is a missing entry
(NaN), which models that take missing values marginalise and the others refuse.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np

from ..models.validation import InputError, InputTypeError
from .config import ConfigError

#: a number as a CSV cell may hold it: ASCII digits, one optional sign, decimal point and
#: exponent (Python's float() would also take "1_000" and non-ASCII digits)
NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*|\s*[+-]?(nan|inf|infinity)\s*",
                    re.IGNORECASE | re.ASCII)
#: a CSV cell that marks a missing entry (read as NaN; the model decides whether it may)
MISSING = re.compile(r"\s*(|na|n/a)\s*", re.IGNORECASE | re.ASCII)


def read_table(path: str, columns, source, max_rows: int | None = None) -> np.ndarray:
    """``(n, c)`` float array from a CSV (named columns) or ``.npy`` (column indices) file."""
    path = Path(path)
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ConfigError(source, "data.file", f"cannot read {path.name}: {exc}") from None
        if not isinstance(array, np.ndarray):  # np.load opens a zip (.npz) archive too
            getattr(array, "close", lambda: None)()
            raise ConfigError(source, "data.file", f"{path.name} is an .npz archive (a zip "
                              "of arrays), not one .npy array: save the data with numpy.save")
        if array.dtype.kind not in "biuf":
            raise ConfigError(source, "data.file", f"expected numbers in {path.name}, "
                              f"got dtype {array.dtype}")
        array = array.reshape(-1, 1) if array.ndim == 1 else array
        if array.ndim != 2:
            raise ConfigError(source, "data.file", f"expected a 1-D or 2-D array, "
                              f"got shape {array.shape}")
        if columns is not None:
            if not all(isinstance(c, int) for c in columns):
                raise ConfigError(source, "data.columns", ".npy files have no column names; "
                                  "give column indices")
            bad = [c for c in columns if not -array.shape[1] <= c < array.shape[1]]
            if bad:
                raise ConfigError(source, "data.columns", f"no column {bad[0]} in "
                                  f"{array.shape[1]} columns")
            array = array[:, columns]
        return array[:max_rows].astype(np.float64)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:  # drops a BOM
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "data.file", f"cannot read {path.name}: {exc}") from None
    if len(rows) < 2:
        raise ConfigError(source, "data.file", f"expected a header row and data in {path.name}")
    header = [h.strip() for h in rows[0]]
    if columns is None:
        index = list(range(len(header)))
    else:
        index = []
        for c in columns:
            if isinstance(c, int):
                if not 0 <= c < len(header):
                    raise ConfigError(source, "data.columns", f"no column {c} in {path.name}")
                index.append(c)
            elif c in header:
                index.append(header.index(c))
            else:
                raise ConfigError(source, "data.columns", f"no column {c!r} in {path.name}; "
                                  f"columns: {header}")
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)][:max_rows]
    out = np.empty((len(body), len(index)))
    for i, row in enumerate(body):
        for j, col in enumerate(index):
            try:
                if MISSING.fullmatch(row[col]):
                    out[i, j] = np.nan
                    continue
                if not NUMBER.fullmatch(row[col]):
                    raise ValueError(row[col])
                out[i, j] = float(row[col])
            except (ValueError, IndexError):
                value = row[col] if col < len(row) else "<missing>"
                where = f"{path.name} line {i + 2}, column {header[col]!r}"
                raise ConfigError(source, "data.file", f"{where}: expected a number, "
                                  f"got {value!r:.30}") from None
    return out


def as_model_data(model, array: np.ndarray, source):
    """Shape a table for the model: one column becomes ``(n,)`` for scalar observations."""
    try:
        return model.check_data(array)
    except (InputError, InputTypeError) as first:
        error = first
        if array.ndim == 2 and array.shape[1] == 1:
            try:
                return model.check_data(array[:, 0])
            except (InputError, InputTypeError) as second:  # the column was right: its values
                error = second
        raise ConfigError(source, "data.file", str(error)) from None


def data_columns(path: str | None, columns) -> list | None:
    """The names (CSV) or indices (``.npy``) of the columns a model reads from ``path``;
    ``None`` for simulated data. ``emvi predict`` reads the same columns of new data."""
    if path is None:
        return None
    if columns is not None:
        return list(columns)
    if Path(path).suffix == ".npy":
        return None  # every column, in order
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), [])
    return [name.strip() for name in header]


def parse_number(text: str) -> float:
    """One CSV cell as a number: plain ASCII decimals only (``ValueError`` otherwise)."""
    if not NUMBER.fullmatch(text):
        raise ValueError(text)
    return float(text)


def read_sequences(data: dict, source, max_rows: int | None = None) -> list[np.ndarray]:
    """A file's rows as sequences, ``[(T_i, c)]``: cut by ``data.lengths`` (a list, or a
    ``.npy``/``.csv``/``.txt`` file of whole numbers), grouped by the CSV column
    ``data.sequence`` (rows of one id, in file order), or all rows as one sequence."""
    path, sequence, lengths = Path(data["file"]), data["sequence"], data["lengths"]
    if sequence is None:
        table = read_table(data["file"], data["columns"], source, max_rows)
        if lengths is None:
            return [table]
        lengths = _read_lengths(lengths, path.parent, source)
        if max_rows is not None:  # smoke mode: the sequences that the first rows hold
            lengths = _truncate(lengths, len(table))
        if sum(lengths) != len(table):
            raise ConfigError(source, "data.lengths", f"the lengths add up to {sum(lengths)} "
                              f"steps, but {path.name} has {len(table)} rows")
        return np.split(table, np.cumsum(lengths)[:-1])
    header = _header(path, source)
    if sequence not in header:
        raise ConfigError(source, "data.sequence", f"no column {sequence!r} in {path.name}; "
                          f"columns: {header}")
    columns = data["columns"]
    if columns is None:
        columns = [h for h in header if h != sequence]
    elif sequence in columns or header.index(sequence) in columns:
        raise ConfigError(source, "data.columns", f"the sequence column {sequence!r} is not "
                          "an observation")
    table = read_table(data["file"], columns, source, max_rows)
    ids = _column(path, header.index(sequence), len(table))
    order: dict[str, list[int]] = {}
    for row, key in enumerate(ids):
        order.setdefault(key.strip(), []).append(row)
    return [table[rows] for rows in order.values()]


def _header(path: Path, source) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            first = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "data.file", f"cannot read {path.name}: {exc}") from None
    return [h.strip() for h in first]


def _column(path: Path, index: int, rows: int) -> list[str]:
    """The first ``rows`` non-empty rows' cells of column ``index`` (as :func:`read_table`
    reads them)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        body = [r for r in list(csv.reader(handle))[1:] if any(cell.strip() for cell in r)]
    return [r[index] if index < len(r) else "" for r in body[:rows]]


def _read_lengths(lengths, folder: Path, source) -> list[int]:
    if isinstance(lengths, list):
        return lengths
    path = Path(lengths)
    path = path if path.is_absolute() else folder / path
    if not path.is_file():
        raise ConfigError(source, "data.lengths", f"no such file: {path}")
    if path.suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ConfigError(source, "data.lengths", f"cannot read {path.name}: {exc}") from None
    else:
        try:
            text = path.read_text(encoding="utf-8").replace(",", " ").split()
            values = np.array([float(v) if NUMBER.fullmatch(v) else math.nan for v in text])
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(source, "data.lengths", f"cannot read {path.name}: {exc}") from None
    values = np.asarray(values).reshape(-1)
    if (values.size == 0 or values.dtype.kind not in "biuf" or not np.all(np.isfinite(values))
            or np.any(values < 1) or np.any(values != np.round(values))):
        raise ConfigError(source, "data.lengths", f"expected whole numbers >= 1 in {path.name}")
    return [int(v) for v in values]


def _truncate(lengths: list[int], rows: int) -> list[int]:
    out, total = [], 0
    for v in lengths:
        if total >= rows:
            break
        out.append(min(v, rows - total))
        total += out[-1]
    return out


def as_sequences(model, parts: list[np.ndarray], source):
    """Sequences for the model, a one-column table giving scalar steps."""
    if all(p.ndim == 2 and p.shape[1] == 1 for p in parts):
        try:
            return model.check_data([p[:, 0] for p in parts])
        except (InputError, InputTypeError):
            pass
    try:
        return model.check_data(parts)
    except (InputError, InputTypeError) as exc:
        raise ConfigError(source, "data.file", str(exc)) from None
