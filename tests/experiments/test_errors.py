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
    import experiments.runner as runner

    def broken(*args, **kwargs):
        raise ValueError("vi: the optimiser produced NaN")

    monkeypatch.setattr(runner, "fit_vi", broken)
    path = write_config(coins_config)
    line = one_line_error(*emvi("run", path, "--quiet", "--out", tmp_path / "runs")[::2])
    assert "NaN" in line
    assert list((tmp_path / "runs").rglob("*")) in ([], [tmp_path / "runs" / "cfg"])


USER_CONFIG = """
model = {{ name = "{name}", k = 2 }}
truth = {{ weights = [0.5, 0.5], rates = [1.0, 9.0] }}
data = {{ n = 50, seed = 0 }}
"""


@pytest.mark.parametrize("source, name, words", [
    (None, "missing.py:Counts", "no such file"),
    ("class Other:\n    pass\n", "user.py:Counts", "no class 'Counts' in"),
    ("class Counts:\n    pass\n", "user.py:Counts", "does not meet the model contract"),
    ("from models import Family\nclass Counts(Family):\n    pass\n", "user.py:Counts",
     "does not define"),
    ("raise RuntimeError('broken on import')\n", "user.py:Counts", "broken on import"),
    (None, "no_such_module_xyz:Counts", "cannot import module"),
])
def test_bad_user_model_reference(source, name, words, emvi, write_config, tmp_path):
    if source is not None:
        (tmp_path / "user.py").write_text(source, encoding="utf-8")
    path = write_config(USER_CONFIG.format(name=name))
    line = one_line_error(*emvi("run", path, "--out", tmp_path / "runs")[::2])
    assert str(path) in line and "model.name" in line and words in line, line
