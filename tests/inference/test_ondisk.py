"""Data larger than memory: EM streams a memory-mapped .npy file chunk by chunk, with the
numbers of the same data in memory, while the process grows by far less than the file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from emvi.inference.ondisk import open_npy
from emvi.models import GaussianMixture

from emvi import InputError, fit_em

N, D, CHUNK = 1_000_000, 4, 20_000  # 32 MB of float64: above the block-wise threshold

SCRIPT = """
import json, sys, threading, time, torch, emvi
from emvi.inference.ondisk import open_npy
from emvi.models import GaussianMixture

def anonymous():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("RssAnon"))

torch.set_num_threads(1)
model = GaussianMixture(k=2, dim=4, covariance="diag")
init = model.check_params({"weights": [0.5, 0.5], "locs": [[0.0] * 4, [3.0] * 4],
                           "scales": [[1.0] * 4, [1.0] * 4]})
emvi.fit_em(model, torch.randn(1000, 4, dtype=torch.float64), init, max_iter=2)  # warm
peak, stop = [anonymous()], threading.Event()
base = peak[0]

def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], anonymous())
        time.sleep(0.0005)

thread = threading.Thread(target=sample)
thread.start()
fit = emvi.fit_em(model, open_npy(sys.argv[1]), init, max_iter=3, tol=None, chunk_size=20_000)
stop.set()
thread.join()
print(json.dumps({"grown": peak[0] - base, "params": fit.params.to_lists()}))
"""


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D))
    x[::2] += 3.0
    path = tmp_path_factory.mktemp("ondisk") / "rows.npy"
    np.save(path, x)
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_em_streams_a_memory_mapped_file_with_the_numbers_of_memory(big_file):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(big_file)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    size = N * D * 8
    assert out["grown"] < size / 2, out["grown"]  # chunks and row flags, not the data
    model = GaussianMixture(k=2, dim=4, covariance="diag")
    init = model.check_params({"weights": [0.5, 0.5], "locs": [[0.0] * 4, [3.0] * 4],
                               "scales": [[1.0] * 4, [1.0] * 4]})
    memory = fit_em(model, torch.from_numpy(np.load(big_file)), init, max_iter=3, tol=None,
                    chunk_size=CHUNK)
    assert out["params"] == memory.params.to_lists()  # bit for bit


def test_open_npy_is_the_file_without_a_copy(big_file):
    tensor = open_npy(big_file)
    assert tensor.shape == (N, D) and tensor.dtype == torch.float64
    assert float(tensor[7, 2]) == float(np.load(big_file, mmap_mode="r")[7, 2])


@pytest.mark.parametrize("kind", ["float32", "3-D", "npz", "text"])
def test_open_npy_refuses_what_it_cannot_map(kind, tmp_path):
    path = tmp_path / ("x.npz" if kind == "npz" else "x.npy")
    if kind == "float32":
        np.save(path, np.zeros((4, 2), dtype=np.float32))
    elif kind == "3-D":
        np.save(path, np.zeros((4, 2, 2)))
    elif kind == "npz":
        np.savez(path, x=np.zeros(3))
    else:
        path.write_text("1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"^path: "):
        open_npy(path)


@pytest.mark.parametrize("offset", [0.0, 1000.0])  # far from 0: centring matters
def test_the_block_wise_standardisation_is_the_whole_data_one(big_file, monkeypatch, offset):
    from emvi.models.families import gaussian_numerics

    data = torch.from_numpy(np.load(big_file)) + offset
    blocks = gaussian_numerics.reference(data, common=False)
    monkeypatch.setattr(gaussian_numerics, "BLOCK_BYTES", 1 << 40)  # all at once
    whole = gaussian_numerics.reference(data, common=False)
    for field in ("scale", "offset", "extent"):
        torch.testing.assert_close(getattr(blocks, field), getattr(whole, field), rtol=1e-12,
                                   atol=0)


@pytest.fixture
def shard_folder(tmp_path):
    """Three shards of 2-D rows (sizes 700, 50, 1250) and the same rows in memory."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 2))
    x[::3] += 4.0
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, (a, b) in enumerate([(0, 700), (700, 750), (750, 2000)]):
        np.save(folder / f"part-{i}.npy", x[a:b])
    (folder / "notes.txt").write_text("not a shard", encoding="utf-8")
    return folder, torch.from_numpy(x)


def test_shards_read_as_the_rows_in_order(shard_folder):
    from emvi.inference.ondisk import Shards, open_shards

    folder, x = shard_folder
    shards = open_shards(folder)
    assert isinstance(shards, Shards) and shards.shape == (2000, 2) and len(shards) == 2000
    for rows in (slice(0, 16), slice(690, 760), slice(1990, 2100), slice(0, 2000)):
        assert torch.equal(shards[rows], x[rows])
    index = torch.tensor([1999, 0, 700, 749, 750, 3])
    assert torch.equal(shards[index], x[index])
    pieces = shards.pieces(300)
    assert [len(p) for p in pieces] == [300, 300, 100, 50, 300, 300, 300, 300, 50]
    assert torch.equal(torch.cat(pieces), x)


def test_em_and_online_em_over_shards_give_the_numbers_of_memory(shard_folder):
    """Chunks inside each shard add the same statistics in another grouping: equal to the
    whole-data fit within round-off (1e-12)."""
    from emvi.inference.ondisk import open_shards

    from emvi import fit_online_em

    folder, x = shard_folder
    model = GaussianMixture(k=2, dim=2, covariance="full")
    init = model.check_params({"weights": [0.5, 0.5], "locs": [[0.0, 0.0], [3.0, 3.0]],
                               "scale_tril": [[[1.0, 0.0], [0.0, 1.0]]] * 2})
    shards = open_shards(folder)
    from emvi.inference.em import CACHE_BYTES, Chunks

    chunks = Chunks(model, shards, model.shift(shards), 300, CACHE_BYTES)  # never straddling
    assert [len(p) for p in chunks.pieces] == [300, 300, 100, 50, 300, 300, 300, 300, 50]
    streamed = fit_em(model, shards, init, max_iter=20, tol=None, chunk_size=300)
    memory = fit_em(model, x, init, max_iter=20, tol=None)
    torch.testing.assert_close(streamed.objective, memory.objective, rtol=1e-12, atol=0)
    for name in memory.params:
        torch.testing.assert_close(streamed.params[name], memory.params[name], rtol=1e-10,
                                   atol=1e-12)
    online = [fit_online_em(model, data, init, batch_size=100, passes=2, seed=5)
              for data in (shards, x)]
    torch.testing.assert_close(online[0].objective, online[1].objective, rtol=1e-12, atol=0)


def test_open_shards_refuses_a_link_leading_out_and_an_empty_folder(shard_folder, tmp_path):
    from emvi.inference.ondisk import open_shards

    folder, _ = shard_folder
    outside = tmp_path / "outside.npy"
    np.save(outside, np.zeros((3, 2)))
    (folder / "part-9.npy").symlink_to(outside)
    with pytest.raises(InputError, match=r"^path: the shard part-9.npy is not a file inside"):
        open_shards(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"^path: no .npy files"):
        open_shards(empty)
    np.save(empty / "a.npy", np.zeros((3, 2)))
    np.save(empty / "b.npy", np.zeros((3, 3)))
    with pytest.raises(InputError, match=r"^path: the shards have different row shapes"):
        open_shards(empty)
