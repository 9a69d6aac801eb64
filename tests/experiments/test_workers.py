"""``emvi run --workers N``: every fit shared by N local gloo processes; rank 0 writes.

The runs spawn processes (slow to start: each imports torch and Pyro), so few are made:
one two-rank run checked against a one-process run, and one with a failing rank.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

CONFIG = """
model = { name = "gaussian_mixture", k = 2, dim = 2, covariance = "diag" }
truth = { weights = [0.4, 0.6], locs = [[0.0, 0.0], [3.0, 2.0]], scales = [[1.0, 0.5], [0.7, 1.2]] }
data = { n = 300, seed = 0 }
init = { method = "random_points", seed = 1, restarts = 2 }
em = { max_iter = 60 }
vi = { steps = 25 }
plots = { enabled = false }
"""


def numbers(run: Path) -> dict:
    """metrics.json without wall-clock numbers and provenance."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k not in ("timing", "provenance", "seconds")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads((run / "metrics.json").read_text()))


def assert_same(a, b, where="", rtol=1e-9):
    """Equal structure and strings; numbers equal up to ``rtol`` (sums in another order)."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}", rtol)
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]", rtol)
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=rtol, abs_tol=rtol), (where, a, b)
    else:
        assert a == b, (where, a, b)


def run_dir(out: str) -> Path:
    return Path(out.strip().splitlines()[-1].removeprefix("report: ")).parent


@pytest.mark.slow
def test_workers_write_the_metrics_of_one_process(emvi, write_config, tmp_path):
    config = write_config(CONFIG)
    code, out, err = emvi("run", config, "--quiet", "--out", tmp_path / "one")
    assert code == 0, err
    code, out2, err = emvi("run", config, "--quiet", "--workers", "2", "--out", tmp_path / "two")
    assert code == 0, err
    one, two = run_dir(out), run_dir(out2)
    assert_same(numbers(one), numbers(two))
    provenance = json.loads((two / "metrics.json").read_text())["provenance"]
    assert provenance["workers"] == 2
    assert (two / "report.md").is_file() and (two / "history.csv").is_file()
    assert len(list((tmp_path / "two").rglob("metrics.json"))) == 1  # rank 0 alone wrote


USER = """
import torch.distributed as dist
from emvi.models.families.poisson import Poisson

class Counts(Poisson):
    name = 'counts'
    def log_densities(self, prepared, params):
        if dist.is_initialized() and dist.get_rank() == 1:
            raise ValueError('rank one cannot count')
        return super().log_densities(prepared, params)
"""

USER_CONFIG = """
model = { name = "user.py:Counts", k = 2 }
truth = { weights = [0.5, 0.5], rates = [1.0, 9.0] }
data = { n = 60, seed = 0 }
init = { method = "params", params = { weights = [0.5, 0.5], rates = [2.0, 5.0] } }
vi = { enabled = false }
plots = { enabled = false }
"""


@pytest.mark.slow
def test_a_failing_worker_is_reported_in_one_line(emvi, write_config, tmp_path):
    (tmp_path / "user.py").write_text(USER, encoding="utf-8")
    config = write_config(USER_CONFIG)
    code, out, err = emvi("run", config, "--quiet", "--workers", "2", "--out", tmp_path / "r")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("emvi: error: rank 1 of 2: in your model code"), err
    assert "rank one cannot count" in lines[0]
    assert not list((tmp_path / "r").rglob("metrics.json"))


@pytest.mark.parametrize("args, words", [
    (["--workers", "0"], "--workers: expected a whole number from 1 to 1024, got '0'"),
    (["--workers", "-2"], "expected a whole number"),
    (["--workers", "two"], "expected a whole number"),
    (["--workers", "1.5"], "expected a whole number"),
    (["--workers", "5000"], "expected a whole number"),
    (["--workers", "2", "--jobs", "2"], "--workers and --jobs cannot be combined"),
])
def test_bad_workers_values_exit_2_with_one_line(emvi, write_config, args, words, tmp_path):
    code, _, err = emvi("run", write_config(CONFIG), "--quiet", "--out", tmp_path, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert not list(tmp_path.rglob("metrics.json"))


def test_torchrun_starts_the_processes_itself(emvi, write_config, monkeypatch, tmp_path):
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": "29999"}.items():
        monkeypatch.setenv(name, value)
    code, _, err = emvi("run", write_config(CONFIG), "--workers", "2", "--out", tmp_path)
    assert code == 2 and "--workers: torchrun starts the processes" in err, err
