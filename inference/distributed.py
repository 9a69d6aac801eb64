"""Data-parallel EM and VI over ``torch.distributed`` processes (ranks).

Each rank holds its shard of the data (rows; whole sequences for an HMM: :func:`shard`).
EM: every rank runs the same loop (:func:`~inference.em.run_em`); after the E-step over
its shard, the statistics, log-likelihood and objective are packed into one flat float64
buffer and summed by ONE ``all_reduce`` per iteration, so every rank takes the same
M-step from the same sums and reaches the same convergence decision (the sum is the
same bits on every rank). Hard EM adds an ``all_gather`` of candidate points and an
``all_reduce`` of their moves in an iteration that relocates an empty component. A model's
statistics must have the same names and shapes on every shard (they follow from the
parameters' shapes in every model here), since the buffers are summed element by element.

VI: every rank evaluates TraceEnum_ELBO on its shard; the objective is a sum over shards,
so one ``all_reduce`` of the loss and its gradients per evaluation gives every rank the
whole objective's gradient, and the optimiser (Adam, or L-BFGS, whose line search sees
the same values everywhere) moves every rank alike.

The model's ``shift`` (a numerical reference such as the Gaussian's standardisation)
must be the same on every rank: pass the whole data's (``model.shift(data)``) for results
equal to a single-process fit up to round-off; ``None`` takes rank 0's shard's, sent
to every rank (a reference near the data: the same fit up to round-off).

Failure: a rank whose fit raises writes its error to the rendezvous store and leaves the
process group, so the others' pending ``all_reduce`` fails at once and they raise
:class:`RankFailed` naming that rank and its error; a rank that dies or stops answering
makes the others fail when the group's timeout passes (set it with :func:`init_group`).
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable

import torch
import torch.distributed as dist

from ..models.params import Params
from ..models.validation import InputError, check_k, precision_notes
from .em import CACHE_BYTES, run_em
from .em import Options as EMOptions
from .fit import Fit, Progress
from .options import EM, VI
from .vi import Objective, VIOptions, check_posterior, run_vi

#: how long a rank waits for the others at a collective before failing (seconds)
DEFAULT_TIMEOUT = 600.0
_ERROR_KEY = "emvi/failed/{}"


class RankFailed(RuntimeError):
    """Another rank raised, died, or stopped answering during a distributed fit."""


def init_group(rank: int | None = None, world_size: int | None = None,
               init_method: str | None = None, timeout: float = DEFAULT_TIMEOUT,
               backend: str = "gloo") -> None:
    """Join the default process group (``gloo`` on CPU; ``nccl`` for CUDA tensors).

    Args:
        rank, world_size: this process and how many; ``None``: from the environment
            ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``).
        init_method: ``file:///path`` (a file every rank can reach), ``tcp://host:port``,
            or ``None``: ``env://`` (torchrun's rendezvous).
        timeout: seconds a rank waits at a collective for the others before failing.
    """
    timeout = float(timeout)
    if not timeout > 0:
        raise InputError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    kwargs = {} if rank is None else {"rank": rank, "world_size": world_size}
    dist.init_process_group(backend, init_method=init_method or "env://",
                            timeout=datetime.timedelta(seconds=timeout), **kwargs)


def torchrun_environment() -> bool:
    """Whether this process was started by ``torchrun`` (or another launcher setting the
    ``env://`` variables: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``)."""
    return all(os.environ.get(name) for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                   "MASTER_PORT"))


