"""Data-parallel EM: seconds per iteration against n, in one process and in two gloo ranks.

A Gaussian mixture (full covariances, d=2, K=3) on well-separated blobs of n = 10^4 ..
10^7 points (10^6 at most with ``--quick``). The one-process side is ``fit_em`` in this
process; the two-process side is :func:`~inference.distributed.fit_em_distributed` on two
ranks started once (a forkserver; a file rendezvous), each with half of the rows. Both run
one torch thread per process. The cost per iteration is the median of a fit's
``ITERATIONS`` per-iteration times (the increments of ``fit.seconds``: one-time costs, such
as the checks of the data and the start's collectives, stay out, and a neighbour's burst
on a shared machine moves a median little); the sides alternate, repeat by repeat. Before
a speed-up is reported, both sides' log-likelihoods are asserted equal (1e-9 relative).

Reported per n: the two medians (``anchor``: one process, ``ours``: two), the speed-up
(``ratio``), and nanoseconds per point and iteration; over all n, the slope of
log(seconds per iteration) against log(n) for each side (1: linear in n).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile

import torch

SIZES = [10_000, 100_000, 1_000_000, 10_000_000]
D, K = 2, 3
ITERATIONS = 8
WORLD = 2


def _setting(n: int):
    """``(model, data, init, shift)``: the same on every process (seeded)."""
    from ...inference import initialize
    from ...models import GaussianMixture
    from .__main__ import blobs

    model = GaussianMixture(k=K, dim=D, covariance="full")
    data = blobs(n, D, K, seed=0)
    init = initialize(model, data[:10_000], method="random_points", seed=0)
    return model, data, init, model.shift(data)


def _rank(rank: int, init_method: str, conn) -> None:
    """One rank: fits on its shard when told ``(n, iterations)``; ``None`` ends it."""
    import torch.distributed as dist

    from ...inference.distributed import fit_em_distributed, init_group, shard

    torch.set_num_threads(1)
    init_group(rank, WORLD, init_method, timeout=3600)
    settings = {}
    try:
        while (task := conn.recv()) is not None:
            n, iterations = task
            if n not in settings:
                settings.clear()  # one size at a time in memory
                model, data, init, ref = _setting(n)
                settings[n] = (model, shard(model, data, rank, WORLD).clone(), init, ref)
                del data
            model, part, init, ref = settings[n]
            dist.barrier()
            fit = fit_em_distributed(model, part, init, shift=ref, max_iter=iterations,
                                     tol=None, record_params=False)
            conn.send((per_iteration(fit), fit.log_likelihood))
    finally:
        dist.destroy_process_group()


class Ranks:
    """Two ranks kept for the whole benchmark."""

    def __init__(self):
        import multiprocessing as mp

        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["emvi.inference.distributed", "emvi.experiments.benchmarks"])
        self.folder = tempfile.mkdtemp(prefix="emvi-bench-")
        method = "file://" + os.path.join(self.folder, "rendezvous")
        self.conns, self.procs = [], []
        for rank in range(WORLD):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_rank, args=(rank, method, theirs))
            proc.start()
            self.conns.append(mine)
            self.procs.append(proc)

    def fit(self, n: int, iterations: int) -> tuple[float, float]:
        for conn in self.conns:
            conn.send((n, iterations))
        replies = [conn.recv() for conn in self.conns]
        return replies[0]  # every rank waits for the others at each iteration's sum

    def close(self):
        import shutil

        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def _one(setting, iterations: int) -> tuple[float, float]:
    from ...inference import fit_em

    model, data, init, _ = setting
    fit = fit_em(model, data, init, max_iter=iterations, tol=None, record_params=False)
    return per_iteration(fit), fit.log_likelihood


def per_iteration(fit) -> float:
    """Median seconds of one iteration of ``fit`` (its ``seconds`` increments)."""
    return statistics.median(torch.diff(fit.seconds).tolist())


def _slope(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(n)."""
    xs, ys = [math.log(n) for n in sizes], [math.log(s) for s in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def bench_distributed(repeats: int, quick: bool) -> list[dict]:
    """Seconds per EM iteration against n on one process and on two (speed-up, slopes)."""
    sizes = [n for n in SIZES if not quick or n <= 1_000_000]
    ranks = Ranks()
    results = []
    try:
        for n in sizes:
            setting = _setting(n)
            per = {"anchor": [], "ours": []}
            for _ in range(repeats):
                lls = {}
                for side, fit in (("anchor", partial_one(setting)), ("ours", ranks.fit)):
                    seconds, lls[side] = fit(n, ITERATIONS)
                    per[side].append(seconds)
                gap = abs(lls["ours"] - lls["anchor"]) / abs(lls["anchor"])
                assert gap < 1e-9, f"log-likelihoods differ at n={n}: {lls}"
            med = {side: statistics.median(values) for side, values in per.items()}
            results.append({
                "name": "distributed_em", "shape": [n, D, K], "processes": WORLD,
                "threads_per_process": 1, "iterations": ITERATIONS,
                "seconds_per_iteration": per, "median_seconds": med,
                "ratio": med["anchor"] / med["ours"],
                "ns_per_point_iteration": {side: 1e9 * med[side] / n for side in med}})
            del setting
    finally:
        ranks.close()
    large = [r for r in results if r["shape"][0] >= 100_000]
    for name, rows in (("slope_log_seconds_vs_log_n", results),
                       ("slope_from_1e5", large)):
        if len(rows) > 1:
            slopes = {side: _slope([r["shape"][0] for r in rows],
                                   [r["median_seconds"][side] for r in rows])
                      for side in ("anchor", "ours")}
            for result in results:
                result[name] = slopes
    return results


def partial_one(setting):
    """The one-process side with the signature of :meth:`Ranks.fit`."""
    return lambda n, iterations: _one(setting, iterations)
