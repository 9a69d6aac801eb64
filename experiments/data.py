"""Data for an experiment: simulated by the model's own Pyro program, or read from a file.

Files are parsed, never evaluated: CSV through the ``csv`` module, ``.npy``
with ``allow_pickle=False``. An empty CSV cell, ``NA`` or ``N/A`` is a missing entry
(NaN), which models that take missing values marginalise and the others refuse.
"""

from __future__ import annotations

import csv
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
