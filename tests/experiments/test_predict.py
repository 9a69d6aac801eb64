"""``emvi predict``: a run's fitted model labels new rows; ``emvi --version``; ``emvi report``
on a config's folder of runs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from emvi.experiments.config import CONFIG_DIR

CSV = CONFIG_DIR / "data" / "measurements.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from emvi.experiments.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "measurements", "--smoke", "--quiet", "--out", str(out)]) == 0
    return out / "measurements"


def test_predict_labels_the_shipped_csv_keeping_its_id_columns(emvi, run, tmp_path):
    labels = tmp_path / "labels.csv"
    code, out, err = emvi("predict", run, CSV, "--out", labels)
    assert code == 0 and err == "" and out.strip() == f"labels: {labels}"
    rows = list(csv.DictReader(io.StringIO(labels.read_text())))
    source = list(csv.DictReader(io.StringIO(CSV.read_text())))
    assert len(rows) == len(source)
    assert [r["id"] for r in rows] == [r["id"] for r in source]
    assert [r["site"] for r in rows] == [r["site"] for r in source]
    for row in rows[:20]:
        probs = [float(row[f"p_{j}"]) for j in range(3)]
        assert abs(sum(probs) - 1) < 1e-12 and int(row["label"]) == probs.index(max(probs))
    code, again, _ = emvi("predict", run, CSV)  # to stdout: the same lines
    assert again == labels.read_text()


def test_predict_refuses_a_csv_without_the_models_columns(emvi, run, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,length,height\na,1.0,2.0\n")
    code, _, err = emvi("predict", run, bad)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "['width'] not in this file" in err


def test_predict_names_the_method_and_experiment_it_lacks(emvi, run, tmp_path):
    code, _, err = emvi("predict", run, CSV, "--experiment", "nope")
    assert code == 2 and "no experiment 'nope'" in err
    code, _, err = emvi("predict", tmp_path, CSV)
    assert code == 2 and "not a finished run directory" in err


def test_version(capsys):
    from importlib import metadata

    from emvi.experiments.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"emvi {metadata.version('emvi')}"


def test_report_on_a_configs_folder_takes_its_latest_run(emvi, run):
    code, out, _ = emvi("report", run)
    latest = sorted(p for p in Path(run).iterdir() if (p / "metrics.json").is_file())[-1]
    assert code == 0 and out.strip() == f"report: {latest / 'report.md'}"
