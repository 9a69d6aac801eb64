"""Data larger than memory: a ``.npy`` file opened memory-mapped, read chunk by chunk.

``fit_em(model, open_npy(path), init, chunk_size=100_000)`` streams the file: each
iteration's E-step prepares and reads one chunk at a time (the operating system pages the
file in and drops it again), so the process's own memory stays at about one chunk's
intermediates plus the parameters. ``fit_online_em`` reads only its mini-batches and its
per-pass chunks. A folder of ``.npy`` shards (:func:`open_shards`) is one data set whose
chunks each lie inside one shard.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..models.validation import InputError, block_rows


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


class Shards:
    """The rows of several ``.npy`` files, in order, each memory-mapped: one data set that
    EM streams shard by shard (a chunk never straddles two files).

    It offers what the fitting loops read of rows: ``len``, ``shape``, ``dtype``,
    ``device``, slices of rows (a view inside one shard; a small copy across a boundary),
    rows by index (gathered per shard) and :meth:`pieces`.

    Attributes:
        shards: ``[(n_i, d)]`` the mapped tensors; ``paths``: their files.
    """

    def __init__(self, shards: list[torch.Tensor], paths: list[Path] | None = None):
        if not shards:
            raise InputError("path: no shards")
        widths = {tuple(s.shape[1:]) for s in shards}
        if len(widths) > 1:
            raise InputError(f"path: the shards have different row shapes {sorted(widths)}")
        self.shards, self.paths = list(shards), list(paths or [])
        self.starts = [0]
        for s in self.shards:
            self.starts.append(self.starts[-1] + s.shape[0])

    def __len__(self) -> int:
        return self.starts[-1]

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.shards[0].shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.shards[0].dtype

    @property
    def device(self) -> torch.device:
        return self.shards[0].device

    def dim(self) -> int:
        return self.shards[0].dim()

    def numel(self) -> int:
        return len(self) * self.shards[0][:1].numel()

    def element_size(self) -> int:
        return self.shards[0].element_size()

    def is_floating_point(self) -> bool:
        return self.shards[0].is_floating_point()

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError("Shards: slices of rows take no step")
            parts = [s[max(start - a, 0): max(min(stop, b) - a, 0)]
                     for s, a, b in zip(self.shards, self.starts, self.starts[1:])
                     if a < stop and b > start]
            if len(parts) == 1:
                return parts[0]
            return torch.cat(parts) if parts else self.shards[0][:0]
        if torch.is_tensor(index) and index.dtype == torch.long and index.dim() == 1:
            out = self.shards[0].new_empty((len(index), *self.shards[0].shape[1:]))
            which = torch.searchsorted(torch.tensor(self.starts[1:]), index, right=True)
            for i, s in enumerate(self.shards):
                mask = which == i
                if bool(mask.any()):
                    out[mask] = s[index[mask] - self.starts[i]]
            return out
        raise IndexError("Shards: index rows by a slice or a 1-D tensor of row numbers")

    def pieces(self, size: int) -> list[torch.Tensor]:
        """Chunks of at most ``size`` rows, each inside one shard, in order (views)."""
        return [s[i: i + size] for s in self.shards for i in range(0, s.shape[0], size)]

    def map(self, function) -> Shards:
        """The shards passed through ``function`` (a check that returns its tensor)."""
        return Shards([function(s) for s in self.shards], self.paths)


def open_shards(folder) -> Shards | torch.Tensor:
    """The ``.npy`` files directly inside ``folder`` (sorted by name), each opened with
    :func:`open_npy`, as one data set of rows: :class:`Shards` (one file: its tensor).

    Raises:
        InputError: naming ``path``: not a folder, no ``.npy`` file in it, a shard that is
            not a regular file inside the folder (a link leading out of it), or one that
            :func:`open_npy` refuses, or shards whose rows differ in shape.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"path: {folder} is not a folder")
    root = folder.resolve()
    paths = sorted(p for p in folder.iterdir() if p.suffix == ".npy")
    if not paths:
        raise InputError(f"path: no .npy files in {folder}")
    for p in paths:
        real = p.resolve()
        if real.parent != root or not real.is_file():
            raise InputError(f"path: the shard {p.name} is not a file inside {folder} (a link "
                             "leading out of the folder?)")
    tensors = [open_npy(p) for p in paths]
    return tensors[0] if len(tensors) == 1 else Shards(tensors, paths)


def check_rows(model, data, name: str = "data"):
    """``model.check_data`` of rows, shard by shard for :class:`Shards` (each stays mapped)."""
    if isinstance(data, Shards):
        data = data.map(lambda shard: model.check_data(shard, name))
        if data.is_floating_point() and data.dim() >= 2:  # a column never observed
            empty = torch.ones(data.shape[1:], dtype=torch.bool, device=data.device)
            for block in data.pieces(block_rows(data.shards[0])):
                empty &= torch.isnan(block).all(0)
            if bool(empty.any()):
                where = tuple(int(i) for i in torch.nonzero(empty)[0])
                raise InputError(f"{name}: every entry of column "
                                 f"{where[0] if len(where) == 1 else where} is missing (NaN) "
                                 "in every shard: nothing can be learned about it")
        return data
    return model.check_data(data, name)
