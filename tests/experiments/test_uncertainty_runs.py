"""Runs that say how sure the EM fit is: result.json keeps the standard errors, the report
shows "estimate ± standard error" beside the truth, and a sweep counts coverage."""

from __future__ import annotations

import json
import math

import pytest
import torch
from emvi.experiments import runner
from emvi.experiments.uncertainty_report import cell_lines, summarize
from emvi.inference import fit_em
from emvi.models import GaussianMixture

COINS_SE = """
model = { name = "two_coins", k = 2, tosses = 10 }
truth = { weights = [0.3, 0.7], probs = [0.75, 0.35] }
data = { n = 300, seed = 4 }
init = { method = "params", params = { weights = [0.5, 0.5], probs = [0.7, 0.3] } }
em = { max_iter = 500, tol = 1e-10 }
vi = { steps = 5 }
uncertainty = { standard_errors = true, bootstrap = 20, level = 0.9 }
plots = { enabled = false }
"""


def only_run(root):
    (run,) = [p for p in root.glob("*/*") if p.is_dir()]
    return run


def test_a_run_keeps_standard_errors_and_reports_them(emvi, write_config, tmp_path):
    path = write_config(COINS_SE)
    code, _, err = emvi("run", path, "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    cell = json.loads((run / "metrics.json").read_text())["experiments"]["cfg"]["cells"][0]
    em = cell["uncertainty"]["em"]
    assert em["level"] == 0.9 and em["aligned_to_truth"]
    observed, boot = em["observed"], em["bootstrap"]
    assert observed["method"] == "observed information"
    assert boot["method"] == "bootstrap (nonparametric, B=20)"
    for block in (observed, boot):
        assert set(block["standard_errors"]) == {"weights", "probs"}
        assert all(0 < s < 0.1 for s in block["standard_errors"]["probs"])
        for name, low in block["lower"].items():
            assert all(lo <= est <= hi for lo, est, hi in zip(low, em["estimates"][name],
                                                               block["upper"][name]))
        assert set(block["covered"]) == {"weights", "probs"}
    report = (run / "report.md").read_text()
    assert "**How sure the EM fit is** (90% intervals" in report
    assert "| parameter | truth | EM estimate | ± se (observed information) |" in report
    se = observed["standard_errors"]["probs"][0]
    assert f"| `probs[0]` | 0.75 | {em['estimates']['probs'][0]:.4g} | ± {se:.4g} |" in report
    (run / "report.md").unlink()  # re-rendered from the saved results alone
    assert emvi("report", run)[0] == 0
    assert "How sure the EM fit is" in (run / "report.md").read_text()


def test_without_the_option_nothing_changes(emvi, write_config, coins_config, tmp_path):
    config = coins_config + "plots = { enabled = false }\n"
    assert emvi("run", write_config(config), "--quiet", "--out", tmp_path)[0] == 0
    run = only_run(tmp_path)
    cell = json.loads((run / "metrics.json").read_text())["experiments"]["cfg"]["cells"][0]
    assert "uncertainty" not in cell
    assert "How sure" not in (run / "report.md").read_text()


SWEEP = """
model = { name = "gaussian_mixture", k = 2, dim = 1, covariance = "spherical" }
truth = { weights = [0.4, 0.6], locs = [[-3.0], [3.0]], scales = [1.0, 1.5] }
data = { n = 200, seed = [0, 1, 2] }
init = { method = "kmeans++", seed = 0 }
em = { tol = 1e-10 }
vi = { steps = 2 }
uncertainty = { standard_errors = true }
plots = { enabled = false }
"""


def test_a_sweep_over_seeds_reports_coverage(emvi, write_config, tmp_path):
    code, _, err = emvi("run", write_config(SWEEP), "--quiet", "--out", tmp_path)
    assert code == 0, err
    run = only_run(tmp_path)
    cells = json.loads((run / "metrics.json").read_text())["experiments"]["cfg"]["cells"]
    hits = sum(c["uncertainty"]["em"]["observed"]["covered"]["locs"][1][0] for c in cells)
    report = (run / "report.md").read_text()
    assert "**Coverage**: how often the 95% interval held the truth" in report
    assert f"| `locs[1,0]` | {hits / 3:.3f} ({hits}/3) |" in report


@pytest.mark.parametrize("edit, key, words", [
    ("level = 0.9", "uncertainty.level", "below 1", ),
    ("bootstrap = 20", "uncertainty.bootstrap", "at least 2"),
    ("level = 0.9", "uncertainty.levl", "did you mean 'level'"),
])
def test_bad_uncertainty_settings_are_named(edit, key, words, emvi, write_config, tmp_path):
    new = {"uncertainty.level": "level = 1.0", "uncertainty.bootstrap": "bootstrap = 1",
           "uncertainty.levl": "levl = 0.9"}[key]
    path = write_config(COINS_SE.replace(edit, new))
    code, _, err = emvi("run", path, "--out", tmp_path / "runs")
    assert code == 2 and key in err and words in err, err
    assert not (tmp_path / "runs").exists()


def test_damaged_uncertainty_results_are_one_line(emvi, write_config, tmp_path):
    assert emvi("run", write_config(COINS_SE.replace("bootstrap = 20", "bootstrap = 0")),
                "--quiet", "--out", tmp_path)[0] == 0
    run = only_run(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["experiments"]["cfg"]["cells"][0]["uncertainty"]["em"]["observed"]["lower"] = 3
    (run / "metrics.json").write_text(json.dumps(metrics))
    code, _, err = emvi("report", run)
    assert code == 2 and "uncertainty.em.observed.lower" in err and "Traceback" not in err


def test_unavailable_errors_are_null_in_json_and_named_in_the_report():
    """A collapsed component: its standard errors are inf in Python, null in result.json,
    "unavailable" in the report; nothing is NaN."""
    model = GaussianMixture(k=3, dim=1, covariance="spherical")
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(150, 1, generator=gen, dtype=torch.float64),
                   5 + torch.randn(150, 1, generator=gen, dtype=torch.float64)])
    start = model.params(weights=[0.45, 0.45, 0.1], locs=[[0.0], [5.0], [float(x[7, 0])]],
                         scales=[1.0, 1.0, 1e-4])
    fit = fit_em(model, x, start, tol=1e-10)
    settings = {"standard_errors": True, "level": 0.95, "bootstrap": 0,
                "bootstrap_kind": "nonparametric", "seed": 0}
    result = runner._clean(summarize(settings, {"em": fit}, model, None, {}, "cfg"))
    text = json.dumps(result, allow_nan=False)  # no NaN, no inf
    observed = json.loads(text)["uncertainty"]["em"]["observed"]
    assert observed["standard_errors"]["scales"][2] is None
    assert observed["unavailable"]["scales"] == [False, False, True]
    assert math.isfinite(observed["standard_errors"]["scales"][0])
    lines = "\n".join(cell_lines({**result, "fits": {"em": {"notes": []}}}))
    assert "| `scales[2]` | 0.001 | unavailable |" in lines
    assert "not at a stationary point along log(scales)[2]" in lines
