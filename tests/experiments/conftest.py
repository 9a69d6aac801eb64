import pytest


@pytest.fixture
def emvi(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from experiments.cli import main

    def call(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def write_config(tmp_path):
    def write(text: str, name: str = "cfg.toml"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


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
