"""Start-up: the command installs its signal handling before the heavy imports, so an
interrupt at any moment ends in one line with status 130, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: sends the signal to itself while torch is being imported (as a user's Ctrl-C would)
DURING_IMPORT = """
import os, signal, sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.{signal})
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = ["emvi", "run", "two_coins", "--smoke", "--quiet", "--out", "runs"]
import runpy
runpy.run_module("emvi.experiments", run_name="__main__")
"""


def test_importing_the_command_loads_no_heavy_module():
    code = ("import sys, emvi.experiments.cli; heavy = [m for m in ('torch', 'pyro', 'numpy', "
            "'emvi.models', 'emvi.inference') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_an_interrupt_during_start_up_is_one_line_and_130(signum, tmp_path):
    proc = subprocess.run([sys.executable, "-c", DURING_IMPORT.format(signal=signum)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "emvi: interrupted", proc.stderr
    assert not (tmp_path / "runs").exists()


def test_sigterm_handler_is_put_back_after_the_command(emvi):
    before = signal.getsignal(signal.SIGTERM)
    assert emvi("list")[0] == 0
    assert signal.getsignal(signal.SIGTERM) is before
