"""Nothing lost: an interrupted sweep keeps its finished cells and --resume finishes the rest;
separate processes give bit-identical numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SWEEP = """
description = "a slow little sweep for the interruption test"
model = { name = "two_coins", k = 2, tosses = 10 }
truth = { weights = [0.4, 0.6], probs = [0.7, 0.3] }
data = { n = 1000, seed = [0, 1, 2, 3, 4] }
init = { method = "random", seed = 0 }
em = { max_iter = 200, tol = 1e-10 }
vi = { optimizer = "adam", steps = 150, tol = 0.0 }
plots = { enabled = false }
"""


def emvi(*args, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "emvi.experiments", *map(str, args)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def finished_cells(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("runs/sweep/*.partial/cells/sweep/*")
                  if not p.name.startswith("."))


def numbers(run: Path) -> dict:
    """metrics.json without wall-clock numbers and provenance."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("timing", "provenance")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads((run / "metrics.json").read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("signum,jobs", [(signal.SIGTERM, 1), (signal.SIGINT, 1),
                                         (signal.SIGTERM, 2)])
def test_interrupted_sweep_keeps_finished_cells_and_resumes(signum, jobs, tmp_path):
    (tmp_path / "sweep.toml").write_text(SWEEP)
    proc = emvi("run", "sweep.toml", "--quiet", "--jobs", jobs, cwd=tmp_path)
    deadline = time.time() + 120
    while len(finished_cells(tmp_path)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "--resume" in err, err
    partial = next((tmp_path / "runs" / "sweep").glob("*.partial"))
    kept = {p.name: (p / "result.json").read_bytes() for p in finished_cells(tmp_path)}
    assert 2 <= len(kept) <= 5
    assert not [p for p in partial.parent.iterdir() if not p.name.endswith(".partial")]
    assert not list((partial / "cells" / "sweep").glob(".*"))  # nothing half-written

    resumed = emvi("run", "sweep.toml", "--quiet", "--resume", partial, cwd=tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    final = partial.with_name(partial.name.removesuffix(".partial"))
    assert final.is_dir() and not partial.exists()
    assert out.strip() == f"report: {final / 'report.md'}"
    for name, content in kept.items():  # finished cells were kept, not recomputed
        assert (final / "cells" / "sweep" / name / "result.json").read_bytes() == content
    cells = json.loads((final / "metrics.json").read_text())["experiments"]["sweep"]["cells"]
    assert [c["cell"] for c in cells] == [f"seed={i}" for i in range(5)]

    if signum == signal.SIGTERM and jobs == 1:  # the numbers of an uninterrupted run
        # (--jobs against a sequential run: test_parallel.py)
        whole = emvi("run", "sweep.toml", "--quiet", "--out", "again", cwd=tmp_path)
        assert whole.wait(timeout=300) == 0
        assert numbers(final) == numbers(next((tmp_path / "again" / "sweep").iterdir()))


@pytest.mark.slow
def test_separate_processes_give_bit_identical_metrics(tmp_path):
    runs = []
    for out in ("a", "b"):
        proc = emvi("run", "seeds", "--smoke", "--quiet", "--out", out, cwd=tmp_path)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        runs.append(next((tmp_path / out / "seeds").iterdir()))
    assert numbers(runs[0]) == numbers(runs[1])


def test_resume_refuses_a_complete_or_a_different_run(emvi, tmp_path):
    code, out, _ = emvi("run", "two_coins", "--smoke", "--quiet", "--out", tmp_path)
    assert code == 0
    run = Path(out.strip().removeprefix("report: ")).parent
    code, _, err = emvi("run", "two_coins", "--smoke", "--resume", run, "--out", tmp_path)
    assert code == 2 and "already complete" in err
    partial = run.with_name(run.name + ".partial")
    run.rename(partial)
    code, _, err = emvi("run", "two_coins", "--resume", partial, "--out", tmp_path)  # no --smoke
    assert code == 2 and "different config" in err
    code, _, err = emvi("run", "two_coins", "--smoke", "--resume", tmp_path / "nope")
    assert code == 2 and "not a run directory" in err


def test_resume_hint_repeats_the_options_the_run_was_started_with(partial_run, tmp_path, emvi):
    import shlex

    config, partial, err = partial_run
    assert len(err.strip().splitlines()) == 1
    hint = err.split("finish with: ", 1)[1].strip()
    assert shlex.split(hint) == ["emvi", "run", str(config), "--set", "vi.steps=4",
                                 "--out", str(tmp_path / "out dir"), "--resume", str(partial)]
    code, out, err = emvi(*shlex.split(hint)[1:], "--quiet")
    assert code == 0, err


def test_resume_refuses_a_changed_data_file(partial_run, tmp_path, emvi):
    config, partial, _ = partial_run
    data = tmp_path / "d.csv"
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[: len(lines) // 2]) + "\n", encoding="utf-8")  # halved
    code, _, err = emvi("run", config, "--set", "vi.steps=4", "--resume", partial)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{data} changed" in err and "sha256" in err
    assert len(list((partial / "cells" / "my_sweep").iterdir())) == 1  # nothing mixed in


def test_resume_refuses_another_thread_count(partial_run, emvi):
    config, partial, _ = partial_run  # a small run: auto gave it one thread
    code, _, err = emvi("run", config, "--set", "vi.steps=4", "--resume", partial, "--threads",
                        "2")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "torch threads: the run started with 1, now 2 (pass --threads 1)" in err


def test_a_truncated_cell_is_recomputed_on_resume(partial_run, emvi):
    config, partial, _ = partial_run
    (cell,) = (partial / "cells" / "my_sweep").iterdir()
    result = cell / "result.json"
    result.write_text(result.read_text()[:100], encoding="utf-8")  # cut mid-file
    code, out, err = emvi("run", config, "--set", "vi.steps=4", "--resume", partial, "--quiet")
    assert code == 0, err
    final = partial.with_name(partial.name.removesuffix(".partial"))
    cells = json.loads((final / "metrics.json").read_text())["experiments"]["my_sweep"]["cells"]
    assert [c["cell"] for c in cells] == ["seed=0", "seed=1", "seed=2"]
    assert not (final / ".lock").exists()


def test_a_run_in_use_cannot_be_resumed_twice(partial_run, emvi):
    from emvi.experiments import store

    config, partial, _ = partial_run
    fd = store.lock(partial)  # as a second process resuming it would hold it
    try:
        code, _, err = emvi("run", config, "--set", "vi.steps=4", "--resume", partial)
    finally:
        store.unlock(fd)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "in use by another emvi process" in err and f"pid {os.getpid()}" in err
    # a lock file left by a process that died holds nothing: the resume goes ahead
    (partial / ".lock").write_text("999999999\n", encoding="utf-8")
    code, _, err = emvi("run", config, "--set", "vi.steps=4", "--resume", partial, "--quiet")
    assert code == 0, err
