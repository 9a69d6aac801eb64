"""A bad config or command line: one line naming the file and the key, exit 2, no traceback."""

from __future__ import annotations

import pytest


def one_line_error(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("emvi: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("edit, key, words", [
    (("data = { n = 100, seed = 0 }", "data = { n = 100, sed = 0 }"), "data.sed",
     "did you mean 'seed'"),
    (('name = "two_coins"', 'name = "two_coin"'), "model.name", "did you mean 'two_coins'"),
    (("data = { n = 100, seed = 0 }", 'data = { n = "many", seed = 0 }'), "data.n",
     "expected an integer"),
    (("data = { n = 100, seed = 0 }", "data = { n = -5, seed = 0 }"), "data.n", ">= 1"),
    (("vi = { steps = 20 }", 'vi = { steps = 20, optimizer = "adamw" }'), "vi.optimizer",
     "did you mean 'adam'"),
    (("truth = { probs = [0.6, 0.2] }", "truth = { probs = [1.6, 0.2] }"), "truth.probs",
     "probabilities"),
    (("tosses = 10", "tosses = 10, toses = 3"), "model.toses", "did you mean 'tosses'"),
    (("em = { max_iter = 50 }", "em = { max_iter = 50 }\nextra = 1"), "extra", "unknown key"),
    (("data = { n = 100, seed = 0 }", 'data = { file = "missing.csv" }'), "data.file",
     "no such file"),
    (("tosses = 10", "tosses = 0"), "model", "tosses"),
    (("data = { n = 100, seed = 0 }", "data = { n = 100, seed = 0, missing = 1.5 }"),
     "data.missing", "expected a fraction of entries in [0, 1), got 1.5"),
    (("data = { n = 100, seed = 0 }", 'data = { n = 100, missing = { fraction = 0.2, '
      'mechanism = "mnar" } }'), "data.missing.mechanism", "expected one of ['mcar', 'mar']"),
    (("data = { n = 100, seed = 0 }", "data = { n = 100, seed = 0, missing = 0.2 }"),
     "data.missing", "the model's observations have one coordinate"),
])
def test_bad_config(edit, key, words, emvi, write_config, coins_config, tmp_path):
    old, new = edit
    assert old in coins_config
    path = write_config(coins_config.replace(old, new))
    code, _, err = emvi("run", path, "--out", tmp_path / "runs")
    line = one_line_error(code, err)
    assert str(path) in line and key in line and words in line, line
    assert not (tmp_path / "runs").exists()


def test_invalid_toml_and_missing_config(emvi, write_config, tmp_path):
    path = write_config("model = {")
    line = one_line_error(*emvi("run", path)[::2])
    assert str(path) in line and "invalid TOML" in line
    line = one_line_error(*emvi("run", "seedz")[::2])
    assert "did you mean 'seeds'" in line


def test_bad_command_line(emvi):
    one_line_error(*emvi("run")[::2])
    one_line_error(*emvi("frobnicate")[::2])
    line = one_line_error(*emvi("run", "seeds", "--set", "data.n")[::2])
    assert "key.path=value" in line


def test_fit_failing_mid_run_leaves_no_run_directory(emvi, write_config, coins_config,
                                                     tmp_path, monkeypatch):
    import emvi.experiments.shared_start as shared_start
    from emvi.models.validation import InputError

    def broken(*args, **kwargs):
        raise InputError("vi: the optimiser produced NaN")

    monkeypatch.setattr(shared_start, "fit_vi", broken)
    path = write_config(coins_config)
    line = one_line_error(*emvi("run", path, "--quiet", "--out", tmp_path / "runs")[::2])
    assert "NaN" in line
    assert not (tmp_path / "runs").exists()  # emvi made runs/ and runs/cfg/: both go


