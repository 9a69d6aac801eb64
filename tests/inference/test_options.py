"""One table of fitting options: the Python API, configs and ``emvi list --options`` agree."""

from __future__ import annotations

import inspect
import pathlib

import pytest
from emvi.experiments.config import ONLINE_FIELDS, SECTIONS
from emvi.inference import options

from emvi import fit_em, fit_online_em, fit_vi, initialize

FUNCTIONS = {"em": fit_em, "vi": fit_vi, "init": initialize, "online": fit_online_em}


@pytest.mark.parametrize("section", sorted(options.TABLES))
def test_function_defaults_are_the_tables(section):
    signature = inspect.signature(FUNCTIONS[section]).parameters
    for name, option in options.TABLES[section].items():
        assert signature[name].default == option.default, (section, name)


@pytest.mark.parametrize("section", sorted(options.TABLES))
def test_config_sections_are_the_tables(section):
    for name, option in options.TABLES[section].items():
        field = (ONLINE_FIELDS if section == "online" else SECTIONS[section])[name]
        assert (field.kind, field.default, field.low, field.high) == (
            option.kind, option.default, option.low, option.high), (section, name)


def test_the_library_default_optimiser_is_the_one_the_readme_recommends():
    assert options.VI["optimizer"].default == "lbfgs"
    readme = pathlib.Path(__file__).resolve().parents[2] / "README.md"
    assert "fit_vi(model, data, init)" in readme.read_text(encoding="utf-8")


def test_list_prints_every_option(emvi):
    code, out, _ = emvi("list", "--options")
    assert code == 0
    for table in options.TABLES.values():
        for name, option in table.items():
            assert any(line.strip().startswith(name) and option.help[:30] in line
                       for line in out.splitlines()), name
