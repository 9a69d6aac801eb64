"""Every shipped config runs in smoke mode to a complete run directory; runs repeat exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from emvi.experiments.config import CONFIG_DIR

SHIPPED = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def only_run(root: Path) -> Path:
    runs = [p for p in root.glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_configs_are_shipped():
    assert {"seeds", "kmeans", "two_coins", "gmm_1d", "sweep_n"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_runs_in_smoke_mode(name, emvi, tmp_path):
    code, out, err = emvi("run", name, "--smoke", "--quiet", "--out", tmp_path)
    assert code == 0, err
    run = only_run(tmp_path)
    assert not run.name.endswith(".partial")
    assert out.strip() == f"report: {run / 'report.md'}"
    for item in ("config.toml", "metrics.json", "history.csv", "report.md", "provenance.json"):
        assert (run / item).is_file(), item
    metrics = json.loads((run / "metrics.json").read_text())
    pngs = sorted((run / "plots").glob("*.png"))
    assert pngs, "no figures"
    report = (run / "report.md").read_text()
    for png in pngs:
        assert f"(plots/{png.name})" in report
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for exp in metrics["experiments"].values():
        for cell in exp["cells"]:
            assert set(cell["fits"]) == {"em", "vi"}
            assert cell["fits"]["em"]["iterations"] >= 1
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"


def test_seeds_report_shows_both_fits_beside_the_truth(emvi, tmp_path):
    assert emvi("run", "seeds", "--quiet", "--out", tmp_path,
                "--set", "vi.steps=200", "--set", "em.max_iter=300")[0] == 0
    run = only_run(tmp_path)
    report = (run / "report.md").read_text()
    for name in ("kmeans", "two_coins", "gmm_1d"):
        assert f"## {name}" in report
    assert report.count("| parameter | truth | EM | VI |") == 3
    assert report.count("**EM vs VI**: objective gap") == 3
    metrics = json.loads((run / "metrics.json").read_text())
    for name, exp in metrics["experiments"].items():
        comp = exp["cells"][0]["comparison"]
        assert comp["relative_gap"] < 1e-6, name
        assert max(comp["parameter_errors"]["em vs vi"].values()) < 1e-4, name
    coins = metrics["experiments"]["two_coins"]["cells"][0]["comparison"]["truth_errors"]["em"]
    assert coins["probs"] < 0.03
    gmm = metrics["experiments"]["gmm_1d"]["cells"][0]["comparison"]["truth_errors"]["em"]
    assert gmm["locs"] < 0.5 and gmm["scales"] < 0.5
    kmeans = metrics["experiments"]["kmeans"]["cells"][0]["comparison"]["truth_errors"]["em"]
    assert kmeans["locs"] < 0.3


def test_report_re_renders_from_saved_results(emvi, tmp_path):
    assert emvi("run", "two_coins", "--smoke", "--quiet", "--out", tmp_path)[0] == 0
    run = only_run(tmp_path)
    (run / "report.md").unlink()
    for png in (run / "plots").glob("*.png"):
        png.unlink()
    code, out, _ = emvi("report", run)
    assert code == 0 and out.strip() == f"report: {run / 'report.md'}"
    assert (run / "report.md").is_file() and list((run / "plots").glob("*.png"))


def test_sweep_expands_to_a_grid(emvi, tmp_path):
    assert emvi("run", "sweep_n", "--smoke", "--quiet", "--out", tmp_path)[0] == 0
    metrics = json.loads((only_run(tmp_path) / "metrics.json").read_text())
    cells = metrics["experiments"]["sweep_n"]["cells"]
    assert [c["cell"] for c in cells] == ["n=100,seed=0", "n=100,seed=1",
                                          "n=120,seed=0", "n=120,seed=1"]
    assert {c["data"]["n"] for c in cells} == {100, 120}


def test_set_overrides_and_list(emvi, tmp_path, write_config, coins_config):
    path = write_config(coins_config)
    code, _, err = emvi("run", path, "--quiet", "--out", tmp_path, "--set", "data.n=60",
                        "--set", "init.params.probs=[0.9, 0.1]")
    assert code == 0, err
    metrics = json.loads((only_run(tmp_path) / "metrics.json").read_text())
    cell = metrics["experiments"]["cfg"]["cells"][0]
    assert cell["data"]["n"] == 60 and cell["init"]["params"]["probs"] == [0.9, 0.1]
    code, out, _ = emvi("list")
    assert code == 0
    for name in ("kmeans", "two_coins", "gaussian_mixture", "seeds", "sweep_n"):
        assert name in out
