"""``emvi run CONFIG --workers N`` and ``torchrun ... -m emvi.experiments run CONFIG``:
every fit of a run shared by N ranks of a ``torch.distributed`` group (gloo).

Every rank reads the config, makes the cell's data and start as a one-process run does,
and fits its shard (rows; whole sequences for an HMM) with
:func:`~inference.distributed.fit_em_distributed` / ``fit_vi_distributed``: the numbers
are those of a one-process run up to round-off. Rank 0 alone writes the run directory
(the comparison, plots and report on all the data); the other ranks compute the fits and
wait for rank 0 between cells.

``--workers N`` starts N local processes (a file rendezvous in a private temporary folder)
and watches them: when one fails, the others are stopped and the error is reported with
the failing rank. Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT`` set), each process is one rank of torchrun's rendezvous.
"""

from __future__ import annotations

import datetime
import os
import signal
import time
from contextlib import contextmanager

from ..models.validation import InputError

#: seconds a rank waits at a collective for the others (``EMVI_DIST_TIMEOUT``)
TIMEOUT_ENV = "EMVI_DIST_TIMEOUT"
_CELL_KEY = "emvi/run/cell/{}"
_CURRENT = None


def current():
    """The :class:`~inference.distributed.Group` of a distributed run, or ``None``."""
    return _CURRENT


def follower() -> bool:
    """Whether this process is a rank other than 0 of a distributed run."""
    return _CURRENT is not None and _CURRENT.rank != 0


@contextmanager
def active(group):
    """Make ``group`` the run's group inside the block (``None``: a one-process run)."""
    global _CURRENT
    saved, _CURRENT = _CURRENT, group
    try:
        yield
    finally:
        _CURRENT = saved


def timeout() -> float:
    """The collective timeout in seconds: ``EMVI_DIST_TIMEOUT``, else 600."""
    from ..inference.distributed import DEFAULT_TIMEOUT

    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InputError(f"{TIMEOUT_ENV}: expected a positive number of seconds, got {text!r}")
    return value


# -- the fits of one rank ----------------------------------------------------------------
def fitters(model, data, fit_em, fit_vi):
    """``(fit_em, fit_vi)`` for a cell: those given in a one-process run; in a
    distributed run, the distributed fits on this rank's shard, returning fits whose
    ``data`` (and so responsibilities) are all the data again."""
    group = current()
    if group is None:
        return fit_em, fit_vi
    from ..inference.distributed import fit_em_distributed, fit_vi_distributed, shard

    part = shard(model, data, group.rank, group.world_size)

    def em(model, data, init, **kwargs):
        fit = fit_em_distributed(model, part, init, shift=model.shift(data), group=group,
                                 **kwargs)
        return _whole(fit, data)

    def vi(model, data, init, *, posterior=None, batch_size=None, seed=None,
           chunk_size=None, **kwargs):
        if posterior not in (None, "point") or model.prior:
            raise InputError("vi.posterior: --workers fits VI point estimates without "
                             "priors; run this config in one process (drop --workers) or "
                             "disable vi")
        if batch_size is not None:
            raise InputError("vi.batch_size: mini-batch VI runs in one process; drop "
                             "--workers or vi.batch_size")
        return _whole(fit_vi_distributed(model, part, init, group=group, **kwargs), data)

    return em, vi


def _whole(fit, data):
    """The fit with all the data: responsibilities are computed again on first use."""
    fit.data = data
    fit._responsibilities = None
    return fit


# -- rank 0 and the others ------------------------------------------------------------
def share_plan(indices: list[int]) -> None:
    """Rank 0: tell the other ranks which cells (plan indices) the run computes."""
    if _CURRENT is not None:
        _CURRENT.from_rank0(list(indices))


def cell_done(index: int) -> None:
    """Rank 0: the cell is written; the other ranks may start the next one."""
    if _CURRENT is not None:
        _store().set(_CELL_KEY.format(index), "done")


def _store():
    import torch.distributed as dist

    return dist.distributed_c10d._get_default_store()


def follow(config, reporter) -> None:
    """A rank other than 0: compute the fits of the cells rank 0 names, in its order,
    waiting for rank 0 to write each (its comparison, plots and report take a while)."""
    from .runner import compute_cell

    plan = [cell for exp in config.experiments for _, _, cell in exp.cells()]
    store = _store()
    for index in _CURRENT.from_rank0(None):
        compute_cell(plan[index], config.source, reporter)
        store.wait([_CELL_KEY.format(index)], datetime.timedelta(days=7))


