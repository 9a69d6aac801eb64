"""Coverage of the observed-information intervals over simulated data sets (seeds fixed)."""

from __future__ import annotations

import pytest
from emvi.experiments.benchmarks.uncertainty import coverage, main, mixture


@pytest.mark.slow
def test_95_percent_intervals_cover_the_truth_95_percent_of_the_time():
    """200 data sets of a 2-component 1-D mixture (n = 1,000 each, ~12 s): every entry's
    95% interval holds the truth in 90-99% of them (binomial noise ~1.5%)."""
    model, truth = mixture()
    result = coverage(model, truth, n=1000, datasets=200, level=0.95)
    assert result["unavailable"] == 0
    assert len(result["coverage"]) == 6
    for entry, fraction in result["coverage"].items():
        assert 0.90 <= fraction <= 0.99, (entry, fraction)
    assert 0.92 <= result["pooled"] <= 0.98


def test_coverage_of_narrow_intervals_is_low():
    """The check can fail: 50% intervals cover about half the time."""
    model, truth = mixture()
    result = coverage(model, truth, n=300, datasets=30, level=0.5)
    assert 0.3 <= result["pooled"] <= 0.7


def test_benchmark_writes_its_results(tmp_path, monkeypatch, capsys):
    import json

    import emvi.experiments.benchmarks.uncertainty as bench

    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    monkeypatch.setattr(bench, "bootstrap_costs", lambda n, b: {"n": n, "replicates": b,
                                                                "methods": {}})
    assert main(["--datasets", "3", "--n", "100"]) == 0
    (path,) = tmp_path.glob("uncertainty-*.json")
    record = json.loads(path.read_text())
    assert record["coverage"]["datasets"] == 3 and "results:" in capsys.readouterr().out
