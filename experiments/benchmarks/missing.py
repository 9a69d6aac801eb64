"""The cost of missing entries: an EM iteration with 20% of the entries missing against the
same iteration on the complete data (same model, same start, same process, interleaved).

The cost of one iteration is measured as the difference between fits of ``LONG`` and
``SHORT`` iterations, divided by the difference, so the one-time costs of a fit (the
reference, grouping the rows by pattern, the statistics) cancel; the whole fits are
reported too.
"""

from __future__ import annotations

import math
import statistics
from functools import partial

import torch

#: (n, d, K) with full covariances, the fraction of entries removed, the two fit lengths
SHAPE, FRACTION, SHORT, LONG = (100_000, 5, 3), 0.2, 2, 12


def bench_missing(repeats: int, quick: bool) -> list[dict]:
    """Seconds per EM iteration with missing entries (``ours``) and on the complete data
    (``anchor``); ``cost_ratio`` = ours / anchor (the target is at most 3)."""
    from ...inference import fit_em, initialize
    from ...models import GaussianMixture
    from ..missing import check_spec, remove
    from .__main__ import blobs, interleaved

    n, d, k = SHAPE
    short, long = (1, 4) if quick else (SHORT, LONG)
    complete = blobs(n, d, k, seed=4)
    holed = remove(complete, check_spec(FRACTION, "bench"), 0, "bench")
    model = GaussianMixture(k=k, dim=d, covariance="full")
    init = initialize(model, complete[:20_000], method="kmeans++", seed=0)

    def fit(data, iterations):
        return fit_em(model, data, init, max_iter=iterations, tol=None, record_params=False)

    runs = {f"{name} {length}": partial(fit, data, length)
            for name, data in (("missing", holed), ("complete", complete))
            for length in (short, long)}
    times, last = interleaved(runs, repeats)
    assert math.isfinite(last[f"missing {long}"].log_likelihood)
    med = {name: statistics.median(values) for name, values in times.items()}
    per = {name: (med[f"{name} {long}"] - med[f"{name} {short}"]) / (long - short)
           for name in ("missing", "complete")}
    rows = ~torch.isnan(holed).any(1)
    return [{
        "name": "gmm_missing_iteration", "shape": [n, d, k],
        "median_seconds": {"ours": per["missing"], "anchor": per["complete"]},
        "ratio": per["complete"] / per["missing"],
        "cost_ratio": per["missing"] / per["complete"], "target_cost_ratio": 3.0,
        "whole_fit_seconds": {"missing": med[f"missing {long}"],
                              "complete": med[f"complete {long}"], "iterations": long},
        "whole_fit_cost_ratio": med[f"missing {long}"] / med[f"complete {long}"],
        "anchor": "the same EM on the complete data",
        "missing_fraction": float(torch.isnan(holed).double().mean()),
        "complete_rows": float(rows.double().mean()),
        "patterns": int(torch.unique(torch.isnan(holed), dim=0).shape[0]),
        "note": "per iteration: (fit of LONG - fit of SHORT iterations) / (LONG - SHORT); "
                "ratio = complete / missing (the table's convention: anchor / ours), "
                "cost_ratio its inverse",
    }]
