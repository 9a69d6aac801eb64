"""How much memory a cell will need, checked against what the machine has, before it runs.

The estimate is deliberately simple and on the safe side: float64 numbers for

- the data and the family's statistics: ``n * d * (d + 3)`` for ``d`` values per
  observation (a full covariance's statistics grow with ``d**2``);
- the responsibilities every fit keeps and the VI objective's enumerated log
  probabilities with their gradients: ``8 * n * k``;
- the E-step's log-joint and responsibilities of every restart at once, over one chunk
  (``min(n, chunk_size)`` points): ``2 * rows * k * restarts``;

times a safety factor of 2 for temporaries.
"""

from __future__ import annotations

import os

#: temporaries, copies and the allocator's slack
SAFETY = 2
BYTES = 8  # float64


def cell_bytes(n: int, event_numel: int, k: int, restarts: int = 1,
               chunk_size: int | None = None) -> int:
    """Estimated peak bytes of one cell: ``n`` observations of ``event_numel`` values each.

    Args:
        n: number of observations.
        event_numel: values in one observation (``d``).
        k: number of components.
        restarts: restarts fitted at once.
        chunk_size: EM chunk, or ``None`` for the whole data at once.
    """
    rows = n if chunk_size is None else min(n, chunk_size)
    values = n * event_numel * (event_numel + 3) + 8 * n * k + 2 * rows * k * restarts
    return SAFETY * BYTES * values


def available_bytes() -> int | None:
    """Memory available to a new allocation: ``MemAvailable`` of ``/proc/meminfo``, else
    the free physical pages (``os.sysconf``); ``None`` when neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"
