"""Run directories on disk: atomic writes, per-cell results, locks, provenance.

A run is written into ``<root>/<config>/<timestamp>.partial/`` and renamed to
``<timestamp>/`` only when complete. Each finished sweep cell is itself renamed
into place under ``cells/``, so an interruption keeps every finished cell and
``--resume`` finishes only what is missing.

Every name that comes from a config (the config's name, experiment names, sweep cell
ids) becomes a path component only through :func:`check_name` or :func:`cell_dir`, and
every path this module writes, renames or removes is first resolved and proved to lie
inside the run directory (:func:`inside`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from ..models.validation import InputError

PARTIAL = ".partial"
LOCK = ".lock"
#: a path component made from config text: ASCII letters, digits and ``_ . + = , -``,
#: not starting with ``.`` (no ``..``, no hidden files), at most MAX_NAME characters
SAFE_NAME = re.compile(r"[A-Za-z0-9_+=,-][A-Za-z0-9_.+=,-]*")
MAX_NAME = 100


class PathError(InputError):
    """A name or path from a config, a results file or a run directory is not safe to use."""


def name_problem(name) -> str | None:
    """Why ``name`` cannot be a path component of a run, or ``None`` when it can."""
    if not isinstance(name, str):
        return f"expected a string, got {name!r:.40}"
    if not name:
        return "expected a name, got an empty string"
    if len(name) > MAX_NAME:
        return f"expected at most {MAX_NAME} characters, got {len(name)}"
    if not SAFE_NAME.fullmatch(name):
        return (f"expected ASCII letters, digits and _ . + = , - (not starting with '.'), "
                f"got {name!r:.60}")
    return None


def check_name(name, what: str) -> str:
    """``name`` if it is a safe path component, else :class:`PathError` naming ``what``."""
    problem = name_problem(name)
    if problem is not None:
        raise PathError(f"{what}: {problem}")
    return name


def inside(run: Path, path: Path) -> Path:
    """``path`` resolved, once proved to lie strictly inside the run directory ``run``.

    Symbolic links are followed before comparing, so a link out of the run is refused.

    Raises:
        PathError: ``path`` is ``run`` itself or lies outside it.
    """
    root = Path(run).resolve()
    target = Path(path).resolve()
    if root not in target.parents:
        raise PathError(f"refusing to touch {str(path)!r}: it lies outside the run directory "
                        f"{str(root)!r}")
    return target


def write_atomic(path: Path, content: str | bytes, within: Path) -> None:
    """Write a file inside the run directory ``within``: readers see nothing or all of it."""
    path = inside(within, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path = inside(within, path)  # a parent made just now cannot lead out either
    tmp = path.with_name(f".{path.name}.tmp")
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(tmp, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: Path, value, within: Path) -> None:
    """JSON with finite numbers only (NaN or infinity is a bug: raises ``ValueError``)."""
    write_atomic(path, json.dumps(value, indent=2, sort_keys=False, allow_nan=False) + "\n",
                 within)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def read_json(path: Path):
    """Parse a JSON file strictly (``NaN``/``Infinity`` refused with ``ValueError``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_no_constant)


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


def make_dirs(path: Path) -> list[Path]:
    """``mkdir -p`` that returns the folders it created itself (outermost first).

    A folder that appears meanwhile (another process) counts as not created by us.
    """
    missing, at = [], Path(path)
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    created = []
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        created.append(folder)
    return created


def new_run(root: Path, name: str) -> tuple[Path, list[Path]]:
    """A fresh ``<root>/<name>/<timestamp>.partial`` directory, claimed atomically.

    Returns:
        ``(run directory, the parent folders created for it)``: a failed run removes
        only what emvi made, never a folder the user had made (even an empty one).
    """
    check_name(name, "config name")
    base = Path(root) / name
    created = make_dirs(base)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        stem = stamp if i == 0 else f"{stamp}-{i}"
        path = base / (stem + PARTIAL)
        try:
            os.mkdir(path)  # atomic: of two runs starting at once, one gets each name
        except FileExistsError:
            continue
        if (base / stem).exists():  # a finished run, which came from this .partial name
            os.rmdir(path)
            continue
        return path, created
    raise PathError(f"{base}: no free run directory name for {stamp} after 1000 tries")


