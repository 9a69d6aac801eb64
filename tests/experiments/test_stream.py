"""`emvi run` on data never held whole: a memory-mapped .npy or a folder of shards is fitted
chunk by chunk (the process grows by far less than the data), with the numbers of the
same data fitted in memory; what cannot stream is refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from emvi.models import GaussianMixture

from emvi import fit_em

D = 6
INIT = {"weights": [0.5, 0.5], "locs": [[0.0] * D, [3.0] * D], "scales": [[1.0] * D] * 2}
CONFIG = """
model = {{ name = "gaussian_mixture", k = 2, dim = 6, covariance = "diag" }}
data = {{ file = "{file}", stream = true }}
init = {{ method = "params", params = {params} }}
em = {{ max_iter = {iters}, tol = 1e-12, chunk_size = {chunk} }}
vi = {{ optimizer = "adam", steps = {steps}, batch_size = 2000 }}
plots = {{ enabled = {plots} }}
"""


def config_text(file, iters=3, chunk=20_000, steps=10, plots="false"):
    params = json.dumps(INIT).replace('"', "").replace(":", " =")
    return CONFIG.format(file=file, params=params, iters=iters, chunk=chunk, steps=steps,
                         plots=plots)


def rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D))
    x[::2] += 3.0
    return x


SCRIPT = """
import json, sys, threading, time, torch
from pathlib import Path
from emvi.experiments import config, runner

def anonymous():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("RssAnon"))

peak, stop = [0], threading.Event()

def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], anonymous())
        time.sleep(0.0005)

def grown(path, name):  # the run's peak anonymous memory above where it started
    peak[0] = base = anonymous()
    runner.run(config.load(path), Path(sys.argv[3]) / name, threads=1)
    time.sleep(0.01)
    return peak[0] - base

thread = threading.Thread(target=sample)
thread.start()
grown(sys.argv[2], "first")  # imports, caches
small = grown(sys.argv[2], "small")  # 120k rows: the fixed costs (the start's sample)
big = grown(sys.argv[1], "big")
stop.set()
thread.join()
print(json.dumps({"small": small, "big": big}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_mapped_file_streams_through_emvi_run_in_a_fraction_of_its_size(tmp_path):
    """48 MB of rows: the run's peak anonymous memory (what the process itself allocates,
    not the file's pages the kernel maps in and drops) is under half of that, and under an
    eighth above a run on 120k of its rows (the fixed costs: a chunk, the sample the start
    is drawn from): it does not grow with the rows. EM's numbers are those of the same
    rows fitted in memory (1e-10)."""
    n = 1_000_000
    x = rows(n, 0)
    np.save(tmp_path / "big.npy", x)
    np.save(tmp_path / "small.npy", x[:120_000])  # its fixed costs: the start's sample
    (tmp_path / "big.toml").write_text(config_text("big.npy"), encoding="utf-8")
    (tmp_path / "small.toml").write_text(config_text("small.npy"), encoding="utf-8")
    # a fixed mmap threshold: blocks above 128 KiB go back to the system when freed, so the
    # peak measures what was alive, not what glibc's dynamic threshold chose to keep
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 17)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "big.toml"),
                           str(tmp_path / "small.toml"), str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["big"] < x.nbytes / 2, out  # a chunk, the samples: not the data
    assert out["big"] - out["small"] < x.nbytes / 8, out  # 4x the rows: about no more
    run = next((tmp_path / "runs" / "big" / "big").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    cell = metrics["experiments"]["big"]["cells"][0]
    assert cell["data"]["n"] == n and cell["data"]["streamed"]["chunk_size"] == 20_000
    model = GaussianMixture(k=2, dim=D, covariance="diag")
    memory = fit_em(model, torch.from_numpy(x), model.check_params(INIT), max_iter=3,
                    tol=1e-12, chunk_size=20_000)
    assert cell["fits"]["em"]["log_likelihood"] == pytest.approx(memory.log_likelihood,
                                                                 rel=1e-10)
    assert cell["fits"]["vi"]["method"] == "vi-minibatch-adam"


def test_a_folder_of_shards_runs_with_the_numbers_of_memory(tmp_path, emvi):
    x = rows(6000, 1)
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, part in enumerate(np.array_split(x, 3)):
        np.save(folder / f"part-{i}.npy", part)
    (tmp_path / "cfg.toml").write_text(config_text("shards", iters=10, chunk=700,
                                                   steps=6), encoding="utf-8")
    code, out, err = emvi("run", tmp_path / "cfg.toml", "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err
    run = next((tmp_path / "runs" / "cfg").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    cell = metrics["experiments"]["cfg"]["cells"][0]
    assert cell["data"]["streamed"]["shards"] == 3 and cell["data"]["n"] == 6000
    model = GaussianMixture(k=2, dim=D, covariance="diag")
    memory = fit_em(model, torch.from_numpy(x), model.check_params(INIT), max_iter=10,
                    tol=1e-12)
    assert cell["fits"]["em"]["log_likelihood"] == pytest.approx(memory.log_likelihood,
                                                                 rel=1e-10)
    inputs = json.loads((run / "inputs.json").read_text())
    assert list(inputs["files"]) == [str(folder.resolve())]  # the folder's shards, hashed


def test_simulated_data_stream_in_chunks(tmp_path, emvi, write_config):
    path = write_config("""
model = { name = "gaussian_mixture", k = 2, dim = 1, covariance = "spherical" }
truth = { weights = [0.4, 0.6], locs = [[-3.0], [3.0]], scales = [1.0, 1.0] }
data = { n = 3000, seed = 4, stream = true }
em = { chunk_size = 1000, online = { batch_size = 200, passes = 2 } }
vi = { enabled = false }
plots = { enabled = false }
""")
    code, _, err = emvi("run", path, "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err
    run = next((tmp_path / "runs" / "cfg").iterdir())
    cell = json.loads((run / "metrics.json").read_text())["experiments"]["cfg"]["cells"][0]
    assert cell["data"]["streamed"]["shards"] == 3 and cell["fits"]["em"]["method"] == \
        "online-em"
    assert cell["comparison"]["truth_errors"]["em"]["locs"] < 0.2


@pytest.mark.parametrize("data, extra, key", [
    ('{ file = "d.csv", stream = true }', "", "data.stream"),
    ('{ file = "d.npy", stream = true, columns = [0] }', "", "data.columns"),
    ('{ file = "d.npy", stream = true }', 'vi = { steps = 3 }', "vi.batch_size"),
    ('{ file = "d.npy", stream = true }', "vi = { enabled = false }\n"
     "uncertainty = { standard_errors = true }", "uncertainty.standard_errors"),
    ('{ file = "empty" }', "vi = { enabled = false }", "data.file"),
    ('{ file = "out" }', "vi = { enabled = false }", "data.file"),
])
def test_what_cannot_stream_is_refused_in_one_line(data, extra, key, tmp_path, emvi,
                                                   write_config):
    np.save(tmp_path / "d.npy", rows(50, 2))
    (tmp_path / "d.csv").write_text("a,b,c,d,e,f\n1,2,3,4,5,6\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.npy").symlink_to(tmp_path / "d.npy")  # a link leading out
    path = write_config(f"""
model = {{ name = "gaussian_mixture", k = 2, dim = 6, covariance = "diag" }}
data = {data}
{extra}
""")
    code, _, err = emvi("run", path, "--quiet", "--out", tmp_path / "runs")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"{key}:" in lines[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.json"))
