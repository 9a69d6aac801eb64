"""Data-parallel EM and VI (inference/distributed.py): two gloo ranks, file rendezvous.

Each test spawns two processes once and checks several fits (the spawn costs more than
the fits): parameters identical on both ranks at every iteration, equal to the fit of one
process on all the data, EM's log-likelihood monotone; a failing rank makes the other
fail with a clear error within the timeout.
"""

from __future__ import annotations

import math

import pytest
import torch
from distributed_workers import agreement, failures, launch
from emvi.inference.distributed import bounds, shard

import emvi

pytestmark = pytest.mark.slow


def _close(a: list, b: list, tol: float) -> float:
    """Largest absolute difference between two parameter traces (same length asserted)."""
    assert len(a) == len(b)
    worst = 0.0
    for p, q in zip(a, b):
        for name in p:
            x, y = torch.tensor(p[name]), torch.tensor(q[name])
            worst = max(worst, float((x - y).abs().max()))
    assert worst <= tol, worst
    return worst


@pytest.fixture(scope="module")
def agreed(tmp_path_factory):
    results, codes = launch(agreement, 2, tmp_path_factory.mktemp("rdv"))
    assert codes == [0, 0], results
    return results


def test_em_same_on_every_rank_and_equal_to_one_process(agreed):
    for name in ("gmm", "chunked", "hmm", "kmeans"):
        mine, other = agreed[(0, name)], agreed[(1, name)]
        assert mine[0] == other[0], name  # bit for bit, every iteration
        _close(mine[0], mine[1], 1e-10)  # distributed vs one process, every iteration
    trace, _, objective, iterations, best, alone_objective, alone_best = agreed[(0, "gmm")]
    assert best == alone_best and iterations == len(trace) - 1
    assert max(abs(a - b) for a, b in zip(objective, alone_objective)) < 1e-8
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(objective, objective[1:]))
    hmm_objective = agreed[(0, "hmm")][2]
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(hmm_objective, hmm_objective[1:]))
    assert agreed[(0, "hmm")][3] + agreed[(1, "hmm")][3] == 7  # whole sequences


def test_hard_em_relocates_empty_components_among_all_ranks(agreed):
    _, _, events, alone_events = agreed[(0, "kmeans")]
    assert events and events == alone_events


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_vi_same_on_every_rank_and_equal_to_one_process(agreed, optimizer):
    trace, objective, alone, alone_objective = agreed[(0, optimizer)]
    assert agreed[(1, optimizer)][0] == trace
    _close(trace, alone, 1e-8)
    scale = max(abs(v) for v in alone_objective)
    assert max(abs(a - b) for a, b in zip(objective, alone_objective)) <= 1e-8 * scale


def test_a_failing_rank_stops_the_others_with_a_clear_error(tmp_path):
    results, codes = launch(failures, 2, tmp_path)
    outcome, seconds = results[(0, "raise")]
    assert "rank 1 failed: ValueError: boom in the E-step" in outcome
    assert seconds < 30  # at once, not at the 60 s timeout
    assert results[(1, "raise")][0] == "ValueError: boom in the E-step"
    outcome, seconds = results[(0, "hang")]
    assert outcome.startswith("RankFailed") and "stopped answering" in outcome
    assert seconds < 3 + 20
    outcome, seconds = results[(0, "kill")]
    assert outcome.startswith("RankFailed") and "died" in outcome and seconds < 30
    assert codes == [0, 9]


def test_shards_are_contiguous_and_balanced():
    model = emvi.GaussianMixture(k=2, dim=1)
    data = torch.arange(10, dtype=torch.float64).reshape(-1, 1)
    parts = [shard(model, data, r, 3) for r in range(3)]
    assert torch.equal(torch.cat(parts), data)
    assert [len(p) for p in parts] == [3, 3, 4]
    assert bounds(10, 2, 3) == (6, 10)
    with pytest.raises(emvi.InputError, match="data: 2 rows .* for 3 processes"):
        shard(model, data[:2], 0, 3)
    assert math.isfinite(float(data.sum()))
