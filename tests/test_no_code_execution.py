"""Configs and data files are parsed, never evaluated: no eval/exec/pickle on user input."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile(r"\b(eval|exec)\(|\bpickle\b|torch\.load\(|allow_pickle\s*=\s*True|"
                       r"yaml\.load\(|__import__\(")


def test_package_sources_never_evaluate_data():
    offenders = []
    for folder in ("models", "inference", "experiments"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#")[0]
                if FORBIDDEN.search(code) and "torch.load(" not in code:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
                elif "torch.load(" in code and "weights_only=True" not in code:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_fit_files_are_read_with_weights_only_loading():
    source = (ROOT / "inference" / "persist.py").read_text(encoding="utf-8")
    assert "torch.load(path, map_location=\"cpu\", weights_only=True)" in source


def test_numpy_files_are_read_without_pickle():
    source = (ROOT / "experiments" / "data.py").read_text(encoding="utf-8")
    assert "allow_pickle=False" in source
    store = (ROOT / "experiments" / "store.py").read_text(encoding="utf-8")
    assert "allow_pickle=False" in store


def test_only_the_registry_imports_code_by_name():
    """Dynamic imports live in models/registry.py alone, behind its import policy (tested in
    tests/experiments/test_code_policy.py)."""
    dynamic = re.compile(r"import_module\(|spec_from_file_location\(|exec_module\(|"
                         r"runpy\.|importlib\.import")
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for folder in ("models", "inference", "experiments")
                 for path in (ROOT / folder).rglob("*.py") if path.name != "registry.py"
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if dynamic.search(line.split("#")[0])]
    assert not offenders, offenders
