"""Data larger than memory: a ``.npy`` file opened memory-mapped, read chunk by chunk.

``fit_em(model, open_npy(path), init, chunk_size=100_000)`` streams the file: each
iteration's E-step prepares and reads one chunk at a time (the operating system pages the
file in and drops it again), so the process's own memory stays at about one chunk's
intermediates plus the parameters. ``fit_online_em`` reads only its mini-batches and its
per-pass chunks.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..models.validation import InputError


def open_npy(path) -> torch.Tensor:
    """A ``.npy`` file of float64 rows as a read-only ``(n, d)`` tensor over the file.

    Nothing is read until used; a 1-D array is one column. The tensor shares the file's
    pages: never write to it (the library does not).

    Raises:
        InputError: naming ``path``: not a ``.npy`` array, not float64 (a conversion
            would copy the whole file into memory: ``numpy.save`` it as float64), or not
            1-D/2-D.
    """
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"path: cannot open {path} as a .npy array: {exc}") from None
    if not isinstance(array, np.memmap):  # np.load opens a zip (.npz) archive too
        getattr(array, "close", lambda: None)()
        raise InputError(f"path: {path} is not a .npy array (an .npz archive?)")
    if array.dtype != np.float64:
        raise InputError(f"path: {path} holds {array.dtype}, expected float64 (converting "
                         "would copy the whole file into memory; save it as float64)")
    if array.ndim not in (1, 2):
        raise InputError(f"path: {path}: expected a 1-D or 2-D array, got shape {array.shape}")
    array = array.reshape(-1, 1) if array.ndim == 1 else array
    with warnings.catch_warnings():  # "not writable": the tensor is read-only by contract
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)
