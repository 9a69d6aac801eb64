"""Small fits run their tensor operations on one thread.

torch splits an operation over its intra-op thread pool once the tensor passes a size
(about 32,768 elements; far fewer for ``exp`` and ``log``). For a small EM (a few
thousand points, or ten restarts of them) each split saves microseconds at best, and on
a machine whose cores are busy it costs a wait for a descheduled worker: measured at
about 15 ms per operation on two shared cores, which made ten batched restarts of a
1,000-point mixture (``gmm_1d``) 20 times slower than running them one by one. Below
:data:`SERIAL_ELEMENTS` the loop runs single-threaded; above, the pool is used as set.

With OpenMP (torch's CPU default) the setting belongs to the calling thread once it has
run an operation, so it is saved and restored in that thread: fits running in other
Python threads keep theirs.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

#: per-iteration array size (log joints: restarts x components x points) below which
#: one thread runs the loop
SERIAL_ELEMENTS = 1 << 18


@contextmanager
def serial_when_small(elements: int):
    """Run the body with one intra-op thread when ``elements`` is below the threshold."""
    saved = torch.get_num_threads()
    if elements >= SERIAL_ELEMENTS or saved == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
