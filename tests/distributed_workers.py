"""Rank functions for tests/inference/test_distributed.py, run in spawned processes.

Each takes ``(rank, world, folder, queue)``, joins a gloo group by a file rendezvous in
``folder`` and puts ``(rank, name, value)`` results on ``queue``.
"""

from __future__ import annotations

import os
import time
import traceback

import torch


def launch(target, world: int, folder, timeout: float = 240.0) -> tuple[dict, list]:
    """Run ``target`` on ``world`` spawned ranks; ``({(rank, name): value}, exit codes)``."""
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")  # the server imports torch once for every rank
    ctx.set_forkserver_preload(["distributed_workers", "emvi.inference.distributed",
                                "torch._dynamo"])
    queue = ctx.Queue()
    procs = [ctx.Process(target=_main, args=(target, r, world, str(folder), queue))
             for r in range(world)]
    for p in procs:
        p.start()
    results, deadline = {}, time.monotonic() + timeout
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        while not queue.empty():
            rank, name, value = queue.get()
            results[(rank, name)] = value
        time.sleep(0.05)
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join()
    while not queue.empty():
        rank, name, value = queue.get()
        results[(rank, name)] = value
    return results, [p.exitcode for p in procs]


def _main(target, rank, world, folder, queue):
    torch.set_num_threads(1)
    try:
        target(rank, world, folder, queue)
    except BaseException:
        queue.put((rank, "uncaught", traceback.format_exc()))
        raise


def _join(rank, world, folder, name, timeout=60.0):
    from emvi.inference.distributed import init_group

    init_group(rank, world, f"file://{os.path.join(folder, name)}", timeout=timeout)


def _trace(fit):
    return [{k: v.tolist() for k, v in p.items()} for p in fit.param_trace]


def _gaussian_data():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.5], [0.5, 4.0]], dtype=torch.float64)
    return torch.cat([torch.randn(70 + 10 * j, 2, generator=gen, dtype=torch.float64) + c
                      for j, c in enumerate(centres)]) * 10.0 + 1000.0


def agreement(rank, world, folder, queue):
    """EM (batched restarts, chunks, HMM, hard EM with relocation) and VI, distributed and
    alone; every rank reports its traces."""
    import torch.distributed as dist
    from emvi.inference.distributed import fit_em_distributed, fit_vi_distributed, shard
    from model_cases import make

    import emvi

    _join(rank, world, folder, "agreement")
    model = emvi.GaussianMixture(k=3, dim=2, covariance="full")
    data = _gaussian_data()
    init = emvi.initialize(model, data, method="random_points", seed=3, restarts=3)
    ref = model.shift(data)
    fit = fit_em_distributed(model, shard(model, data), init, shift=ref, tol=1e-10)
    alone = emvi.fit_em(model, data, init, tol=1e-10)
    queue.put((rank, "gmm", (_trace(fit), _trace(alone), fit.objective.tolist(),
                             fit.iterations, fit.best_restart, alone.objective.tolist(),
                             alone.best_restart)))
    chunked = fit_em_distributed(model, shard(model, data), init.select(0, model.specs),
                                 shift=ref, chunk_size=17, max_iter=30, tol=None)
    alone = emvi.fit_em(model, data, init.select(0, model.specs), max_iter=30, tol=None)
    queue.put((rank, "chunked", (_trace(chunked), _trace(alone))))

    hmm, truth = make("hmm_gaussian_diag")
    seqs = hmm.simulate(truth, lengths=[30, 12, 25, 40, 8, 19, 33], seed=2).data
    start = emvi.initialize(hmm, seqs, seed=0)
    fit = fit_em_distributed(hmm, shard(hmm, seqs), start, shift=hmm.shift(seqs), max_iter=40)
    alone = emvi.fit_em(hmm, seqs, start, max_iter=40)
    queue.put((rank, "hmm", (_trace(fit), _trace(alone), fit.objective.tolist(),
                             len(shard(hmm, seqs)))))

    kmeans = emvi.KMeans(k=4, dim=2)
    far = {"locs": [[0.0, 0.0], [3.0, 0.5], [0.5, 4.0], [500.0, 500.0]]}  # one never chosen
    x = _gaussian_data() / 10.0 - 100.0
    fit = fit_em_distributed(kmeans, shard(kmeans, x), far, shift=kmeans.shift(x))
    alone = emvi.fit_em(kmeans, x, far)
    queue.put((rank, "kmeans", (_trace(fit), _trace(alone), fit.events, alone.events)))

    one = init.select(1, model.specs)
    for optimizer, steps in (("lbfgs", 40), ("adam", 30)):
        vi = fit_vi_distributed(model, shard(model, data), one, optimizer=optimizer,
                                steps=steps)
        alone = emvi.fit_vi(model, data, one, optimizer=optimizer, steps=steps)
        queue.put((rank, optimizer, (_trace(vi), vi.objective.tolist(), _trace(alone),
                                     alone.objective.tolist())))
    dist.destroy_process_group()


class _Faulty:
    """A model whose E-step misbehaves on one rank at its third call."""

    def __init__(self, model, what):
        self.model, self.what, self.calls = model, what, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def expect(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 3:
            if self.what == "raise":
                raise ValueError("boom in the E-step")
            if self.what == "hang":
                time.sleep(5.0)
            if self.what == "kill":
                os._exit(9)
        return self.model.expect(*args, **kwargs)


def failures(rank, world, folder, queue):
    """Rank 1 raises, then hangs past the timeout, then dies; rank 0 reports each."""
    import torch.distributed as dist
    from emvi.inference.distributed import RankFailed, fit_em_distributed, shard

    import emvi

    data = _gaussian_data()
    base = emvi.GaussianMixture(k=3, dim=2)
    init = emvi.initialize(base, data, seed=0)
    for what, timeout in (("raise", 60.0), ("hang", 3.0), ("kill", 60.0)):
        _join(rank, world, folder, what, timeout)
        model = _Faulty(base, what) if rank == 1 else base
        began = time.monotonic()
        try:
            fit_em_distributed(model, shard(base, data), init, tol=None, max_iter=50)
            outcome = "finished"
        except RankFailed as exc:
            outcome = f"RankFailed: {exc}"
        except ValueError as exc:
            outcome = f"ValueError: {exc}"
        queue.put((rank, what, (outcome, time.monotonic() - began)))
        if dist.is_initialized():
            dist.destroy_process_group()
        if what == "hang" and rank == 1:  # rank 0 gave up on it: the one left
            continue
