"""A grouped mixture's run: the report says what pooling buys, and its figures draw the
observations (not the group column) under the pooled mix."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from emvi.experiments import store
from emvi.experiments.plots import CellView

CONFIG = """
[experiments.sites]
model = { name = "grouped_gaussian_mixture", k = 2, groups = 3, dim = 2, covariance = "diag" }
data = { n = 150, seed = 0 }
init = { method = "kmeans++", seed = 0 }
em = { tol = 1e-10 }
vi = { steps = 60, posterior = "map" }

[experiments.sites.truth]
weights = [[0.8, 0.2], [0.2, 0.8], [0.5, 0.5]]
concentration = [2.0, 2.0]
locs = [[-3.0, 0.0], [3.0, 1.0]]
scales = [[1.0, 1.0], [1.0, 0.7]]
"""


def test_grouped_run_reports_pooling_and_draws_the_observations(emvi, tmp_path):
    config = tmp_path / "sites.toml"
    config.write_text(CONFIG)
    code, _, err = emvi("run", config, "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err
    run = next((tmp_path / "runs" / "sites").iterdir())
    result = json.loads(next(run.glob("**/result.json")).read_text())
    pooling = result["pooling"]
    assert pooling["group_sizes"] == [50, 50, 50]
    assert len(pooling["alone"]) == 3 and set(pooling["pooled"]) == {"locs", "scales"}
    # pooling 150 rows beats at least one group of 50 fitted alone, on the locations
    assert any(alone["locs"] > pooling["pooled"]["locs"] for alone in pooling["alone"])
    report = (run / "report.md").read_text()
    assert "What pooling buys" in report and "| group 2 alone | 50 |" in report

    cell = store.cell_path(run, "sites", result["cell"])
    header, rows = store.read_csv(cell / "history.csv")
    view = CellView(result, store.load_arrays(run, "sites", result["cell"]), header, rows)
    assert tuple(view.data.shape) == (150, 2)  # the group column is not a coordinate
    weights = torch.tensor(result["fits"]["em"]["params"]["weights"], dtype=torch.float64)
    torch.testing.assert_close(view.fits["em"]["weights"].sort().values,
                               weights.mean(0).sort().values)
    assert "concentration" not in view.fits["em"]
    assert Path(run / "plots" / "sites_fit.png").is_file()


POSTERIOR = """
[experiments.post]
model = { name = "gaussian_mixture", k = 2, dim = 1, covariance = "spherical", prior = { weights = { concentration = 2.0 } } }
truth = { weights = [0.3, 0.7], locs = [[-3.0], [3.0]], scales = [1.0, 1.5] }
data = { n = 300, seed = 0 }
init = { method = "kmeans++", seed = 0 }
vi = { optimizer = "adam", lr = 0.05, steps = 150, posterior = "normal" }
"""  # noqa: E501


def test_a_vi_posterior_is_reported_as_mean_and_sd_beside_em_in_one_component_order(
        emvi, tmp_path):
    config = tmp_path / "post.toml"
    config.write_text(POSTERIOR)
    code, _, err = emvi("run", config, "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err
    run = next((tmp_path / "runs" / "post").iterdir())
    result = json.loads(next(run.glob("**/result.json")).read_text())
    weights = result["vi_posterior"]["weights"]
    for j, true in enumerate([0.3, 0.7]):  # both aligned to the truth (EM's own order differs)
        assert abs(weights["em"][j] - true) < 0.05 and abs(weights["mean"][j] - true) < 0.05
        assert 0.005 < weights["sd"][j] < 0.1  # about sqrt(w (1 - w) / n) = 0.026
    report = (run / "report.md").read_text()
    assert "| parameter | truth | EM estimate | VI posterior mean ± sd |" in report
    assert "| `weights[1]` | 0.7 |" in report
