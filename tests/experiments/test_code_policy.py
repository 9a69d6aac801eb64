"""Which code emvi imports: a config may name a .py file in its own folder tree or a module
advertised in the ``emvi.models`` entry-point group; a results file names no code that
``emvi report`` runs without ``--trust-model-code``."""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

FAMILY = """
from pathlib import Path
Path({marker!r}).write_text("imported", encoding="utf-8")  # top-level code: a side effect
from emvi.models.families.poisson import Poisson


class Counts(Poisson):
    name = "counts"
"""
CONFIG = """
model = {{ name = "{name}", k = 2 }}
truth = {{ weights = [0.5, 0.5], rates = [1.0, 9.0] }}
data = {{ n = 60, seed = 0 }}
em = {{ max_iter = 5 }}
vi = {{ steps = 3 }}
plots = {{ enabled = {plots} }}
"""


def config_text(name: str, plots: bool = False) -> str:
    return CONFIG.format(name=name, plots=str(plots).lower())


def one_line(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emvi: error: "), err
    return lines[0]


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "imported.txt"


@pytest.fixture
def installed(tmp_path, marker, monkeypatch):
    """A module ``emvi_test_plugin_<n>`` importable from sys.path, with import side effects."""
    site = tmp_path / "site"
    site.mkdir()
    name = f"emvi_test_plugin_{abs(hash(str(tmp_path))) % 10**8}"
    (site / f"{name}.py").write_text(FAMILY.format(marker=str(marker)), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    yield name
    sys.modules.pop(name, None)


def test_an_installed_module_is_refused_before_its_code_runs(installed, marker, emvi,
                                                             write_config, tmp_path):
    config = write_config(config_text(f"{installed}:Counts"))
    line = one_line(*emvi("run", config, "--out", tmp_path / "runs")[::2])
    assert "model.name" in line and "entry-point group 'emvi.models'" in line, line
    assert not marker.exists() and installed not in sys.modules
    for name in ("this:Zen", "os:system", "antigravity:X"):  # stdlib modules with effects
        line = one_line(*emvi("run", write_config(config_text(name)), "--out",
                              tmp_path / "runs")[::2])
        assert "entry-point group" in line
    assert "this" not in sys.modules and "antigravity" not in sys.modules


def test_a_module_advertised_as_an_entry_point_is_used(installed, marker, emvi, write_config,
                                                       tmp_path, monkeypatch):
    from emvi.models import registry

    def entry_points(group):
        assert group == "emvi.models"
        return [EntryPoint(name="mine", value=installed, group=group)]

    monkeypatch.setattr(registry, "entry_points", entry_points)
    for name in (f"{installed}:Counts", "mine:Counts"):  # by module or entry-point name
        code, out, err = emvi("run", write_config(config_text(name)), "--quiet",
                              "--out", tmp_path / "runs")
        assert code == 0, err
    assert marker.exists()


@pytest.mark.parametrize("where", ["outside", "symlink", "absolute"])
def test_a_py_file_outside_the_config_folder_is_refused(where, marker, emvi, tmp_path):
    folder, other = tmp_path / "configs", tmp_path / "elsewhere"
    folder.mkdir()
    other.mkdir()
    (other / "evil.py").write_text(FAMILY.format(marker=str(marker)), encoding="utf-8")
    name = {"outside": "../elsewhere/evil.py:Counts", "absolute": f"{other}/evil.py:Counts",
            "symlink": "link.py:Counts"}[where]
    if where == "symlink":
        (folder / "link.py").symlink_to(other / "evil.py")
    config = folder / "cfg.toml"
    config.write_text(config_text(name), encoding="utf-8")
    line = one_line(*emvi("run", config, "--out", tmp_path / "runs")[::2])
    assert "model.name" in line and "outside the config's folder" in line, line
    assert not marker.exists()


def test_a_py_file_in_a_subfolder_of_the_config_is_used(marker, emvi, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.py").write_text(FAMILY.format(marker=str(marker)),
                                                 encoding="utf-8")
    config = tmp_path / "cfg.toml"
    config.write_text(config_text("models/mine.py:Counts"), encoding="utf-8")
    code, _, err = emvi("run", config, "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err
    assert marker.exists()


def _finished_user_run(tmp_path, emvi, marker) -> Path:
    (tmp_path / "mine.py").write_text(FAMILY.format(marker=str(marker)), encoding="utf-8")
    config = tmp_path / "cfg.toml"
    config.write_text(config_text("mine.py:Counts", plots=True), encoding="utf-8")
    code, out, err = emvi("run", config, "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err
    marker.unlink()
    return Path(out.strip().removeprefix("report: ")).parent


def test_report_never_imports_code_named_in_results(tmp_path, emvi, marker, monkeypatch):
    run = _finished_user_run(tmp_path, emvi, marker)
    evil = tmp_path / "evil.py"  # results edited to name other code
    evil.write_text(FAMILY.format(marker=str(marker)), encoding="utf-8")
    metrics = json.loads((run / "metrics.json").read_text())
    for cell in metrics["experiments"]["cfg"]["cells"]:
        cell["model"]["name"] = f"{evil}:Counts"
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    for png in (run / "plots").glob("*.png"):
        png.unlink()
    code, out, err = emvi("report", run)
    assert code == 0, err
    assert not marker.exists()
    assert out.strip() == f"report: {run / 'report.md'}"
    assert "--trust-model-code" in err and len(err.strip().splitlines()) == 1
    report = (run / "report.md").read_text()
    assert "| parameter |" in report and "`--trust-model-code`" in report
    assert not list((run / "plots").glob("*.png"))


def test_report_draws_user_model_figures_with_the_flag(tmp_path, emvi, marker):
    run = _finished_user_run(tmp_path, emvi, marker)
    for png in (run / "plots").glob("*.png"):
        png.unlink()
    stat = (tmp_path / "mine.py").stat()  # a new modification time: imported afresh
    os.utime(tmp_path / "mine.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    code, _, err = emvi("report", run, "--trust-model-code")
    assert code == 0 and err == "", err
    assert marker.exists() and list((run / "plots").glob("*.png"))


def test_both_registry_layers_refuse_an_unadvertised_module(installed, marker, tmp_path):
    """The config-time check (resolve_reference) and the import itself (load_reference, also
    reached from Python's ``build``) each refuse on their own."""
    from emvi.models import registry
    from emvi.models.validation import InputError

    with pytest.raises(InputError, match="entry-point group"):
        registry.resolve_reference(f"{installed}:Counts", tmp_path)
    with pytest.raises(InputError, match="entry-point group"):
        registry.load_reference(f"{installed}:Counts")
    with pytest.raises(InputError, match="entry-point group"):
        registry.build(f"{installed}:Counts", k=2)
    assert not marker.exists() and installed not in sys.modules