def bounds(units: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s units: contiguous, sizes differ by at most one."""
    return rank * units // world_size, (rank + 1) * units // world_size


def shard(model, data, rank: int | None = None, world_size: int | None = None):
    """Rank ``rank``'s contiguous share of checked ``data``: rows, or whole sequences.

    Raises:
        InputError: fewer units (rows, sequences) than ranks.
    """
    rank = dist.get_rank() if rank is None else rank
    world_size = dist.get_world_size() if world_size is None else world_size
    units = model.n_units(data)
    if units < world_size:
        raise InputError(f"data: {units} rows (or sequences) for {world_size} processes; "
                         "each needs at least one: use fewer processes")
    start, stop = bounds(units, rank, world_size)
    if torch.is_tensor(data):
        return data[start:stop]
    return data.select(start, stop)


class Group:
    """The ranks of one fit: flat-buffer sums and objects from rank 0, with failures of
    other ranks raised as :class:`RankFailed`."""

    def __init__(self, group=None):
        if not dist.is_available() or not dist.is_initialized():
            raise InputError("group: torch.distributed is not initialised: call "
                             "emvi.inference.distributed.init_group (or "
                             "torch.distributed.init_process_group) first")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.step = 0  # collectives so far (the error message says where it stopped)

    def sum(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each tensor summed over ranks, by one ``all_reduce`` of one float64 buffer."""
        flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
        self._collective(dist.all_reduce, flat, op=dist.ReduceOp.SUM, group=self.group)
        out, at = [], 0
        for t in tensors:
            out.append(flat[at: at + t.numel()].reshape(t.shape).to(t.dtype))
            at += t.numel()
        return out

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """``(world_size, *shape)``: every rank's ``tensor`` (all the same shape)."""
        out = [torch.empty_like(tensor) for _ in range(self.world_size)]
        self._collective(dist.all_gather, out, tensor.contiguous(), group=self.group)
        return torch.stack(out)

    def from_rank0(self, value):
        """Rank 0's ``value`` (any picklable object) on every rank."""
        box = [value if self.rank == 0 else None]
        self._collective(dist.broadcast_object_list, box, src=dist.get_global_rank(
            self.group, 0) if self.group is not None else 0, group=self.group)
        return box[0]

    def _collective(self, fn, *args, **kwargs):
        self.step += 1
        try:
            fn(*args, **kwargs)
        except (RuntimeError, ValueError) as exc:  # gloo: a peer closed, or the timeout
            raise RankFailed(self._explain(exc)) from exc

    def _explain(self, exc: BaseException) -> str:
        failed = self._reported_failures()
        if failed:
            return "; ".join(f"rank {r} failed: {text}" for r, text in failed) + (
                f" (rank {self.rank} stopped at collective {self.step})")
        reason = " ".join(str(exc).split())[:300]
        return (f"rank {self.rank}: another rank died or stopped answering at collective "
                f"{self.step} (killed, out of memory, or past the timeout): {reason}")

    def _reported_failures(self) -> list[tuple[int, str]]:
        """``[(rank, message)]`` written to the store by ranks whose fit raised."""
        try:
            store = dist.distributed_c10d._get_default_store()
            store.set_timeout(datetime.timedelta(seconds=2))
        except Exception:  # no store reachable (the rank hosting it is gone)
            return []
        found = []
        for rank in range(self.world_size):
            key = _ERROR_KEY.format(rank)
            try:
                if store.check([key]):
                    found.append((rank, store.get(key).decode("utf-8", "replace")))
            except Exception:
                continue
        return found

    def fail(self, exc: BaseException) -> None:
        """Tell the other ranks that this one raised ``exc``, and leave the group so their
        pending collective fails now rather than at the timeout."""
        try:
            store = dist.distributed_c10d._get_default_store()
            text = " ".join(str(exc).split())[:500]
            store.set(_ERROR_KEY.format(self.rank), f"{type(exc).__name__}: {text}")
        except Exception:  # the store's host is gone: the others still time out
            pass
        try:
            dist.destroy_process_group()
        except Exception:
            pass


class EMReducer:
    """The EM loop's hook (``inference.em.run_em``): E-step sums over ranks."""

    def __init__(self, group: Group, n_observations: int):
        self.group, self.n_observations = group, n_observations

    def sum(self, stats: dict, log_lik, objective):
        """``stats``, ``log_lik`` (``None``: not computed) and ``objective`` summed over
        ranks: one ``all_reduce`` of one flat buffer."""
        keys = list(stats)
        alone = log_lik is None or log_lik is objective  # soft EM: one and the same
        parts = [torch.as_tensor(stats[key]) for key in keys]
        parts.append(torch.as_tensor(objective, dtype=torch.float64))
        if not alone:
            parts.append(torch.as_tensor(log_lik, dtype=torch.float64))
        summed = self.group.sum(parts)
        stats = dict(zip(keys, summed[: len(keys)]))
        objective = summed[len(keys)]
        log_lik = None if log_lik is None else objective if alone else summed[-1]
        return stats, log_lik, objective

    def relocate(self, model, chunks, stats: dict, scores, params: Params, batch):
        """Hard EM: empty components take the farthest points of ALL ranks (the lowest
        scores); the owning ranks move them, and the moves (additive) are summed."""
        empty = model.empty_components(stats)
        if not bool(empty.any()):
            return stats, []
        delta = {key: torch.zeros_like(value) for key, value in stats.items()}
        moved = []
        for b in range(math.prod(batch)) if batch else [None]:
            targets = torch.nonzero(empty if b is None else empty[b]).flatten()
            if len(targets) == 0:
                continue
            local = scores if b is None else scores[b]
            m = len(targets)
            lowest, where = torch.sort(local, stable=True)
            take = torch.full((m,), math.inf, dtype=torch.float64)
            take[: min(m, len(lowest))] = lowest[:m].to(torch.float64)
            every = self.group.gather(take)  # (W, m)
            # the m lowest of all, by (score, rank, local order): ties go to lower ranks
            order = torch.argsort(every.reshape(-1), stable=True)[:m]
            ranks, positions = order // m, order % m
            mine = ranks == self.group.rank
            if bool(mine.any()):
                one = params if b is None else params.select(b, model.specs)
                model.move_points(delta, b, targets[mine], where[positions[mine]],
                                  chunks.data, one, chunks.shift)
            moved += [(b, int(t)) for t in targets]
        keys = list(delta)
        summed = self.group.sum([delta[key] for key in keys])
        return {key: stats[key] + d for key, d in zip(keys, summed)}, moved


def _start(model, data, init, shift, group, need_shift: bool = True):
    """Shared preparation: checked shard, rank 0's init and shift (when needed: EM), and
    the whole n."""
    group = group if isinstance(group, Group) else Group(group)
    notes = precision_notes(data)
    data = model.check_data(data)
    params = model.check_params(init, "init")
    local = torch.tensor([model.n_observations(data)], dtype=torch.float64)
    n = int(group.sum([local])[0])
    check_k(model.k, n)
    if need_shift and shift is None and group.rank == 0:
        shift = model.shift(data)
    params, shift = group.from_rank0((params, shift))
    return group, notes, data, Params(params), shift, n


def _guarded(group_arg, body: Callable[[], Fit]) -> Fit:
    """Run ``body``; if it raises here, tell the other ranks before re-raising."""
    try:
        return body()
    except RankFailed:
        raise
    except BaseException as exc:
        if dist.is_initialized():
            Group(group_arg if not isinstance(group_arg, Group) else group_arg.group).fail(exc)
        raise


def fit_em_distributed(model, data, init, *, shift=None, group=None,
                       max_iter: int = EM["max_iter"].default,
                       tol: float | None = EM["tol"].default,
                       hard: bool | None = EM["hard"].default,
                       chunk_size: int | None = EM["chunk_size"].default,
                       callback: Callable[[Progress], None] | None = None,
                       record_params: bool = True, track_log_likelihood: bool = True) -> Fit:
    """EM over the ranks of a process group, each holding its shard of the data.

    Call it on every rank with the same arguments except ``data`` (that rank's shard:
    :func:`shard`). The result is the same on every rank: that of
    :func:`~inference.em.fit_em` on the whole data up to round-off.

    Args:
        model: a model with additive statistics (a closed-form M-step).
        data: this rank's ``(n_r, ...)`` rows, or whole sequences.
        init: initial parameters (``(R, ...)``: restarts); rank 0's are used everywhere.
        shift: ``model.shift(whole data)``; ``None``: rank 0's shard's (see the module).
        group: a process group (``None``: the default one).
        max_iter, tol, hard, chunk_size, callback, record_params, track_log_likelihood:
            as :func:`~inference.em.fit_em` (``tol`` per observation of the whole data).

    Returns:
        A :class:`~inference.fit.Fit` whose ``data`` and responsibilities are this
        rank's shard's and whose numbers are the whole data's.

    Raises:
        RankFailed: another rank raised, died or stopped answering.
    """
    if not model.chunkable:
        raise InputError("model: its M-step is generic (numerical) and needs all the data "
                         "in one process; fit it with fit_em")

    options = EMOptions(max_iter, tol, hard, chunk_size, callback, record_params,
                        track_log_likelihood, CACHE_BYTES, model)

    def body():
        grp, notes, local, params, ref, n = _start(model, data, init, shift, group)
        return run_em(model, local, params, options, notes, ref, EMReducer(grp, n))

    return _guarded(group, body)


def distributed_objective(group: Group, n: int):
    """An :class:`~inference.vi.Objective` class whose loss and gradients are summed over
    ``group``'s ranks (one ``all_reduce`` per evaluation) and whose ``n`` is ``n``."""

    class DistributedObjective(Objective):
        def backward(self, loss, leaves):
            loss.backward()
            grads = [leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
                     for leaf in leaves]
            summed = group.sum([loss.detach(), *grads])
            for leaf, grad in zip(leaves, summed[1:]):
                if leaf.grad is None:
                    leaf.grad = grad
                else:
                    leaf.grad.copy_(grad)
            return summed[0]

        def n_observations(self):
            return n

        def compile(self, leaves, loss):  # the compiled check compares one rank's loss
            return False

        def per_restart(self, loss, values):
            if not self.batch:
                return -loss.detach()
            return group.sum([super().per_restart(loss, values)])[0]

    return DistributedObjective


def fit_vi_distributed(model, data, init, *, group=None,
                       optimizer: str = VI["optimizer"].default,
                       lr: float | None = VI["lr"].default, steps: int = VI["steps"].default,
                       tol: float | None = VI["tol"].default,
                       patience: int | None = VI["patience"].default,
                       callback: Callable[[Progress], None] | None = None,
                       record_params: bool = True) -> Fit:
    """TraceEnum_ELBO over the ranks of a process group, each holding its shard.

    Point-estimate globals only (``posterior="point"``): the objective is then the sum
    of the shards' enumerated log-likelihoods, deterministic, so L-BFGS works as in
    :func:`~inference.vi.fit_vi`, whose arguments these are. ``init``: rank 0's.

    Raises:
        InputError: a model with priors (their term would count once per rank).
        RankFailed: another rank raised, died or stopped answering.
    """
    options = VIOptions.check(optimizer, lr, steps, tol, patience, callback, record_params)
    if model.prior:
        raise InputError("model: distributed VI fits point estimates without priors (a "
                         "prior's term would be counted once per process); fit MAP with "
                         "fit_em_distributed, or this model with fit_vi in one process")
    check_posterior(model, "point", options)

    def body():
        grp, notes, local, params, _, n = _start(model, data, init, None, group, False)
        return run_vi(model, local, params, options, "point", notes,
                      distributed_objective(grp, n))

    return _guarded(group, body)

