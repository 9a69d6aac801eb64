"""HMM emissions with missing entries (NaN): a step with nothing observed still moves the
chain, the missing-data path on complete sequences is the complete one, chunks with and
without missing entries add up, and every way in (a list of arrays, padded arrays with
lengths, a CSV with empty or NA cells) gives the same sequences.

The invariants (exactness against both Pyro programs, posteriors, monotone EM, chunks, a
vanishing gradient, recovery) run on the ``_missing`` cases in
tests/inference/test_hmm_invariants.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from emvi.inference import fit_em
from emvi.models import GaussianHMM, Sequences
from emvi.models.families.base import Prepared
from emvi.models.hmm import HMMPrepared
from model_cases import forced_missing_path, make, remove_step_entries

NAN = math.nan


def test_a_step_with_nothing_observed_moves_the_chain():
    """p(x_0, ?, x_2) under A is p(x_0, x_2) under A^2: the missing step emits with
    probability one and its transition stays."""
    model = GaussianHMM(k=2, dim=2, covariance="full")
    params = model.params(initial=[0.3, 0.7], transition=[[0.9, 0.1], [0.4, 0.6]],
                          locs=[[-1.0, 0.0], [2.0, 1.0]],
                          covariances=[[[1.0, 0.3], [0.3, 0.5]], [[0.7, -0.2], [-0.2, 1.1]]])
    x0, x2 = [0.5, -0.2], [1.5, 0.8]
    gap = model.check_data([np.array([x0, [NAN, NAN], x2]), np.array([x2, [NAN, NAN]])])
    assert gap.n_observations == 5  # kept, not dropped
    squared = model.params(**{**params, "transition": params["transition"] @ params[
        "transition"]})
    expected = float(model.log_likelihood([np.array([x0, x2])], squared)) + float(
        model.log_likelihood([np.array([x2])], params))
    assert float(model.log_likelihood(gap, params)) == pytest.approx(expected, rel=1e-12)
    # its state posterior is the chain's prediction between its neighbours
    posterior = model.posterior(gap, params)
    assert float(posterior[4].sub(posterior[3] @ params["transition"]).abs().max()) < 1e-12


@pytest.mark.parametrize("name", ["hmm_gaussian_full", "hmm_gaussian_tied", "hmm_gaussian_diag",
                                  "hmm_gaussian_spherical", "hmm_casino", "hmm_poisson",
                                  "hmm_bernoulli"])
def test_missing_data_path_on_complete_sequences_equals_the_complete_path(name):
    model, truth = make(name)
    data = model.simulate(truth, lengths=[20, 5, 13], seed=0).data
    params = model.check_params(model.random_params(data, torch.Generator().manual_seed(1)))
    shift = model.shift(data)
    complete = model.prepare(data, shift)
    assert isinstance(complete.emissions, Prepared)  # no NaN: today's code path
    masked = HMMPrepared(forced_missing_path(model.family, data.flat(), shift),
                         *complete[1:])
    one, other = model.expect(complete, params), model.expect(masked, params)
    assert float(other.log_likelihood) == pytest.approx(float(one.log_likelihood), rel=1e-12)
    torch.testing.assert_close(other.responsibilities, one.responsibilities, rtol=0,
                               atol=1e-12)
    for key, value in one.stats.items():
        torch.testing.assert_close(other.stats[key], value, rtol=1e-12,
                                   atol=1e-12 * float(value.abs().max()))


@pytest.mark.parametrize("name", ["hmm_gaussian_full", "hmm_casino"])
def test_chunks_with_and_without_missing_entries_add_up(name):
    """The first chunk is complete (today's statistics), the others are not: one sum."""
    model, truth = make(name)
    data = model.simulate(truth, lengths=[12, 9, 15, 4, 10, 7], seed=3).data
    holed = remove_step_entries(data.select(2, 6), 0.3, 3)
    data = model.check_data(data.to_list()[:2] + holed.to_list())
    params = model.check_params(model.random_params(data, torch.Generator().manual_seed(4)))
    assert isinstance(model.prepare(data.select(0, 2), model.shift(data)).emissions, Prepared)
    whole = fit_em(model, data, params, max_iter=8, tol=None)
    chunked = fit_em(model, data, params, max_iter=8, tol=None, chunk_size=2)
    torch.testing.assert_close(chunked.objective, whole.objective, rtol=1e-12, atol=0)
    for key in whole.params:
        torch.testing.assert_close(chunked.params[key], whole.params[key], rtol=1e-10,
                                   atol=1e-12)


def test_a_list_padded_arrays_and_a_csv_give_the_same_sequences(tmp_path):
    from emvi.experiments.data import as_sequences, read_sequences

    model, truth = make("hmm_gaussian_diag")
    parts = [np.array([[0.5, NAN], [NAN, NAN], [1.0, 2.0]]), np.array([[NAN, -1.0]]),
             np.array([[2.0, 0.3], [0.1, NAN]])]
    listed = model.check_data(parts)
    padded = np.full((3, 3, 2), NAN)  # beyond each length: ignored
    for i, part in enumerate(parts):
        padded[i, : len(part)] = part
    again = model.check_data(Sequences(padded, [3, 1, 2]))
    table = tmp_path / "steps.csv"
    table.write_text("id,a,b\ns1,0.5,\ns1,NA,\ns1,1.0,2.0\ns2, n/a ,-1.0\ns3,2.0,0.3\n"
                     "s3,0.1,NA\n")
    spec = {"file": str(table), "sequence": "id", "columns": None, "lengths": None}
    read = as_sequences(model, read_sequences(spec, "test"), "test")
    expected = float(model.log_likelihood(listed, truth))
    assert math.isfinite(expected)
    for other in (again, read):
        assert other.lengths.tolist() == [3, 1, 2]
        assert torch.equal(other.flat().isnan(), listed.flat().isnan())
        assert float(model.log_likelihood(other, truth)) == expected


# -- data.missing on simulated sequences -------------------------------------------------------
def test_entries_removed_from_steps_are_seeded_exact_and_may_empty_a_step():
    from emvi.experiments import missing
    from emvi.experiments.config import ConfigError

    model, truth = make("hmm_gaussian_diag")
    data = model.simulate(truth, lengths=[40, 25, 35], seed=0).data
    spec = missing.check_spec(0.4, "test")
    a, b = (missing.remove(data, spec, 3, "test") for _ in range(2))
    assert isinstance(a, Sequences) and a.lengths.tolist() == [40, 25, 35]
    hidden = a.flat().isnan()
    assert torch.equal(hidden, b.flat().isnan()) and int(hidden.sum()) == 80  # 0.4 * 200
    assert bool(hidden.all(1).any())  # whole steps go missing too: they stay in place
    assert torch.equal(a.flat()[~hidden], data.flat()[~hidden])
    mar = missing.remove(data, missing.check_spec({"fraction": 0.3, "mechanism": "mar"},
                                                  "test"), 3, "test")
    assert not bool(mar.flat()[:, 0].isnan().any())
    scalar, scalar_truth = make("hmm_poisson")
    counts = scalar.simulate(scalar_truth, lengths=[30], seed=0).data
    assert int(missing.remove(counts, spec, 0, "test").flat().isnan().sum()) == 12
    with pytest.raises(ConfigError, match="'mar' keeps one coordinate of each step"):
        missing.remove(counts, missing.check_spec({"fraction": 0.3, "mechanism": "mar"},
                                                  "test"), 0, "test")


def test_a_config_with_missing_entries_in_hmm_steps_runs(tmp_path):
    import json

    from emvi.experiments.cli import main

    config = tmp_path / "hmm_missing.toml"
    config.write_text("""
model = { name = "gaussian_hmm", k = 2, dim = 2, covariance = "tied", program = "discrete_hmm" }
data = { sequences = 3, length = 20, seed = 0, missing = 0.3 }
[truth]
initial = [0.5, 0.5]
transition = [[0.9, 0.1], [0.15, 0.85]]
locs = [[-2.0, 0.0], [2.0, 1.0]]
covariances = [[1.0, 0.3], [0.3, 0.8]]
[init]
method = "kmeans++"
seed = 0
[em]
max_iter = 50
[vi]
enabled = false
[plots]
enabled = false
""", encoding="utf-8")
    assert main(["run", str(config), "--quiet", "--out", str(tmp_path / "out")]) == 0
    metrics = json.loads(next((tmp_path / "out").rglob("metrics.json")).read_text())
    cell = metrics["experiments"]["hmm_missing"]["cells"][0]
    assert cell["missing"]["fraction"] == pytest.approx(0.3)
    assert set(cell["missing"]["methods"]) == {"em"}  # no shortcuts for an HMM
    assert cell["missing"]["methods"]["em"]["errors"]["locs"] < 1.0
