import pytest

COINS = """
model = { name = "two_coins", k = 2, tosses = 10, weights = [0.5, 0.5] }
truth = { probs = [0.6, 0.2] }
data = { n = 100, seed = 0 }
init = { method = "params", params = { probs = [0.8, 0.7] } }
em = { max_iter = 50 }
vi = { steps = 20 }
"""


@pytest.fixture
def coins_config():
    return COINS


FILE_SWEEP = """
model = { name = "gaussian_mixture", k = 2, dim = 1, covariance = "spherical" }
data = { file = "d.csv" }
init = { method = "kmeans++", seed = [0, 1, 2] }
em = { max_iter = 5 }
vi = { steps = 3 }
plots = { enabled = false }
"""


@pytest.fixture
def partial_run(tmp_path, monkeypatch, emvi):
    """A sweep over a data file interrupted after its first cell: ``(config, partial, err)``."""
    import emvi.experiments.runner as runner

    rows = [f"{x}" for x in [1.0, 1.2, 0.9, 5.0, 5.3, 4.8, 1.1, 5.1] * 3]
    (tmp_path / "d.csv").write_text("height\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "my_sweep.toml"
    config.write_text(FILE_SWEEP, encoding="utf-8")
    real, calls = runner.run_cell, []

    def interrupted_after_one(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_cell", interrupted_after_one)
    out = tmp_path / "out dir"
    code, _, err = emvi("run", config, "--quiet", "--out", out, "--set", "vi.steps=4")
    monkeypatch.setattr(runner, "run_cell", real)
    assert code == 130, err
    partial = next((out / "my_sweep").glob("*.partial"))
    return config, partial, err