def test_failed_run_keeps_an_out_folder_the_user_made(emvi, write_config, coins_config,
                                                      tmp_path, monkeypatch):
    import emvi.experiments.shared_start as shared_start
    from emvi.models.validation import InputError

    def broken(*args, **kwargs):
        raise InputError("vi: refused")

    monkeypatch.setattr(shared_start, "fit_vi", broken)
    out = tmp_path / "mine"
    out.mkdir()  # empty, made by the user
    one_line_error(*emvi("run", write_config(coins_config), "--quiet", "--out", out)[::2])
    assert out.is_dir() and not list(out.iterdir())


@pytest.mark.parametrize("error", [IndexError("index 3 is out of bounds"),
                                   RuntimeError("shape mismatch"), KeyError("locs"),
                                   ValueError("a plain ValueError from inside emvi")])
def test_a_bug_exits_1_with_one_line_saying_so(error, emvi, write_config, coins_config,
                                               tmp_path, monkeypatch):
    import emvi.experiments.shared_start as shared_start

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(shared_start, "fit_em", broken)
    monkeypatch.delenv("EMVI_DEBUG", raising=False)
    code, _, err = emvi("run", write_config(coins_config), "--quiet", "--out", tmp_path / "r")
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"emvi: internal error: {type(error).__name__}")
    assert "bug in emvi" in lines[0] and "EMVI_DEBUG=1" in lines[0]
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("EMVI_DEBUG", "1")  # the traceback, for a bug report
    with pytest.raises(type(error)):
        emvi("run", write_config(coins_config), "--quiet", "--out", tmp_path / "r")


def test_an_error_raised_in_the_users_model_file_names_it(emvi, write_config, tmp_path):
    (tmp_path / "user.py").write_text(
        "from emvi import Family\n"
        "from emvi.models.families.poisson import Poisson\n"
        "class Counts(Poisson):\n"
        "    name = 'counts'\n"
        "    def check_data(self, data, name='data'):\n"
        "        raise ValueError('my counts must be small')\n", encoding="utf-8")
    path = write_config(USER_CONFIG.format(name="user.py:Counts"))
    line = one_line_error(*emvi("run", path, "--out", tmp_path / "runs")[::2])
    assert "user.py line 6" in line and "my counts must be small" in line, line


USER_CONFIG = """
model = {{ name = "{name}", k = 2 }}
truth = {{ weights = [0.5, 0.5], rates = [1.0, 9.0] }}
data = {{ n = 50, seed = 0 }}
"""


@pytest.mark.parametrize("source, name, words", [
    (None, "missing.py:Counts", "no such file"),
    ("class Other:\n    pass\n", "user.py:Counts", "no class 'Counts' in"),
    ("class Counts:\n    pass\n", "user.py:Counts", "does not meet the model contract"),
    ("from emvi import Family\nclass Counts(Family):\n    pass\n", "user.py:Counts",
     "does not define"),
    ("raise RuntimeError('broken on import')\n", "user.py:Counts", "broken on import"),
    (None, "no_such_module_xyz:Counts", "entry-point group 'emvi.models'"),
])
def test_bad_user_model_reference(source, name, words, emvi, write_config, tmp_path):
    if source is not None:
        (tmp_path / "user.py").write_text(source, encoding="utf-8")
    path = write_config(USER_CONFIG.format(name=name))
    line = one_line_error(*emvi("run", path, "--out", tmp_path / "runs")[::2])
    assert str(path) in line and "model.name" in line and words in line, line


FILE_CONFIG = """
model = {{ name = "gaussian_mixture", k = 2, dim = {dim}, covariance = "spherical" }}
data = {{ file = "{file}"{columns} }}
vi = {{ steps = 5 }}
"""


def _npy(path, array, **kwargs):
    import numpy as np

    np.save(path, array, **kwargs)


