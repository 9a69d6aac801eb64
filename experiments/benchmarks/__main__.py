"""``make bench``: our EM beside the anchors (scikit-learn), timed interleaved in one process.

Each benchmark runs our code and the anchor alternately, ``--repeats`` times, from
the same initial parameters, and reports medians and the ratio anchor / ours
(> 1: we are faster). Both sides run on :data:`THREADS` thread(s) (torch's intra-op
pool, and the anchors' BLAS/OpenMP pools through threadpoolctl): on a shared machine a
second thread mostly measures the neighbours, and one thread compares the algorithms.
Results go to ``experiments/benchmarks/results/`` as JSON.
The anchors are the optional ``[bench]`` extra; nothing here runs in ``make test``.

    python -m emvi.experiments.benchmarks [--quick] [--only NAME ...] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
#: (n, d, K) of the EM-per-iteration benchmark and its iterations
GMM_SHAPES = [((1_000_000, 2, 3), 20), ((200_000, 16, 8), 20), ((3_000, 1, 3), 200)]
KMEANS_SHAPES = [(1_000_000, 2, 3), (200_000, 16, 8)]
#: threads of both sides
THREADS = 1


def blobs(n: int, d: int, k: int, seed: int) -> torch.Tensor:
    """Well-separated Gaussian blobs, shuffled: (n, d) float64."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=gen, dtype=torch.float64) * 6
    labels = torch.randint(k, (n,), generator=gen)
    return centres[labels] + torch.randn(n, d, generator=gen, dtype=torch.float64)


#: CPU seconds of this process per call, by name, from the latest :func:`interleaved`
CPU_TIMES: dict[str, list[float]] = {}