def remove_run(run: Path, created: list[Path]) -> None:
    """Remove a failed fresh run and the now-empty folders made for it (nothing else)."""
    run = Path(run)
    if run.name.endswith(PARTIAL) and run.is_dir() and not run.is_symlink():
        shutil.rmtree(run, ignore_errors=True)
    for folder in reversed(created):
        try:
            folder.rmdir()  # only if empty
        except OSError:
            break


def finish(partial: Path) -> Path:
    """Rename a complete ``.partial`` run to its final name (in the same folder)."""
    final = partial.with_name(partial.name.removesuffix(PARTIAL))
    if not partial.name.endswith(PARTIAL) or final.parent.resolve() != \
            partial.parent.resolve():
        raise PathError(f"refusing to rename {str(partial)!r}: not a .partial run directory")
    os.replace(partial, final)
    return final


def lock(run: Path) -> int:
    """Hold the run directory for this process; returns the lock's file descriptor.

    An exclusive ``flock`` on ``run/.lock`` (holding the owner's pid): the kernel drops it
    when the owner exits, however it exits, so a lock left by a killed run is free again
    and needs no clean-up.

    Raises:
        PathError: another process holds the run (the message names its pid).
    """
    import fcntl

    path = inside(run, Path(run) / LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise PathError(f"{run}: the run is in use by another emvi process (pid {owner}); "
                        "wait for it to finish or stop it first") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def unlock(fd: int, run: Path | None = None) -> None:
    """Release :func:`lock`; with ``run``, remove its lock file first (a finished run)."""
    try:
        if run is not None:
            inside(run, Path(run) / LOCK).unlink(missing_ok=True)
    finally:
        os.close(fd)


def cell_dir(cell: str) -> str:
    """The folder name of a sweep cell: its id when that is a safe name, else a digest.

    ``n=100,seed=0`` stays as it is; an id with other characters (a path, a space),
    capitals or too many characters becomes ``<safe prefix>_<sha256 of the id>``, so
    distinct ids get distinct folders even on a case-insensitive file system.
    """
    if name_problem(cell) is None and cell == cell.lower():
        return cell
    prefix = re.sub(r"[^A-Za-z0-9_.+=,-]", "_", cell)[:40].lstrip(".") or "cell"
    return f"{prefix}_{hashlib.sha256(cell.encode('utf-8', 'replace')).hexdigest()[:16]}"


def cell_path(run: Path, experiment: str, cell: str) -> Path:
    """``run/cells/<experiment>/<cell_dir(cell)>``, checked to lie inside ``run``."""
    check_name(experiment, "experiment name")
    return inside(run, Path(run) / "cells" / experiment / cell_dir(cell))


def save_cell(run: Path, experiment: str, cell: str, result: dict, history: str,
              arrays: dict[str, np.ndarray], files: dict[str, bytes] | None = None) -> None:
    """Write one finished cell into a temporary directory, then rename it into place.

    ``files``: further files by name (the fitted models, ``fit_em.pt``, ...)."""
    final = cell_path(run, experiment, cell)
    tmp = inside(run, final.with_name(f".{final.name}.tmp"))
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write_json(tmp / "result.json", result, run)
    write_atomic(tmp / "history.csv", history, run)
    for name, content in (files or {}).items():
        write_atomic(tmp / check_name(name, "file name"), content, run)
    with open(inside(run, tmp / "data.npz"), "wb") as handle:
        np.savez(handle, **arrays)
    if final.exists():  # a damaged copy, recomputed
        shutil.rmtree(inside(run, final))
    os.replace(tmp, final)


def load_cell(run: Path, experiment: str, cell: str) -> dict | None:
    """A finished cell's result, or ``None`` if it is missing or damaged (recomputed)."""
    path = cell_path(run, experiment, cell) / "result.json"
    if not path.is_file():
        return None
    try:
        result = read_json(path)
    except (ValueError, UnicodeDecodeError):  # truncated or edited by hand
        return None
    return result if isinstance(result, dict) and result.get("cell") == cell else None


def load_arrays(run: Path, experiment: str, cell: str) -> dict[str, np.ndarray]:
    with np.load(cell_path(run, experiment, cell) / "data.npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def sha256(path: Path) -> str:
    """The SHA-256 digest of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
