"""Threads and worker processes: --threads / EMVI_THREADS / threads precedence, the count
in effect while fitting and recorded in provenance, and --jobs giving the same numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from emvi.experiments import threads as threads_module
from emvi.experiments.threads import SMALL, resolve

SWEEP = """
model = { name = "two_coins", k = 2, tosses = 10 }
truth = { weights = [0.4, 0.6], probs = [0.7, 0.3] }
data = { n = 200, seed = [0, 1, 2] }
init = { method = "random", seed = 0 }
em = { max_iter = 30 }
vi = { steps = 10 }
plots = { enabled = false }
"""


def numbers(run: Path) -> dict:
    """metrics.json without wall-clock numbers and provenance."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("timing", "provenance")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads((run / "metrics.json").read_text()))


def run_dir(out: str) -> Path:
    return Path(out.strip().removeprefix("report: ")).parent


def provenance(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["provenance"]


def test_precedence_is_command_line_then_environment_then_config_then_auto():
    env = {"EMVI_THREADS": "3"}
    assert resolve(2, 4, 10, environ=env) == threads_module.Threads(2, "--threads")
    assert resolve(None, 4, 10, environ=env) == threads_module.Threads(3, "EMVI_THREADS")
    assert resolve(None, 4, 10, environ={}) == threads_module.Threads(4, "config")
    assert resolve("auto", 4, 10, environ=env) == threads_module.Threads(3, "EMVI_THREADS")
    assert resolve(None, None, SMALL, environ={}) == threads_module.Threads(1, "auto")
    assert resolve(None, None, SMALL, environ={"EMVI_THREADS": ""}).count == 1


def test_auto_keeps_the_callers_count_for_large_runs_and_one_per_worker():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert resolve(None, None, SMALL + 1, environ={}).count == 2
        assert resolve(None, None, SMALL, environ={}).count == 1
        assert resolve(None, None, SMALL + 1, jobs=2, environ={}).count == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value,where", [("0", "--threads"), ("x", "--threads"),
                                         ("2000", "--threads")])
def test_bad_thread_counts_are_refused_naming_where(value, where, emvi, write_config):
    config = write_config(SWEEP)
    code, _, err = emvi("run", config, "--threads", value, "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{where}: expected a whole number" in err


def test_bad_environment_and_config_thread_counts(emvi, write_config, monkeypatch, tmp_path):
    code, _, err = emvi("run", write_config("threads = 0\n" + SWEEP), "--quiet")
    assert code == 2 and "cfg.toml: threads: expected a whole number" in err, err
    monkeypatch.setenv("EMVI_THREADS", "lots")
    code, _, err = emvi("run", write_config(SWEEP), "--quiet", "--out", tmp_path)
    assert code == 2 and "EMVI_THREADS: expected a whole number" in err, err
    code, _, err = emvi("run", write_config(SWEEP), "--quiet", "--jobs", "0")
    assert code == 2 and "--jobs" in err, err


@pytest.mark.parametrize("how", ["--threads", "EMVI_THREADS", "config", "--set"])
def test_the_chosen_count_computes_the_fits_and_is_recorded(how, emvi, write_config,
                                                             monkeypatch, tmp_path):
    import emvi.experiments.runner as runner

    seen, real = [], runner.run_cell
    monkeypatch.setattr(runner, "run_cell", lambda *a: seen.append(torch.get_num_threads())
                        or real(*a))
    args = []
    one = SWEEP.replace("seed = [0, 1, 2]", "seed = 0")
    text = "threads = 2\n" + one if how == "config" else one
    if how == "--threads":
        args = ["--threads", "2"]
    elif how == "EMVI_THREADS":
        monkeypatch.setenv("EMVI_THREADS", "2")
    elif how == "--set":
        args = ["--set", "threads=2"]
    before = torch.get_num_threads()
    code, out, err = emvi("run", write_config(text), "--quiet", "--out", tmp_path, *args)
    assert code == 0, err
    assert seen == [2]
    assert torch.get_num_threads() == before  # the caller's count, restored
    prov = provenance(run_dir(out))
    assert prov["torch_threads"] == 2
    assert prov["threads_source"] == ("config" if how == "--set" else how)
    assert prov["jobs"] == 1


def test_jobs_give_the_numbers_of_a_sequential_run(emvi, write_config, tmp_path):
    config = write_config(SWEEP)
    runs = []
    for jobs in ("1", "2"):
        code, out, err = emvi("run", config, "--quiet", "--jobs", jobs, "--out", tmp_path / jobs)
        assert code == 0, err
        runs.append(run_dir(out))
    assert numbers(runs[0]) == numbers(runs[1])
    assert [provenance(r)["jobs"] for r in runs] == [1, 2]
    assert [provenance(r)["torch_threads"] for r in runs] == [1, 1]
    cells = json.loads((runs[1] / "metrics.json").read_text())["experiments"]["cfg"]["cells"]
    assert [cell["torch_threads"] for cell in cells] == [1, 1, 1]  # what the workers used
    assert not list((runs[1] / "cells" / "cfg").glob(".*"))


def test_a_user_error_in_a_worker_is_one_line_and_leaves_nothing(emvi, write_config,
                                                                tmp_path):
    (tmp_path / "d.csv").write_text("x\n1.0\n2.0\n", encoding="utf-8")
    config = write_config('model = { name = "gaussian_mixture", k = 3, dim = 1 }\n'
                          'data = { file = "d.csv" }\ninit = { seed = [0, 1] }\n')
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = emvi("run", config, "--quiet", "--jobs", "2", "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cfg.toml: data: 2 observations for k=3" in err
    assert not list(out.iterdir())  # a fresh run that failed leaves nothing


def test_jobs_finish_a_partial_run(partial_run, emvi):
    config, partial, _ = partial_run
    code, out, err = emvi("run", config, "--set", "vi.steps=4", "--resume", partial, "--jobs",
                          "2", "--quiet")
    assert code == 0, err
    cells = json.loads((run_dir(out) / "metrics.json").read_text())
    assert [c["cell"] for c in cells["experiments"]["my_sweep"]["cells"]] == \
        ["seed=0", "seed=1", "seed=2"]


def test_jobs_are_refused_when_their_cells_together_exceed_memory(emvi, write_config,
                                                                 tmp_path, monkeypatch):
    """Each cell fits alone; three side by side do not: --jobs 3 is refused in one line
    before anything runs, --jobs 2 (two at once) runs."""
    from emvi.experiments import memory

    monkeypatch.setattr(memory, "cell_bytes", lambda *args, **kwargs: 2**30)
    monkeypatch.setattr(memory, "available_bytes", lambda: int(2.5 * 2**30))
    config = write_config(SWEEP)
    code, _, err = emvi("run", config, "--quiet", "--jobs", "3", "--out", tmp_path / "three")
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "--jobs: 3 cells at once need about 3.0 GiB" in err and "2.5 GiB" in err
    assert not (tmp_path / "three").exists()
    code, _, err = emvi("run", config, "--quiet", "--jobs", "2", "--out", tmp_path / "two")
    assert code == 0, err