@pytest.mark.parametrize("file, content, dim, columns, words", [
    ("bad.csv", "height\n170\nabc\n165\n", 1, "", "line 3, column 'height': expected a number"),
    ("nan.csv", "height\n170\nnan\n165\n", 1, "", "data: every entry is missing (NaN) in row 1"),
    ("na.csv", "height\n170\nNA\n\n165\n", 1, "", "data: every entry is missing (NaN) in row 1"),
    ("inf.csv", "a,b\n1,2\ninf,4\n3,\n", 2, "", "data: expected finite values (or NaN for a "
     "missing entry), found inf at index (1, 0)"),
    ("hollow.csv", "a,b\n1,\n2,NA\n3,n/a\n", 2, "", "data: every entry of column 1 is missing"),
    ("wide.csv", "a,b\n1,2\n3,4\n", 1, "", "data: expected shape (n, 1)"),
    ("cols.csv", "a,b\n1,2\n3,4\n", 1, ', columns = ["c"]', "no column 'c'"),
    ("empty.csv", "height\n", 1, "", "header row and data"),
    ("pickled.npy", "object", 1, "", "cannot read pickled.npy"),
    ("text.npy", "strings", 1, "", "expected numbers in text.npy"),
    ("cube.npy", "cube", 1, "", "expected a 1-D or 2-D array"),
    ("names.npy", "ok", 1, ', columns = ["height"]', ".npy files have no column names"),
    ("data.txt", "1\n2\n", 1, "", "expected a .csv or .npy file"),
    ("under.csv", "height\n170\n1_000\n165\n", 1, "", "line 3, column 'height': expected a "
     "number, got '1_000'"),
    ("arabic.csv", "height\n170\n\u0661\u0662\n165\n", 1, "", "line 3, column 'height'"),
    ("zip.npy", "npz", 1, "", "zip.npy is an .npz archive"),
    ("short.npy", "truncated", 1, "", "cannot read short.npy"),
])
def test_bad_data_file(file, content, dim, columns, words, emvi, write_config, tmp_path):
    import numpy as np

    path = tmp_path / file
    if content == "object":
        _npy(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif content == "strings":
        _npy(path, np.array(["a", "b"]))
    elif content == "cube":
        _npy(path, np.zeros((2, 2, 2)))
    elif content == "ok":
        _npy(path, np.arange(10.0))
    elif content == "npz":
        with open(path, "wb") as handle:
            np.savez(handle, data=np.arange(10.0))
    elif content == "truncated":
        _npy(path, np.arange(100.0))
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_text(content, encoding="utf-8")
    config = write_config(FILE_CONFIG.format(file=file, dim=dim, columns=columns))
    line = one_line_error(*emvi("run", config, "--out", tmp_path / "runs")[::2])
    assert str(config) in line and words in line, line
    assert not (tmp_path / "runs").exists()


def test_data_file_runs(emvi, write_config, tmp_path):
    lines = ["height,weight"] + [f"{160 + (i % 7) * 3 + (20 if i % 2 else 0)},{i}"
                                 for i in range(80)]
    (tmp_path / "heights.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_config(FILE_CONFIG.format(file="heights.csv", dim=1,
                                             columns=', columns = ["height"]'))
    code, out, err = emvi("run", config, "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err
    assert "report:" in out


def test_missing_cells_in_a_data_file(emvi, write_config, tmp_path):
    """Empty cells and NA are missing entries: a Gaussian mixture fits around them; a model
    that cannot take missing values says which rows, in one line."""
    lines = ["height,weight"] + [f"{160 + (i % 7) * 3 + (20 if i % 2 else 0)},"
                                 f"{'' if i % 5 == 0 else 'NA' if i % 7 == 0 else 60 + i}"
                                 for i in range(80)]
    (tmp_path / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_config(FILE_CONFIG.format(file="people.csv", dim=2, columns=""))
    code, out, err = emvi("run", config, "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err
    coins = write_config('model = { name = "two_coins", k = 2, tosses = 10 }\n'
                         'data = { file = "heads.csv", columns = ["heads"] }\n', "coins.toml")
    (tmp_path / "heads.csv").write_text("heads,day\n3,1\n,2\n7,3\nNA,4\n", encoding="utf-8")
    line = one_line_error(*emvi("run", coins, "--out", tmp_path / "runs")[::2])
    assert "data: missing values (NaN) in rows 1, 3; this model cannot take missing" in line


def test_non_positive_definite_init_in_config(emvi, write_config, tmp_path):
    config = write_config("""
model = { name = "gaussian_mixture", k = 2, dim = 2 }
data = { n = 50 }

[truth]
weights = [0.5, 0.5]
locs = [[0.0, 0.0], [5.0, 5.0]]
covariances = [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]

[init]
method = "params"

[init.params]
weights = [0.5, 0.5]
locs = [[0.0, 0.0], [5.0, 5.0]]
covariances = [[[1.0, 3.0], [3.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]
""")
    line = one_line_error(*emvi("run", config, "--out", tmp_path / "runs")[::2])
    assert "covariances: expected symmetric positive-definite" in line


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(emvi, write_config, tmp_path):
    lines = ["height"] + [f"{160 + (i % 7) * 3 + (20 if i % 2 else 0)}" for i in range(40)]
    (tmp_path / "bom.csv").write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    config = write_config(FILE_CONFIG.format(file="bom.csv", dim=1,
                                             columns=', columns = ["height"]'))
    code, _, err = emvi("run", config, "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err


@pytest.mark.parametrize("override, key", [
    ("foo.bar=1", "--set: foo.bar: unknown key 'foo'"),
    ("data.sed=1", "--set: data.sed: unknown key 'sed' in [data] (did you mean 'seed'?)"),
    ("data.n.x=1", "--set: data.n.x: data.n is not a table"),
    ("experiments.x.data.n=5", "--set: experiments.x.data.n: this config has no"),
])
def test_set_errors_name_the_key_as_written(override, key, emvi, write_config, coins_config,
                                            tmp_path):
    line = one_line_error(*emvi("run", write_config(coins_config), "--set", override,
                                "--out", tmp_path / "runs")[::2])
    assert key in line, line


def test_set_errors_in_a_config_of_several_experiments(emvi, tmp_path):
    line = one_line_error(*emvi("run", "seeds", "--set", "foo.bar=1", "--out",
                                tmp_path / "runs")[::2])
    assert "--set: foo.bar: unknown key 'foo'" in line, line
    line = one_line_error(*emvi("run", "seeds", "--set", "experiments.kmean.data.n=5",
                                "--out", tmp_path / "runs")[::2])
    assert "experiments.kmean.data.n" in line and "did you mean 'kmeans'" in line, line


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished smoke run, made once for the module."""
    from pathlib import Path

    from emvi.experiments.cli import main

    root = tmp_path_factory.mktemp("finished")
    assert main(["run", "two_coins", "--smoke", "--quiet", "--out", str(root)]) == 0
    return next(p for p in Path(root).glob("two_coins/*") if p.is_dir())


@pytest.fixture
def finished(finished_run, tmp_path):
    """A private copy of the finished run, to damage."""
    import shutil

    return shutil.copytree(finished_run, tmp_path / finished_run.name)


@pytest.mark.parametrize("edit, words", [
    (lambda m: m.pop("config"), "config: missing"),
    (lambda m: m.update(experiments=[]), "experiments: expected a table"),
    (lambda m: m["experiments"]["two_coins"]["cells"][0].pop("fits"),
     "experiments.two_coins.cells[0].fits: missing"),
    (lambda m: m["experiments"]["two_coins"]["cells"][0]["fits"]["em"].update(
        log_likelihood="high"), "cells[0].fits.em.log_likelihood: expected an integer or a "
     "number"),
    (lambda m: m["experiments"].update({"../../x": m["experiments"].pop("two_coins")}),
     "not a usable experiment name"),
    (lambda m: m["experiments"]["two_coins"]["cells"][0]["model"].update(bogus=1),
     "model.bogus: not an option of two_coins"),
    (lambda m: m["experiments"]["two_coins"]["cells"][0]["fits"].update(
        xx=m["experiments"]["two_coins"]["cells"][0]["fits"]["em"]), "expected fits labelled"),
])
def test_report_on_malformed_results_is_one_line(edit, words, emvi, finished):
    import json

    run = finished
    metrics = json.loads((run / "metrics.json").read_text())
    edit(metrics)
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    line = one_line_error(*emvi("report", run)[::2])
    assert str(run / "metrics.json") in line and words in line, line


@pytest.mark.parametrize("content", ["{", "[1, 2]", '{"config": NaN}', "\xff\xfe"])
def test_report_on_unreadable_results_is_one_line(content, emvi, finished):
    run = finished
    (run / "metrics.json").write_bytes(content.encode("latin-1"))
    line = one_line_error(*emvi("report", run)[::2])
    assert str(run / "metrics.json") in line, line


def test_a_huge_n_is_refused_before_anything_is_allocated(emvi, write_config, coins_config,
                                                          tmp_path, monkeypatch):
    from emvi.experiments import memory
    from emvi.models import TwoCoins

    sizes = []
    real = TwoCoins.simulate

    def simulate(self, params, n, *args, **kwargs):
        sizes.append(n)
        assert n <= 10**6, "the huge cell was simulated"
        return real(self, params, n, *args, **kwargs)

    monkeypatch.setattr(TwoCoins, "simulate", simulate)
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 2**30)
    line = one_line_error(*emvi("run", write_config(coins_config), "--set",
                                "data.n=1000000000", "--out", tmp_path / "runs")[::2])
    assert "data.n: n=1000000000 observations" in line and "8.0 GiB are available" in line
    assert max(sizes) == 1 and not (tmp_path / "runs").exists()


def test_memory_estimate_grows_with_n_k_and_restarts():
    from emvi.experiments.memory import available_bytes, cell_bytes

    base = cell_bytes(1000, 2, 3)
    assert cell_bytes(2000, 2, 3) == 2 * base
    assert cell_bytes(1000, 2, 6) > base and cell_bytes(1000, 2, 3, restarts=10) > base
    assert cell_bytes(1000, 2, 3, restarts=10, chunk_size=10) < cell_bytes(1000, 2, 3, 10)
    assert cell_bytes(10**9, 1, 2) > 100 * 2**30  # about 16 bytes * 20 values per point
    assert available_bytes() is None or available_bytes() > 0


def test_a_run_leaves_the_callers_random_state_unchanged(coins_config, write_config, tmp_path):
    import torch
    from emvi.experiments.config import load
    from emvi.experiments.runner import run

    config = load(str(write_config(coins_config.replace('method = "params"',
                                                         'method = "random"'))))
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    assert (run(config, tmp_path / "a") / "metrics.json").is_file()
    assert torch.equal(torch.get_rng_state(), state)


def test_a_non_finite_number_is_saved_as_null_never_as_nan(emvi, write_config, coins_config,
                                                           tmp_path, monkeypatch):
    import json

    import emvi.experiments.runner as runner

    real = runner.fit_summary

    def summary(fit, data):
        return {**real(fit, data), "bic": float("nan"), "aic": float("inf")}

    monkeypatch.setattr(runner, "fit_summary", summary)
    code, out, err = emvi("run", write_config(coins_config), "--quiet", "--out", tmp_path)
    assert code == 0, err

    def refuse(name):
        raise AssertionError(f"{name} in metrics.json")

    run = out.strip().removeprefix("report: ").removesuffix("/report.md")
    metrics = json.loads(open(f"{run}/metrics.json").read(), parse_constant=refuse)
    fits = metrics["experiments"]["cfg"]["cells"][0]["fits"]
    assert fits["em"]["bic"] is None and fits["vi"]["aic"] is None
