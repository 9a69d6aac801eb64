"""``emvi predict RUN DATA.csv``: a run's fitted model applied to new rows.

Writes one line per row of the CSV: the columns the model does not read (ids, names,
anything else) as they were, then the most probable component and every component's
posterior probability. The fitted model is the one the run kept
(``cells/<experiment>/<cell>/fit_<method>.pt``); its columns are the ones the run
read (``data.columns`` of its config), or, for a run on simulated data, the columns
given by ``--columns`` (default: all of them).
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from . import store
from .config import ConfigError
from .data import parse_number


def latest_run(path: Path) -> Path:
    """``path`` itself when it is a finished run, else its newest finished run
    (``runs/<config>`` holds one folder per run, named by start time)."""
    path = Path(path)
    if (path / "metrics.json").is_file():
        return path
    runs = sorted(p for p in path.glob("*") if (p / "metrics.json").is_file()) if (
        path.is_dir()) else []
    if not runs:
        raise ConfigError(str(path), "", "not a finished run directory (no metrics.json), "
                          "nor a folder of runs")
    return runs[-1]


def _pick(options: list[str], chosen: str | None, what: str, source: str) -> str:
    if chosen is not None:
        if chosen not in options:
            raise ConfigError(source, f"--{what}", f"no {what} {chosen!r}; the run has {options}")
        return chosen
    if len(options) != 1:
        raise ConfigError(source, f"--{what}", f"the run has {len(options)}: {options}; name "
                          f"one with --{what}")
    return options[0]


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise ConfigError(str(path), "", "no such data file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc}") from None
    if len(rows) < 2:
        raise ConfigError(str(path), "", "expected a header row and at least one data row")
    return [name.strip() for name in rows[0]], rows[1:]


def predict_run(run: Path, data: Path, out: Path | None = None, method: str = "em",
                experiment: str | None = None, cell: str | None = None,
                columns: list[str] | None = None, trust_model_code: bool = False) -> str:
    """Label the rows of ``data`` with the fit a finished run kept; returns the CSV text
    (and writes it atomically to ``out`` when given)."""
    import torch

    from ..inference.persist import load_fit

    run = latest_run(run)
    metrics = store.read_json(run / "metrics.json")
    source = str(run)
    experiments = metrics.get("experiments") or {}
    name = _pick(sorted(experiments), experiment, "experiment", source)
    cells = [c["cell"] for c in experiments[name]["cells"]]
    ident = _pick(cells, cell, "cell", source)
    fit_file = store.cell_path(run, name, ident) / f"fit_{method}.pt"
    if not fit_file.is_file():
        raise ConfigError(source, "--method", f"the run kept no {method} fit for {name} "
                          f"{ident} (was that path enabled?)")
    result = next(c for c in experiments[name]["cells"] if c["cell"] == ident)
    fit = load_fit(fit_file, trust_model_code=trust_model_code)
    header, rows = read_rows(Path(data))
    wanted = columns or (result.get("data") or {}).get("columns")
    if wanted is None:
        wanted = header
    if all(isinstance(c, int) for c in wanted):
        wanted = [header[c] for c in wanted if 0 <= c < len(header)]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ConfigError(str(data), "columns", f"the fitted model reads columns {wanted}; "
                          f"{missing} not in this file (it has {header})")
    index = [header.index(c) for c in wanted]
    keep = [i for i in range(len(header)) if i not in index]
    values = []
    for line, row in enumerate(rows, start=2):
        try:
            values.append([parse_number(row[i]) for i in index])
        except (ValueError, IndexError):
            raise ConfigError(str(data), "columns", f"line {line}: expected numbers in "
                              f"{wanted}") from None
    table = torch.tensor(values, dtype=torch.float64)
    try:
        probabilities = fit.predict_proba(table if table.shape[1] > 1 else table[:, 0])
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(data), "columns", str(exc)) from None
    labels = probabilities.argmax(-1)
    names = [header[i] for i in keep] + ["label"] + [
        f"p_{j}" for j in range(probabilities.shape[-1])]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row, label, probs in zip(rows, labels.tolist(), probabilities.tolist()):
        writer.writerow([row[i] if i < len(row) else "" for i in keep] + [label]
                        + [f"{p:.17g}" for p in probs])
    text = buffer.getvalue()
    if out is not None:
        out = Path(out)
        store.write_atomic(out, text, out.resolve().parent)
    return text


def main_predict(args) -> int:
    text = predict_run(Path(args.run_dir), Path(args.data), args.out, args.method,
                       args.experiment, args.cell,
                       args.columns.split(",") if args.columns else None,
                       args.trust_model_code)
    if args.out is None:
        sys.stdout.write(text)
    else:
        print(f"labels: {args.out}")
    return 0
