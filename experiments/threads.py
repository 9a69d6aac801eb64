"""How many torch threads a run computes with: chosen once per run, recorded, restored.

Precedence, first that is set wins: ``emvi run --threads N``, the environment variable
``EMVI_THREADS``, the config's top-level ``threads`` key, then ``auto``. ``auto`` uses one
thread when the run is small (every cell's observations x values x components x restarts
at most :data:`SMALL`) or when cells run in several worker processes (``--jobs``), and
otherwise the count torch has when the run starts (``torch.set_num_threads`` or
``OMP_NUM_THREADS``; torch's default is one per core).

Why one thread for small problems: on a 2-core machine with other work running, torch's
two threads waited on each other; a GaussianMixture(k=3, dim=2, full) EM of 50 iterations
took 47 ms (1 thread) vs 55 ms (2) at n=300, 123 ms vs 1236 ms at n=30,000 and
1.09 s vs 2.01 s at n=300,000 (TraceEnum_ELBO, 30 L-BFGS steps at n=30,000: 2.6 s vs
5.8 s). ``SMALL`` lies above the largest of these (1.8e6), where threads only pay off on
an otherwise idle machine with cores to spare.

A run sets the count for its duration and puts the caller's back. Inside the library,
``fit_em`` and ``fit_vi`` run one thread only while a fit is small (restarts x components
x points below 2**18, :mod:`emvi.inference.intraop`) and restore the caller's setting when
it ends; larger fits compute with whatever ``torch.set_num_threads`` says.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..models.validation import InputError

ENV = "EMVI_THREADS"
#: observations x values per observation x components x restarts up to which auto uses 1
SMALL = 10**7
#: the most threads accepted anywhere (a typo guard, far above any machine's cores)
MOST = 1024


@dataclass(frozen=True)
class Threads:
    """The thread count of a run and where it came from.

    Attributes:
        count: torch's intra-op threads while the run computes (per worker with ``jobs``).
        source: ``--threads``, ``EMVI_THREADS``, ``config`` or ``auto``.
    """

    count: int
    source: str


def parse(value, name: str) -> int | None:
    """A thread setting: a whole number 1..MOST, or ``"auto"`` (``None``).

    Raises:
        InputError: naming ``name``.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "auto":
            return None
        try:
            value = int(text)
        except ValueError:
            raise InputError(f"{name}: expected a whole number of threads >= 1 or 'auto', "
                             f"got {value!r:.40}") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MOST:
        raise InputError(f"{name}: expected a whole number of threads from 1 to {MOST} or "
                         f"'auto', got {value!r:.40}")
    return value


def resolve(cli, config_value, size: int, jobs: int = 1, environ=None) -> Threads:
    """The thread count of a run, by the precedence above.

    Args:
        cli: ``--threads`` (``None``: not given).
        config_value: the config's ``threads`` (``None`` or ``"auto"``: auto).
        size: the largest cell's observations x values x components x restarts.
        jobs: worker processes.
    """
    environ = os.environ if environ is None else environ
    for value, source in ((cli, "--threads"), (environ.get(ENV) or None, ENV),
                          (config_value, "config")):
        if value is not None:
            count = parse(value, "threads" if source == "config" else source)
            if count is not None:
                return Threads(count, source)
    if jobs > 1 or size <= SMALL:
        return Threads(1, "auto")
    return Threads(torch.get_num_threads(), "auto")


@contextmanager
def using(count: int):
    """Compute with ``count`` torch threads inside the block; the caller's count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
