"""Run directories on disk: atomic writes, per-cell results, provenance.

A run is written into ``<root>/<config>/<timestamp>.partial/`` and renamed to
``<timestamp>/`` only when complete. Each finished sweep cell is itself renamed
into place under ``cells/``, so an interruption keeps every finished cell and
``--resume`` finishes only what is missing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

PARTIAL = ".partial"


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write a file so that readers see either nothing or all of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(tmp, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: Path, value) -> None:
    write_atomic(path, json.dumps(value, indent=2, sort_keys=False, allow_nan=True) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def csv_text(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return (rows[0], rows[1:]) if rows else ([], [])


def new_run(root: Path, name: str) -> Path:
    """A fresh ``<root>/<name>/<timestamp>.partial`` directory."""
    base = Path(root) / name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        stem = stamp if i == 0 else f"{stamp}-{i}"
        if not (base / stem).exists() and not (base / (stem + PARTIAL)).exists():
            path = base / (stem + PARTIAL)
            path.mkdir(parents=True)
            return path
    raise RuntimeError(f"cannot find a free run directory under {base}")


def finish(partial: Path) -> Path:
    """Rename a complete ``.partial`` run to its final name."""
    final = partial.with_name(partial.name.removesuffix(PARTIAL))
    os.replace(partial, final)
    return final


def cell_path(run: Path, experiment: str, cell: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "=,.-_+" else "_" for c in cell)
    return run / "cells" / experiment / safe


def save_cell(run: Path, experiment: str, cell: str, result: dict, history: str,
              arrays: dict[str, np.ndarray]) -> None:
    """Write one finished cell into a temporary directory, then rename it into place."""
    final = cell_path(run, experiment, cell)
    tmp = final.with_name(f".{final.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write_json(tmp / "result.json", result)
    write_atomic(tmp / "history.csv", history)
    with open(tmp / "data.npz", "wb") as handle:
        np.savez(handle, **arrays)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def load_cell(run: Path, experiment: str, cell: str) -> dict | None:
    """A finished cell's result, or ``None`` if it is missing."""
    path = cell_path(run, experiment, cell) / "result.json"
    return read_json(path) if path.is_file() else None


def load_arrays(run: Path, experiment: str, cell: str) -> dict[str, np.ndarray]:
    with np.load(cell_path(run, experiment, cell) / "data.npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def provenance(seed_note: str = "") -> dict:
    """Versions, platform and git commit: what a reader needs to reproduce a run."""
    versions = {}
    for package in ("emvi", "torch", "pyro-ppl", "numpy", "scipy", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5)
        commit = commit.stdout.strip() if commit.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit = None
    import torch

    return {
        "versions": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": commit,
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