# -- starting ranks -------------------------------------------------------------------
def join(rank: int | None = None, world_size: int | None = None,
         init_method: str | None = None):
    """Join the run's process group and return its :class:`Group` (torchrun's
    environment when ``rank`` is ``None``)."""
    from ..inference.distributed import Group, init_group

    init_group(rank, world_size, init_method, timeout=timeout())
    return Group()


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _rank_main(rank: int, world: int, init_method: str, argv: list, conn) -> None:
    """One spawned rank: the command's run, its outcome sent to the launcher."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher decides what Ctrl-C ends
    from .cli import parser, user_error

    try:
        import warnings

        if not os.environ.get("EMVI_DEBUG"):
            warnings.simplefilter("ignore")
        args = parser().parse_args(argv)
        path = run_rank(args, join(rank, world, init_method))
        conn.send(("ok", str(path) if path is not None else None))
    except BaseException as exc:
        from ..inference.distributed import RankFailed

        message = user_error(exc)
        kind = "user" if message is not None else "bug"
        if message is None:
            message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            if os.environ.get("EMVI_DEBUG"):
                import traceback

                traceback.print_exc()
        conn.send((kind, message, isinstance(exc, RankFailed)))
    finally:
        leave()
        conn.close()


def run_rank(args, group):
    """Run the config as rank ``group.rank``; rank 0 returns the run directory."""
    from .cli import Bars
    from .config import load
    from .runner import Reporter, run

    config = load(args.config, args.set or [], smoke=args.smoke)
    reporter = Bars(args.quiet) if group.rank == 0 else Reporter()
    try:
        return run(config, args.out, reporter, resume=args.resume, threads=args.threads,
                   device=getattr(args, "device", None), group=group)
    finally:
        if group.rank == 0:
            reporter.fit_finished()


class WorkerFailed(Exception):
    """A rank of ``--workers`` failed; ``user``: the failure is a user error (exit 2)."""

    def __init__(self, message: str, user: bool):
        super().__init__(message)
        self.user = user


def launch(args, workers: int) -> str:
    """Start ``workers`` local ranks running ``args``' config; return the run directory.

    Raises:
        WorkerFailed: naming the first rank that failed and why (the others are stopped).
        KeyboardInterrupt: Ctrl-C or SIGTERM (every rank is stopped).
    """
    import multiprocessing as mp
    import tempfile

    argv = rank_argv(args)
    folder = tempfile.mkdtemp(prefix="emvi-rendezvous-")
    init_method = "file://" + os.path.join(folder, "rendezvous")
    ctx = mp.get_context("forkserver")  # one clean process imports torch once for all
    ctx.set_forkserver_preload([__name__, "emvi.experiments.runner",
                                "emvi.inference.distributed", "torch._dynamo"])
    procs, conns = [], []
    try:
        for rank in range(workers):
            mine, theirs = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_rank_main, args=(rank, workers, init_method, argv,
                                                        theirs), name=f"emvi-rank-{rank}")
            proc.start()
            theirs.close()
            procs.append(proc)
            conns.append(mine)
        return _watch(procs, conns)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        _remove(folder)


def _watch(procs, conns) -> str:
    """Reports and exits of the ranks until all have finished or one has failed."""
    from multiprocessing.connection import wait

    reports, failed_at = {}, None
    while True:
        waiting = [c for r, c in enumerate(conns) if r not in reports]
        ready = wait(waiting + [p.sentinel for p in procs], timeout=0.5)
        for r, conn in enumerate(conns):
            if conn in ready and r not in reports:
                try:
                    reports[r] = conn.recv()
                except EOFError:
                    reports[r] = None  # died without a word
        for r, proc in enumerate(procs):
            if proc.exitcode is not None and proc.exitcode != 0 and r not in reports:
                reports[r] = None
        bad = {r: rep for r, rep in reports.items() if rep is None or rep[0] != "ok"}
        if bad and failed_at is None:
            failed_at = time.monotonic()
        if failed_at is not None and (len(reports) == len(procs)
                                      or time.monotonic() - failed_at > 3.0):
            raise _failure(bad, procs)
        if len(reports) == len(procs):
            return reports[0][1]


def _failure(bad: dict, procs) -> WorkerFailed:
    """The root cause: a rank's own error before the others' 'rank r failed' echoes."""
    rank, report = sorted(bad.items(), key=lambda item: (
        0 if item[1] is not None and not item[1][2] else 1 if item[1] is None else 2,
        item[0]))[0]
    if report is None:
        code = procs[rank].exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else (
            f"exit status {code}")
        return WorkerFailed(f"rank {rank} of {len(procs)} died ({how}; out of memory?)",
                            False)
    kind, message, _ = report
    return WorkerFailed(f"rank {rank} of {len(procs)}: {message}", kind == "user")


def rank_argv(args) -> list[str]:
    """The ``emvi run`` command line of one rank: ``args`` without ``--workers``."""
    argv = ["run", args.config, "--out", str(args.out)]
    for text in args.set or []:
        argv += ["--set", text]
    argv += ["--smoke"] * bool(args.smoke) + ["--quiet"] * bool(args.quiet)
    if args.resume is not None:
        argv += ["--resume", str(args.resume)]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    return argv


def _remove(folder: str) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
