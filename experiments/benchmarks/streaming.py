"""Ten million points streamed from disk: batch EM, online EM and mini-batch VI, per pass.

The data (a 4-component diagonal Gaussian mixture in 2-D, the shipped config
``streaming.toml``'s) are simulated chunk by chunk into ``.npy`` shards in a temporary
folder and memory-mapped, never held whole. From one start (``random_points``: four rows
of a uniform sample of 10^5 as centres, 0.2 relative below the optimum; k-means++ starts
within 1e-3 of it, so every method would be "there" at once, and random responsibilities
start all components alike, a saddle batch EM took 200 passes not to leave) the three
methods run on ``THREADS`` thread(s):

- batch EM: ``fit_em`` over chunks of :data:`CHUNK` rows, to ``tol`` (one pass per
  iteration); its final log-likelihood is the optimum ``L*`` the others are measured by;
- online EM: ``fit_online_em``, batches of :data:`BATCH` rows, Polyak-averaged;
- mini-batch VI: ``fit_vi(batch_size=BATCH)`` with Adam.

For each: the full-data log-likelihood per observation after every pass, and the passes
and seconds until ``(L* - L) / |L*| <= 1e-3`` (and 1e-4, 1e-5). Online EM's and VI's
seconds include their per-pass full-data evaluation (one E-step pass each). Written to
``results/streaming-*.json`` and printed.

    python -m emvi.experiments.benchmarks.streaming [--n N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
N, CHUNK, BATCH = 10_000_000, 250_000, 10_000
THREADS = 1
TARGETS = (1e-3, 1e-4, 1e-5)
TRUTH = {"weights": [0.2, 0.3, 0.25, 0.25],
         "locs": [[-4.0, -3.0], [3.0, 4.0], [4.0, -4.0], [-3.0, 4.0]],
         "scales": [[1.4, 1.0], [1.0, 1.2], [0.7, 1.6], [1.2, 0.5]]}


def simulate(model, truth, n: int, folder: Path):
    """``n`` rows in shards of :data:`CHUNK` (shard ``i`` seeded by ``(0, i)``), mapped."""
    from ...inference.ondisk import open_shards

    for i, start in enumerate(range(0, n, CHUNK)):
        seed = int(np.random.SeedSequence([0, i]).generate_state(1)[0])
        rows = model.simulate(truth, n=min(CHUNK, n - start), seed=seed).data
        np.save(folder / f"shard-{i:06d}.npy", rows.numpy())
    return open_shards(folder)


def reached(fit, optimum: float, target: float) -> dict:
    """The first pass (trace index) and seconds at which ``fit`` is within ``target`` of
    ``optimum`` (relative), or ``None``."""
    gaps = (optimum - fit.log_likelihood_trace) / abs(optimum)
    hits = torch.nonzero(gaps <= target).flatten()
    if len(hits) == 0:
        return {"passes": None, "seconds": None}
    i = int(hits[0])
    return {"passes": i, "seconds": float(fit.seconds[i])}


def record(fit, n: int, optimum: float) -> dict:
    return {"method": fit.method, "passes": len(fit.objective) - 1,
            "seconds": float(fit.seconds[-1]),
            "log_likelihood_per_observation": [float(v) / n for v in fit.log_likelihood_trace],
            "seconds_per_pass_trace": [float(s) for s in fit.seconds],
            "final_relative_gap": (optimum - fit.log_likelihood) / abs(optimum),
            "to_target": {f"{t:g}": reached(fit, optimum, t) for t in TARGETS},
            "notes": list(fit.notes)}


def run(n: int, passes: int, vi_passes: int, init_method: str = "random_points") -> dict:
    from ...experiments.stream import sample_rows
    from ...inference import fit_em, fit_online_em, fit_vi, initialize
    from ...models import GaussianMixture

    model = GaussianMixture(k=4, dim=2, covariance="diag")
    truth = model.check_params(TRUTH)
    with tempfile.TemporaryDirectory(prefix="emvi-bench-") as folder:
        start = time.perf_counter()
        data = simulate(model, truth, n, Path(folder))
        simulated = time.perf_counter() - start
        init = initialize(model, sample_rows(data, 100_000, 0), method=init_method, seed=0)
        fits = {"batch_em": fit_em(model, data, init, chunk_size=CHUNK, max_iter=200,
                                   tol=1e-12, record_params=False)}
        fits["online_em"] = fit_online_em(model, data, init, batch_size=BATCH, passes=passes,
                                          polyak=True, chunk_size=CHUNK)
        fits["minibatch_vi"] = fit_vi(model, data, init, optimizer="adam", lr=0.01,
                                      batch_size=BATCH, steps=vi_passes * math.ceil(n / BATCH),
                                      chunk_size=CHUNK, record_params=False)
    optimum = fits["batch_em"].log_likelihood
    return {"n": n, "d": 2, "k": 4, "chunk": CHUNK, "batch": BATCH, "init": init_method,
            "simulate_seconds": simulated, "optimum_per_observation": optimum / n,
            "fits": {name: record(fit, n, optimum) for name, fit in fits.items()},
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "data_bytes": n * 2 * 8}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emvi.experiments.benchmarks.streaming")
    parser.add_argument("--n", type=float, default=N)
    parser.add_argument("--passes", type=int, default=5, help="online EM's passes")
    parser.add_argument("--vi-passes", type=int, default=3, help="mini-batch VI's passes")
    parser.add_argument("--quick", action="store_true", help="2*10^5 points (a smoke check)")
    parser.add_argument("--init", default="random_points", help="the start's method")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    n = 200_000 if args.quick else int(args.n)
    result = run(n, args.passes, args.vi_passes, args.init)
    print(f"n={n}  optimum {result['optimum_per_observation']:.6f} per observation  "
          f"(simulated in {result['simulate_seconds']:.1f} s; peak RSS "
          f"{result['peak_rss_bytes'] / 2**20:.0f} MiB for {result['data_bytes'] / 2**20:.0f}"
          f" MiB of data)")
    for name, fit in result["fits"].items():
        hit = fit["to_target"]["0.001"]
        to = ("not reached" if hit["passes"] is None else
              f"{hit['passes']} passes, {hit['seconds']:.1f} s")
        print(f"{name:<13} {fit['passes']:>4} passes {fit['seconds']:8.1f} s   to 1e-3: "
              f"{to:<24} final gap {fit['final_relative_gap']:.2e}")
        print("              per pass: " + " ".join(
            f"{v:.5f}" for v in fit["log_likelihood_per_observation"][:12]))
    payload = {"machine": {"platform": platform.platform(), "torch_threads": THREADS,
                           "cpus": os.cpu_count(), "python": sys.version.split()[0],
                           "torch": torch.__version__, "load_average": os.getloadavg()},
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, **result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"streaming-{time.strftime('%Y%m%d-%H%M%S')}"\
        f"{'-quick' if args.quick else ''}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
