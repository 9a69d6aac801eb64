"""Names from a config never lead out of the run directory; runs start and resume safely.

Each hostile case sets a victim folder beside the output and proves it untouched.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from emvi.experiments import store

COINS = {"model": {"name": "two_coins", "k": 2, "tosses": 10, "weights": [0.5, 0.5]},
         "truth": {"probs": [0.6, 0.2]}, "data": {"n": 40, "seed": 0},
         "init": {"method": "params", "params": {"probs": [0.8, 0.7]}},
         "em": {"max_iter": 5}, "vi": {"steps": 3}, "plots": {"enabled": False}}


def files(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its content (``None`` for folders)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def victim(tmp_path):
    """``tmp_path/victim/keep.txt``; the test's output goes to ``tmp_path/work/runs``."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious", encoding="utf-8")
    (tmp_path / "work").mkdir()
    return folder


def one_line(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emvi: error: "), err
    return lines[0]


HOSTILE = ["../../../../victim", "../../../../../victim", "..", ".", ".hidden", "a/b",
           "a\\b", "", "a\x00b", "x" * 300, "space name", "tab\tname", "new\nline", "ünï",
           "{victim}", "{victim}/sub"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_experiment_names_are_refused_before_anything_is_written(name, victim, emvi,
                                                                         tmp_path):
    name = name.replace("{victim}", str(victim))
    config = tmp_path / "work" / "cfg.toml"
    config.write_text(tomli_w.dumps({"experiments": {"ok": COINS, name: COINS}}),
                      encoding="utf-8")
    before = files(tmp_path)
    line = one_line(*emvi("run", config, "--quiet", "--out", tmp_path / "work" / "runs")[::2])
    assert "experiments." in line and "folder name" in line, line
    assert files(tmp_path) == before  # nothing written, nothing deleted
    assert (victim / "keep.txt").read_text() == "precious"


def test_names_differing_only_in_case_are_refused(emvi, tmp_path, victim):
    config = tmp_path / "work" / "cfg.toml"
    config.write_text(tomli_w.dumps({"experiments": {"Coins": COINS, "coins": COINS}}),
                      encoding="utf-8")
    line = one_line(*emvi("run", config, "--out", tmp_path / "work" / "runs")[::2])
    assert "experiments.coins" in line and "differs only in case" in line


@pytest.mark.parametrize("stem", ["..", "with space", "x" * 120])
def test_a_config_file_name_that_is_no_folder_name_is_refused(stem, emvi, tmp_path):
    config = tmp_path / f"{stem}.toml"
    config.write_text(tomli_w.dumps(COINS), encoding="utf-8")
    line = one_line(*emvi("run", config, "--out", tmp_path / "runs")[::2])
    assert "file name" in line and "rename the file" in line
    assert not (tmp_path / "runs").exists()


def test_a_sweep_that_repeats_a_value_is_refused(emvi, write_config, tmp_path):
    body = dict(COINS, data={"n": 40, "seed": [1, 2, 1]})
    line = one_line(*emvi("run", write_config(tomli_w.dumps(body)), "--out",
                          tmp_path / "runs")[::2])
    assert "data.seed" in line and "share one folder" in line


@pytest.mark.parametrize("cell", ["../../../../victim", "/abs/olute", "..", "a/b", "x" * 500,
                                  "n=1,seed=2", "ünï", "a\x00b"])
def test_cell_folders_stay_inside_the_run(cell, tmp_path):
    run = tmp_path / "run.partial"
    run.mkdir()
    path = store.cell_path(run, "exp", cell)
    assert run.resolve() in path.parents and path.parent.name == "exp"
    assert store.name_problem(path.name) is None
    store.save_cell(run, "exp", cell, {"cell": cell}, "a\n1\n", {"x": np.zeros(2)})
    assert store.load_cell(run, "exp", cell) == {"cell": cell}
    assert [p.name for p in tmp_path.iterdir()] == ["run.partial"]


def test_cell_folders_differ_for_ids_that_differ_only_in_case_or_character():
    ids = ["a b", "a_b", "a/b", "A b", "covariance=Full", "covariance=full"]
    assert len({store.cell_dir(i).casefold() for i in ids}) == len(ids)


def test_store_refuses_to_write_or_delete_outside_the_run(tmp_path, victim):
    run = tmp_path / "work" / "run.partial"
    run.mkdir()
    before = files(tmp_path)
    for write in (lambda: store.write_atomic(victim / "keep.txt", "gone", run),
                  lambda: store.write_json(run / ".." / "x.json", {}, run),
                  lambda: store.save_cell(run, "../../../victim", "all", {}, "", {}),
                  lambda: store.cell_path(run, "/abs", "all")):
        with pytest.raises(store.PathError):
            write()
    assert files(tmp_path) == before


def test_a_symlink_in_the_run_cannot_lead_writes_or_deletes_out(tmp_path, victim):
    run = tmp_path / "work" / "run.partial"
    (run / "cells").mkdir(parents=True)
    (run / "cells" / "exp").symlink_to(victim, target_is_directory=True)
    (victim / "all").mkdir()  # what save_cell would replace
    (victim / "all" / "result.json").write_text("{}", encoding="utf-8")
    before = files(victim)
    with pytest.raises(store.PathError, match="outside the run directory"):
        store.save_cell(run, "exp", "all", {"cell": "all"}, "", {})
    with pytest.raises(store.PathError):
        store.write_atomic(run / "cells" / "exp" / "keep.txt", "gone", run)
    assert files(victim) == before


# -- starting runs -------------------------------------------------------------------------
def test_concurrent_starts_in_the_same_second_get_distinct_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(store.time, "strftime", lambda fmt: "20260101-000000")
    barrier, paths, errors = threading.Barrier(8), [], []

    def start():
        barrier.wait()
        try:
            paths.append(store.new_run(tmp_path / "runs", "cfg")[0])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(paths)) == 8


def test_a_start_that_loses_the_race_for_a_name_takes_the_next(tmp_path, monkeypatch):
    """Another process creates the run folder between any look and our mkdir."""
    monkeypatch.setattr(store.time, "strftime", lambda fmt: "20260101-000000")
    (tmp_path / "runs" / "cfg" / "20260101-000000-1").mkdir(parents=True)  # a finished run
    real_mkdir, rival = os.mkdir, []

    def mkdir(path, *args, **kwargs):
        if str(path).endswith("20260101-000000.partial") and not rival:
            rival.append(path)
            real_mkdir(path)  # the rival wins
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    path, created = store.new_run(tmp_path / "runs", "cfg")
    assert path.name == "20260101-000000-2.partial" and rival and created == []


def test_new_run_reports_only_the_folders_it_made(tmp_path):
    path, created = store.new_run(tmp_path / "a" / "b", "cfg")
    assert created == [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "cfg"]
    store.remove_run(path, created)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "mine").mkdir()
    path, created = store.new_run(tmp_path / "mine", "cfg")
    assert created == [tmp_path / "mine" / "cfg"]
    store.remove_run(path, created)
    assert (tmp_path / "mine").is_dir()
