"""Recovery with 30% of the entries missing completely at random: exact EM stays close to
the complete-data fit, and clearly ahead of dropping incomplete rows or mean-imputing."""

from __future__ import annotations

import pytest
import torch
from emvi.experiments import missing
from emvi.experiments.config import build_model, load
from model_cases import parameter_distance as distance


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_em_beats_the_shortcuts_at_30_percent_missing(seed):
    cell = load("missing").experiments[0].cells()[0][2]  # the shipped sweep's model and truth
    cell.init["restarts"] = 2
    model = build_model(cell.model, "missing")
    truth = model.check_params(cell.truth)
    complete = model.simulate(truth, n=1000, seed=seed).data
    observed = missing.remove(complete, missing.check_spec(0.3, "test"), seed, "test")
    assert float(torch.isnan(observed).double().mean()) == pytest.approx(0.3, abs=1e-3)
    hidden = torch.isnan(observed)
    rows = ~hidden.any(1)
    filled = torch.where(hidden, torch.nanmean(observed, 0), observed)
    fits = {"complete data": missing._shortcut(cell, model, complete),
            "exact": missing._shortcut(cell, model, observed),
            "drop rows": missing._shortcut(cell, model, observed[rows]),
            "mean-impute": missing._shortcut(cell, model, filled)}
    error = {name: distance(model, truth, fit.params) for name, fit in fits.items()}
    assert error["exact"] < 2 * error["complete data"], error  # a small price for 30%
    assert error["exact"] < 0.75 * error["drop rows"], error
    assert error["exact"] < 0.3 * error["mean-impute"], error
    rmse = {name: float((fit.impute(observed) - complete)[hidden].square().mean().sqrt())
            for name, fit in fits.items() if name in ("exact", "drop rows")}
    rmse["mean-impute"] = float((filled - complete)[hidden].square().mean().sqrt())
    assert rmse["exact"] < rmse["drop rows"] and rmse["exact"] < 0.6 * rmse["mean-impute"], rmse


def test_removal_is_seeded_exact_and_never_empties_a_row():
    data = torch.arange(600.0, dtype=torch.float64).reshape(200, 3)
    spec = missing.check_spec(0.5, "test")
    a, b = missing.remove(data, spec, 3, "test"), missing.remove(data, spec, 3, "test")
    assert torch.equal(a.isnan(), b.isnan()) and not torch.equal(
        a.isnan(), missing.remove(data, spec, 4, "test").isnan())
    assert int(a.isnan().sum()) == 300 and not bool(a.isnan().all(1).any())
    seen = ~a.isnan()
    assert torch.equal(a[seen], data[seen])


def test_missing_at_random_depends_on_the_observed_column():
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(4000, 4, generator=gen, dtype=torch.float64)
    spec = missing.check_spec({"fraction": 0.3, "mechanism": "mar", "column": 2}, "test")
    out = missing.remove(data, spec, 0, "test")
    hidden = out.isnan()
    assert not bool(hidden[:, 2].any())
    assert float(hidden.double().mean()) == pytest.approx(0.3, abs=0.02)
    high = data[:, 2] > 0
    assert float(hidden[high].double().mean()) > 2 * float(hidden[~high].double().mean())


@pytest.mark.parametrize("value, words", [
    (1.2, "expected a fraction of entries in [0, 1), got 1.2"),
    (True, "expected a fraction of entries or a table"),
    ("0.2", "expected a fraction of entries or a table"),
    ({"mechanism": "mar"}, "data.missing: expected a fraction of entries in [0, 1)"),
    ({"fraction": 0.2, "mechanism": "mnar"}, "data.missing.mechanism: expected one of"),
    ({"fraction": 0.2, "how": 1}, "data.missing.how: unknown key"),
    ({"fraction": 0.2, "column": -1}, "data.missing.column: expected a column index"),
])
def test_bad_missing_specs(value, words):
    with pytest.raises(ValueError) as info:
        missing.check_spec(value, "cfg.toml")
    assert words in str(info.value), str(info.value)


def test_removal_refuses_what_cannot_go_missing():
    with pytest.raises(ValueError, match="one coordinate"):
        missing.remove(torch.ones(5, 1, dtype=torch.float64), {"fraction": 0.2,
                                                                "mechanism": "mcar"}, 0, "x")
    with pytest.raises(ValueError, match="at most 0.5 of the entries"):
        missing.remove(torch.ones(5, 2, dtype=torch.float64), missing.check_spec(0.6, "x"),
                       0, "x")
    assert missing.check_spec(0.0, "x") is None and missing.check_spec(None, "x") is None
