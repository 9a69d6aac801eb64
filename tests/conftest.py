"""Shared test settings: hypothesis runs derandomised (CI must not flake), no deadlines;
fits on one torch thread.

The suite's fits are small, and on a shared 2-core machine torch's default two threads
waited on each other: tests/inference/test_invariants.py and
test_restarts_and_convergence.py took 940 s with OMP_NUM_THREADS=2 and 106 s with 1 (other
work running). ``EMVI_TEST_THREADS`` sets another count; subprocesses inherit it through
``OMP_NUM_THREADS``.
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

THREADS = int(os.environ.get("EMVI_TEST_THREADS", "1"))
os.environ["OMP_NUM_THREADS"] = str(THREADS)
torch.set_num_threads(THREADS)

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("explore", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def emvi(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from emvi.experiments.cli import main

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
