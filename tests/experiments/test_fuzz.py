"""Fuzzing the command: mutated configs and a corpus of hostile ones.

Every case must end in exit 0, or in exit 2 with one line ``emvi: error: ...``: never a
traceback, never exit 1 (a bug in emvi, which the fuzz exists to find). Whatever the
outcome, nothing outside the run directory is written or deleted, and a successful run
saves no NaN or infinity in any number.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import tomli_w
import tomllib
from emvi.experiments.config import CONFIG_DIR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: small shipped configs (the fuzz runs what survives, in smoke mode)
CONFIGS = ["two_coins", "kmeans", "gmm_1d", "poisson", "regression"]
EXAMPLES = 60
#: names that try to become paths or code; ``{victim}`` is the victim folder's absolute path
HOSTILE = ["../../../../victim", "../../../../../victim", "{victim}", "{victim}/x", "..", ".",
           "a\x00b", "x" * 400, "Seeds", "con", "this:Zen", "os:system", "../victim/x.py:X",
           "{victim}/evil.py:Counts", "antigravity:X"]

scalars = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["kmeans", "gaussian_mixture", "random", "lbfgs", "adam", "spherical",
                     "données.csv", "missing.py:Model", "ünïcödé", "", "1e400"] + HOSTILE),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.text(max_size=6), scalars, max_size=2))


def paths(tree: dict, prefix=()) -> list[tuple]:
    out = []
    for key, value in tree.items():
        out.append(prefix + (key,))
        if isinstance(value, dict):
            out += paths(value, prefix + (key,))
    return out


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(CONFIGS))
    tree = tomllib.loads((CONFIG_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(tree)))
        node = tree
        for key in path[:-1]:
            node = node[key]
        action = draw(st.sampled_from(["delete", "replace", "add", "nest"]))
        if action == "delete":
            node.pop(path[-1], None)
        elif action == "replace":
            node[path[-1]] = draw(values)
        elif action == "add":
            node[draw(st.one_of(st.text(min_size=1, max_size=10),
                                st.sampled_from(HOSTILE)))] = draw(values)
        elif "experiments" not in tree:  # the experiment under a (possibly hostile) name
            body = {k: v for k, v in tree.items() if k != "description"}
            tree = {"experiments": {draw(st.sampled_from(HOSTILE + ["ok"])): body}}
        if not tree:
            break
    overrides = draw(st.lists(st.tuples(st.sampled_from(["data.n", "em.tol", "model.k",
                                                         "vi.lr", "init.method", "x.y",
                                                         "model.name"]),
                                        st.one_of(st.text(max_size=8),
                                                  st.sampled_from(HOSTILE))), max_size=1))
    return tree, [f"{k}={v}" for k, v in overrides]


# -- what every case must show ---------------------------------------------------------------
def snapshot(folder: Path, skip: str = "runs") -> dict[str, bytes | None]:
    """Every path under ``folder`` (but ``skip``) with its content; ``None`` for folders."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))
            if p.relative_to(folder).parts[0] != skip}


def no_constant(name):
    raise AssertionError(f"{name} saved in a results file")


def check_outcome(folder: Path, before: dict, code: int, out: str, err: str) -> None:
    """Exit 0 or one line with exit 2; nothing touched outside ``folder/runs/<cfg>/<run>``;
    no NaN or infinity saved."""
    assert "Traceback" not in err, err
    assert code in (0, 2), (code, err)
    assert snapshot(folder) == before, "written or deleted outside the run directory"
    runs = folder / "runs"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("emvi: error: "), err
        assert not runs.exists(), list(runs.rglob("*"))  # a failed fresh run leaves nothing
        return
    assert out.strip().startswith("report: ") and err == "", err
    report = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    run = report.parent
    assert run.parent.parent == runs and [p.name for p in runs.iterdir()] == [run.parent.name]
    assert [p.name for p in run.parent.iterdir()] == [run.name]
    for path in run.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constant)
    for path in run.rglob("history.csv"):
        with open(path, encoding="utf-8") as handle:
            for row in list(csv.reader(handle))[1:]:
                numbers = [float(x) for x in row if x.replace(".", "", 1).lstrip("-")[:1]
                           .isdigit() or x.lower() in ("nan", "inf", "-inf")]
                assert all(math.isfinite(x) for x in numbers), (path, row)


@pytest.fixture
def victim_folder(tmp_path):
    def make(folder: Path) -> Path:
        victim = folder / "victim"
        victim.mkdir()
        (victim / "keep.txt").write_text("precious", encoding="utf-8")
        return victim

    return make


def _hostile(text: str, victim: Path) -> str:
    return text.replace("{victim}", str(victim))


def _dumps(tree, victim: Path) -> str:
    def sub(value):
        if isinstance(value, dict):
            return {_hostile(k, victim): sub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v) for v in value]
        return _hostile(value, victim) if isinstance(value, str) else value

    return tomli_w.dumps(sub(tree))


