"""docs/tutorial.md, executed exactly as written, in a fresh folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)


def blocks():
    """``(language, file name or None, body)`` for every fenced block, in order."""
    out = []
    for lang, info, body in BLOCK.findall(TUTORIAL.read_text(encoding="utf-8")):
        match = re.search(r"file=(\S+)", info)
        out.append((lang, match.group(1) if match else None, body))
    return out


def test_tutorial_has_both_models_and_their_commands():
    found = blocks()
    files = {name for _, name, _ in found if name}
    assert {"my_models.py", "counts.toml", "gamma_models.py", "waits.toml"} <= files
    assert sum(1 for lang, name, _ in found if lang == "console") >= 2


@pytest.mark.slow
def test_tutorial_runs_as_written(tmp_path, monkeypatch, capsys):
    from emvi.experiments.cli import main

    monkeypatch.chdir(tmp_path)
    for lang, name, body in blocks():
        if name:
            (tmp_path / name).write_text(body, encoding="utf-8")
        elif lang == "python":
            exec(compile(body, f"{TUTORIAL.name}:python", "exec"), {"__name__": "tutorial"})
        elif lang == "console":
            for line in body.splitlines():
                if not line.startswith("$ "):
                    continue
                argv = shlex.split(line[2:])
                assert argv[0] == "emvi"
                code = main(argv[1:])
                out, err = capsys.readouterr()
                assert code == 0, err
                report = Path(out.strip().splitlines()[-1].removeprefix("report: "))
                assert report.is_file() and report.parent.parent.parent == Path("runs")
    reports = sorted(tmp_path.glob("runs/*/*/report.md"))
    assert [p.parent.parent.name for p in reports] == ["counts", "waits"]
    waits = (tmp_path / "runs").glob("waits/*/report.md")
    assert "em / generic" in next(waits).read_text()
