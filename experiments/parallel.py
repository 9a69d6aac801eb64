"""Sweep cells computed in worker processes (``emvi run --jobs N``).

Workers only compute: each is forked from a clean server process that has imported emvi
and torch and computed nothing (``forkserver``: no threads, locks or state inherited from
the parent, and no second import of torch per worker), so a cell's numbers are those of a
sequential run at the same thread count. Results come back to the parent, which writes
every cell atomically, as a sequential run does. Workers ignore Ctrl-C (the terminal sends it to
the whole process group); the parent, on Ctrl-C or SIGTERM, stops them all and keeps the
cells already written.
"""

from __future__ import annotations

import os
import signal
import traceback
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from ..models.validation import InputError


class CellFailed(Exception):
    """A cell raised an exception that is a bug (not a user error) in a worker process."""


def _start_worker(threads: int, debug: bool) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt ends
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(threads)
    if not debug:
        warnings.simplefilter("ignore")  # as the command does: results carry notes


def _compute(cell, source):
    """One cell in a worker: ``("ok", run_cell's tuple)`` or ``("user"|"bug", message)``."""
    from .cli import user_error
    from .runner import Reporter, compute_cell

    try:
        return "ok", compute_cell(cell, source, Reporter())
    except Exception as exc:
        message = user_error(exc)
        if message is not None:
            return "user", message
        if os.environ.get("EMVI_DEBUG"):
            traceback.print_exc()
        return "bug", f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (their cells are not kept)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.join(timeout=5)


def compute(todo: list, source, threads: int, jobs: int) -> Iterator:
    """Compute cells in ``jobs`` processes of ``threads`` threads; yield them as they finish.

    Args:
        todo: ``[(index, experiment, cell id, values, cell)]``.

    Yields:
        ``(item of todo, (result, history, arrays, files))`` in the order they finish.

    Raises:
        InputError: a user error in a cell (the one-line message of a sequential run).
        CellFailed: a bug in a cell, or a worker process that died (killed, out of memory).
    """
    debug = bool(os.environ.get("EMVI_DEBUG"))
    context = get_context("forkserver")
    # torch._dynamo: torch.optim imports it on first use (~2.5 s), once per process
    context.set_forkserver_preload([__name__, "emvi.experiments.runner", "torch._dynamo"])
    pool = ProcessPoolExecutor(min(jobs, len(todo)), mp_context=context,
                               initializer=_start_worker, initargs=(threads, debug))
    try:
        pending = {pool.submit(_compute, item[4], source): item for item in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: pending[f][0]):
                item = pending.pop(future)
                try:
                    status, value = future.result()
                except BrokenProcessPool:
                    raise CellFailed(f"a worker process died while computing cell "
                                     f"{item[2]!r} of {item[1].name} (killed, or out of "
                                     "memory?); run with fewer --jobs") from None
                if status == "user":
                    raise InputError(value)
                if status == "bug":
                    raise CellFailed(f"cell {item[2]!r} of {item[1].name} failed in a worker "
                                     f"process: {value}")
                yield item, value
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)