@pytest.mark.slow
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_mutated_configs_never_crash(case, tmp_path_factory, capsys, victim_folder):
    from emvi.experiments.cli import main

    tree, overrides = case
    folder = tmp_path_factory.mktemp("fuzz")
    victim = victim_folder(folder)
    path = folder / "fuzzed.toml"
    try:
        path.write_text(_dumps(tree, victim), encoding="utf-8")
    except (TypeError, ValueError):  # not representable in TOML: nothing to test
        return
    args = ["run", str(path), "--smoke", "--quiet", "--out", str(folder / "runs")]
    for text in overrides:
        args += ["--set", _hostile(text, victim)]
    before = snapshot(folder)
    code = main(args)
    out, err = capsys.readouterr()
    check_outcome(folder, before, code, out, err)


# -- the corpus: path components, code-bearing names, changed inputs ------------------------
COINS = {"model": {"name": "two_coins", "k": 2, "tosses": 10, "weights": [0.5, 0.5]},
         "truth": {"probs": [0.6, 0.2]}, "data": {"n": 60, "seed": 0},
         "init": {"method": "params", "params": {"probs": [0.8, 0.7]}},
         "em": {"max_iter": 5}, "vi": {"steps": 3}, "plots": {"enabled": False}}
COUNTS = {"model": {"name": "{model}", "k": 2},
          "truth": {"weights": [0.5, 0.5], "rates": [1.0, 9.0]},
          "data": {"n": 60, "seed": 0}, "em": {"max_iter": 5}, "vi": {"steps": 3},
          "plots": {"enabled": False}}
FAMILY = """from pathlib import Path
if Path(__file__).resolve().parent.name == "victim":  # proof that code outside ran
    Path(__file__).with_name("imported.txt").write_text("ran", encoding="utf-8")
from emvi.models.families.poisson import Poisson
class Counts(Poisson):
    name = "counts"
"""


def _with_model(name: str) -> dict:
    return {**COUNTS, "model": {"name": name, "k": 2}}


CORPUS = {
    "relative traversal": ({"experiments": {"../../../../victim": COINS}}, 2),
    "deeper traversal": ({"experiments": {"../" * 12 + "tmp/emvi-victim": COINS}}, 2),
    "absolute name": ({"experiments": {"{victim}": COINS}}, 2),
    "absolute name below": ({"experiments": {"{victim}/sub": COINS}}, 2),
    "dot dot": ({"experiments": {"..": COINS}}, 2),
    "dot": ({"experiments": {".": COINS}}, 2),
    "hidden": ({"experiments": {".git": COINS}}, 2),
    "nul": ({"experiments": {"a\x00b": COINS}}, 2),
    "very long": ({"experiments": {"x" * 5000: COINS}}, 2),
    "case only": ({"experiments": {"Coins": COINS, "coins": COINS}}, 2),
    "a safe name": ({"experiments": {"coins-2.a_b": COINS}}, 0),
    "stdlib module with effects": (_with_model("this:Zen"), 2),
    "os.system": (_with_model("os:system"), 2),
    "file outside the folder": (_with_model("../victim/evil.py:Counts"), 2),
    "absolute file outside": (_with_model("{victim}/evil.py:Counts"), 2),
    "symlink out of the folder": (_with_model("link.py:Counts"), 2),
    "file in the folder": (_with_model("mine.py:Counts"), 0),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_corpus(name, tmp_path, victim_folder, emvi):
    tree, expected = CORPUS[name]
    folder = tmp_path / "work"
    folder.mkdir()
    victim = victim_folder(tmp_path)
    (victim / "evil.py").write_text(FAMILY, encoding="utf-8")
    (folder / "mine.py").write_text(FAMILY, encoding="utf-8")
    (folder / "link.py").symlink_to(victim / "evil.py")
    config = folder / "cfg.toml"
    config.write_text(_dumps(tree, victim), encoding="utf-8")
    before, outside = snapshot(folder), snapshot(tmp_path, skip="work")
    code, out, err = emvi("run", config, "--quiet", "--out", folder / "runs")
    assert code == expected, err
    check_outcome(folder, before, code, out, err)
    assert snapshot(tmp_path, skip="work") == outside
    assert not (victim / "imported.txt").exists()  # no code outside the folder ran


@pytest.mark.parametrize("change", ["data file halved", "data file gone", "torch threads"])
def test_corpus_resume_with_changed_inputs(change, partial_run, emvi, tmp_path, monkeypatch):
    config, partial, _ = partial_run
    data = tmp_path / "d.csv"
    if change == "data file halved":
        data.write_text(data.read_text()[: len(data.read_text()) // 2], encoding="utf-8")
    elif change == "data file gone":
        data.unlink()
    before = snapshot(tmp_path, skip="none")
    if change == "torch threads":  # the run had auto's one thread
        monkeypatch.setenv("EMVI_THREADS", "2")
    code, _, err = emvi("run", config, "--set", "vi.steps=4", "--resume", partial)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("emvi: error: ") and "Traceback" not in err
    assert snapshot(tmp_path, skip="none") == before  # the partial run is left as it was