def interleaved(runs: dict, repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Call each function in turn, ``repeats`` rounds.

    Wall-clock seconds are the measure; the process's CPU seconds are kept beside them
    (:data:`CPU_TIMES`): with one thread on both sides they equal the wall time on a quiet
    machine, and on a shared one they leave out the time spent descheduled.

    Returns:
        Seconds per call for each name, and each function's last return value.
    """
    times, last = {name: [] for name in runs}, {}
    CPU_TIMES.clear()
    CPU_TIMES.update({name: [] for name in runs})
    for _ in range(repeats):
        for name, fn in runs.items():
            start, cpu = time.perf_counter(), time.process_time()
            last[name] = fn()
            times[name].append(time.perf_counter() - start)
            CPU_TIMES[name].append(time.process_time() - cpu)
    return times, last


def summary(times: dict, per: dict | None = None) -> dict:
    """Median seconds (optionally per iteration) and the ratio anchor / ours; the same for
    CPU seconds (``cpu_ratio``) when :func:`interleaved` measured these ``times``."""
    per = per or {}
    med = {name: statistics.median(ts) / per.get(name, 1) for name, ts in times.items()}
    out = {"median_seconds": med, "ratio": med["anchor"] / med["ours"]}
    if set(CPU_TIMES) == set(times) and all(len(CPU_TIMES[k]) == len(times[k]) for k in times):
        cpu = {name: statistics.median(ts) / per.get(name, 1) for name, ts in CPU_TIMES.items()}
        out.update({"median_cpu_seconds": cpu, "cpu_ratio": cpu["anchor"] / max(cpu["ours"],
                                                                                  1e-12)})
    return out


def sklearn_precisions(model, params) -> np.ndarray:
    if "scale_tril" in params:
        tril = params["scale_tril"].numpy()
        return np.linalg.inv(tril @ np.swapaxes(tril, -1, -2))
    return 1.0 / params["scales"].numpy() ** 2


def bench_gmm_iteration(repeats: int, quick: bool) -> list[dict]:
    """One EM iteration, full covariances, same init, tol=0 and a fixed iteration count."""
    from sklearn.mixture import GaussianMixture as Anchor

    from ...inference import fit_em, initialize
    from ...models import GaussianMixture

    out = []
    for (n, d, k), iters in GMM_SHAPES:
        if quick:
            n, iters = min(n, 100_000), min(iters, 20)
        data = blobs(n, d, k, seed=0)
        model = GaussianMixture(k=k, dim=d, covariance="full")
        init = initialize(model, data[:20_000], method="kmeans++", seed=0)
        x = data.numpy()
        anchor = Anchor(k, covariance_type="full", max_iter=iters, tol=0.0,
                        init_params="random_from_data", weights_init=init["weights"].numpy(),
                        means_init=init["locs"].numpy(),
                        precisions_init=sklearn_precisions(model, init))
        ours = partial(fit_em, model, data, init, max_iter=iters, tol=None, record_params=False)
        times, last = interleaved({"ours": ours, "anchor": partial(anchor.fit, x)}, repeats)
        fit = last["ours"]
        assert fit.iterations == iters and anchor.n_iter_ == iters
        difference = float(np.abs(fit.params["locs"].numpy() - anchor.means_).max())
        assert difference <= 1e-10, f"GMM means differ from the anchor's by {difference}"
        result = summary(times, {"ours": iters, "anchor": iters})
        result.update({
            "name": "gmm_em_iteration", "shape": [n, d, k], "iterations": iters,
            "anchor": "sklearn.mixture.GaussianMixture",
            "max_abs_mean_difference": difference,
            "log_likelihood_per_point": {"ours": fit.log_likelihood / n,
                                         "anchor": float(anchor.score(x))},
            "target_ratio": 5.0,
        })
        out.append(result)
    return out


def bench_restarts(repeats: int, quick: bool) -> list[dict]:
    """Ten restarts (k-means++ starts, 100 iterations each) vs ``n_init=10``."""
    from sklearn.mixture import GaussianMixture as Anchor

    from ...inference import fit_em, initialize
    from ...models import GaussianMixture

    n, d, k, iters, restarts = (3_000, 2, 3, 100, 10)
    data = blobs(n, d, k, seed=1)
    x = data.numpy()
    model = GaussianMixture(k=k, dim=d, covariance="full")

    def ours():
        init = initialize(model, data, method="kmeans++", seed=0, restarts=restarts)
        fit_em(model, data, init, max_iter=iters, tol=None, record_params=False)

    anchor = Anchor(k, covariance_type="full", max_iter=iters, tol=0.0, n_init=restarts,
                    init_params="k-means++", random_state=0)
    times, _ = interleaved({"ours": ours, "anchor": partial(anchor.fit, x)}, repeats)
    result = summary(times)
    result.update({"name": "gmm_restarts", "shape": [n, d, k], "iterations": iters,
                   "restarts": restarts, "anchor": "sklearn GaussianMixture(n_init=10)",
                   "target_ratio": 10.0,
                   "note": "whole fits including k-means++ initialisation of every restart"})
    return [result]


def bench_kmeans(repeats: int, quick: bool) -> list[dict]:
    """Lloyd's algorithm (hard EM on KMeans) vs scikit-learn's KMeans(algorithm='lloyd')."""
    from sklearn.cluster import KMeans as Anchor

    from ...inference import fit_em
    from ...inference.init import kmeans_plusplus
    from ...models import KMeans

    out = []
    for n, d, k in KMEANS_SHAPES:
        if quick:
            n = min(n, 100_000)
        # no cluster structure: Lloyd takes many iterations, so per-iteration time is measured
        # rather than the fixed cost of a fit that converges in two
        data = torch.randn(n, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        gen = torch.Generator().manual_seed(0)
        centres = data[kmeans_plusplus(data[:5_000], k, gen)]
        model = KMeans(k=k, dim=d)
        init = model.params(locs=centres)
        x = data.numpy()
        anchor = Anchor(k, init=centres.numpy(), n_init=1, algorithm="lloyd", tol=0.0,
                        max_iter=300)
        ours = partial(fit_em, model, data, init, max_iter=300, tol=0.0, hard=True,
                       record_params=False, track_log_likelihood=False)
        times, last = interleaved({"ours": ours, "anchor": partial(anchor.fit, x)}, repeats)
        fit = last["ours"]
        difference = float(np.abs(np.sort(fit.params["locs"].numpy(), 0)
                                  - np.sort(anchor.cluster_centers_, 0)).max())
        assert difference <= 1e-10, f"k-means centres differ from the anchor's by {difference}"
        per = {"ours": fit.iterations + 1, "anchor": anchor.n_iter_}
        result = summary(times, per)
        result.update({
            "name": "kmeans_iteration", "shape": [n, d, k],
            "iterations": {"ours": fit.iterations, "anchor": int(anchor.n_iter_)},
            "anchor": "sklearn.cluster.KMeans(algorithm='lloyd')",
            "max_abs_centre_difference": difference,
            "target_ratio": 1.5,
            "total_seconds_ratio": statistics.median(times["anchor"])
            / statistics.median(times["ours"]),
        })
        out.append(result)
    return out


def bench_pyro_step(repeats: int, quick: bool) -> list[dict]:
    """One TraceEnum_ELBO gradient step (as a fit takes it, and compiled as a long fit
    switches to: JitTraceEnum_ELBO) vs one hand-written autograd step of the same loss:
    the same unconstrained leaves through the same constraint transforms. The losses and
    gradients are asserted equal before a ratio is printed."""
    from .vi import pyro_steps

    return pyro_steps(repeats, quick)


def bench_missing(repeats: int, quick: bool) -> list[dict]:
    from .missing import bench_missing as run

    return run(repeats, quick)


def bench_hmm(repeats: int, quick: bool) -> list[dict]:
    from .hmm import bench_hmm as run

    return run(repeats, quick)


def bench_generic(repeats: int, quick: bool):
    from .generic import bench_generic as run

    yield from run(repeats, quick)


def bench_distributed(repeats: int, quick: bool) -> list[dict]:
    from .distributed import bench_distributed as run

    return run(repeats, quick)


def bench_vi_seeds(repeats: int, quick: bool) -> list[dict]:
    from .vi import bench_vi_seeds as run

    return run(repeats, quick)


BENCHMARKS = {"gmm": bench_gmm_iteration, "restarts": bench_restarts, "kmeans": bench_kmeans,
              "pyro_step": bench_pyro_step, "vi_seeds": bench_vi_seeds,
              "missing": bench_missing, "hmm": bench_hmm,
              "generic": bench_generic, "distributed": bench_distributed}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emvi.experiments.benchmarks")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller shapes (a smoke check)")
    args = parser.parse_args(argv)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("benchmarks need the anchors: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")  # sklearn warns that tol=0 never converges
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(THREADS)
    limits = threadpool_limits(THREADS)
    results = []
    for name in args.only or list(BENCHMARKS):
        for result in BENCHMARKS[name](args.repeats, args.quick):
            results.append(result)
            if "vi_over_em" in result:
                from .vi import line

                print(line(result), flush=True)
                continue
            med = result["median_seconds"]
            print(f"{result['name']:<22} {str(result.get('shape')):<20} ours "
                  f"{1e3 * med['ours']:9.3f} ms  anchor {1e3 * med['anchor']:9.3f} ms  "
                  f"ratio {result['ratio']:6.2f}x" + (f"  (target {result['target_ratio']}x)"
                                                       if "target_ratio" in result else "")
                  + (f"  cpu ratio {result['cpu_ratio']:6.2f}x" if "cpu_ratio" in result else "")
                  + (f"  cost {result['cost_ratio']:.2f}x (target <= "
                     f"{result['target_cost_ratio']}x)" if "cost_ratio" in result else ""),
                  flush=True)
    limits.restore_original_limits()
    record = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch_threads": torch.get_num_threads(), "anchor_threads": THREADS,
                    "cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "torch": torch.__version__},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "quick": args.quick, "repeats": args.repeats,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
