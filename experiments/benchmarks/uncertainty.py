"""How honest the standard errors are, and what they cost: coverage and bootstrap timings.

Coverage: data sets simulated from a known 2-component 1-D mixture, each fitted by EM
from the truth; how often each entry's 95% observed-information interval holds the truth
(after aligning the fit's labels to the truth). Bootstrap: observed-information standard
errors beside the non-parametric bootstrap (as one weighted batch, and as B separate
fits) and the parametric one, with their seconds. Results go to
``experiments/benchmarks/results/uncertainty-*.json``.

    python -m emvi.experiments.benchmarks.uncertainty [--datasets 200] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch

from ...inference import fit_em
from ...inference.compare import alignment, permute
from ...inference.uncertainty import observed_information
from ...models import GaussianMixture
from .__main__ import RESULTS

#: the 2-component 1-D mixture of the coverage check (well separated, unequal weights)
TRUTH = {"weights": [0.4, 0.6], "locs": [[-3.0], [3.0]], "scales": [1.0, 1.5]}


def mixture():
    """``(model, truth)`` of the coverage check."""
    model = GaussianMixture(k=2, dim=1, covariance="spherical")
    return model, model.params(**TRUTH)


def coverage(model, truth, n: int, datasets: int, level: float = 0.95, seed: int = 0,
             tol: float = 1e-10) -> dict:
    """How often the observed-information intervals hold the truth over simulated data.

    Args:
        model, truth: what simulates the data (and is fitted, from the truth).
        n: observations per data set; ``datasets``: how many (seeds ``seed ..``).
        level: the intervals' nominal coverage.

    Returns:
        ``{"coverage": {entry: fraction}, "pooled": fraction, "unavailable": count,
        "datasets": m, "n": n, "seconds": s}`` where entries are e.g. ``locs[1,0]``.
    """
    hits: dict[str, int] = {}
    unavailable = 0
    start = time.perf_counter()
    for s in range(seed, seed + datasets):
        data = model.simulate(truth, n=n, seed=s).data
        fit = fit_em(model, data, truth, tol=tol, record_params=False)
        result = observed_information(model, data, fit.params)
        lower, upper = result.intervals(level)
        perm = alignment(model, truth, fit.params)
        lower, upper = permute(model, lower, perm), permute(model, upper, perm)
        for name in lower:
            inside = (lower[name] <= truth[name]) & (truth[name] <= upper[name])
            missing = permute(model, result.standard_errors.unavailable, perm)[name]
            unavailable += int(missing.sum())
            for index, ok in zip(_indices(inside.shape), inside.reshape(-1).tolist()):
                key = f"{name}[{','.join(map(str, index))}]"
                hits[key] = hits.get(key, 0) + int(ok)
    fractions = {key: count / datasets for key, count in hits.items()}
    return {"coverage": fractions, "pooled": sum(hits.values()) / (datasets * len(hits)),
            "unavailable": unavailable, "datasets": datasets, "n": n, "level": level,
            "seconds": time.perf_counter() - start}


def _indices(shape) -> list[tuple]:
    return [tuple(i) for i in torch.cartesian_prod(*[torch.arange(s) for s in shape])
            .reshape(-1, len(shape)).tolist()] if shape else [()]


def bootstrap_costs(n: int, replicates: int) -> dict:
    """Observed-information vs bootstrap standard errors on one data set, with seconds."""
    model, truth = mixture()
    data = model.simulate(truth, n=n, seed=0).data
    fit = fit_em(model, data, truth, tol=1e-12)
    out = {"n": n, "replicates": replicates, "methods": {}}
    timed = [("observed", {}), ("louis", {}),
             ("bootstrap_nonparametric_batch", {"replicates": replicates}),
             ("bootstrap_nonparametric_loop", {"replicates": replicates, "strategy": "loop"}),
             ("bootstrap_parametric", {"replicates": replicates, "kind": "parametric"})]
    observed = None
    for label, options in timed:
        method = "bootstrap" if options else label
        start = time.perf_counter()
        se = fit.standard_errors(method=method, **options)
        seconds = time.perf_counter() - start
        observed = se if observed is None else observed
        ratio = {k: (se[k] / observed[k]).reshape(-1).tolist() for k in se}
        out["methods"][label] = {"seconds": seconds, "standard_errors": se.to_lists(),
                                 "ratio_to_observed": ratio}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emvi.experiments.benchmarks.uncertainty")
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--n", type=int, default=500, help="observations per data set")
    parser.add_argument("--replicates", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="20 data sets, 50 replicates")
    args = parser.parse_args(argv)
    datasets, replicates = (20, 50) if args.quick else (args.datasets, args.replicates)
    model, truth = mixture()
    cover = coverage(model, truth, args.n, datasets)
    print(f"coverage of 95% intervals over {datasets} data sets (n={args.n}): pooled "
          f"{cover['pooled']:.3f}; " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                 cover["coverage"].items())
          + f"  ({cover['seconds']:.1f} s)", flush=True)
    costs = bootstrap_costs(2000, replicates)
    for label, entry in costs["methods"].items():
        ratios = [round(r, 3) for v in entry["ratio_to_observed"].values() for r in v]
        print(f"{label:<32} {entry['seconds']:8.3f} s  se / observed {ratios}", flush=True)
    record = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0],
                    "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "truth": TRUTH,
        "coverage": cover, "bootstrap": costs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (f"uncertainty-{time.strftime('%Y%m%d-%H%M%S')}"
                      f"{'-quick' if args.quick else ''}.json")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
