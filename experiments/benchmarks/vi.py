"""The variational path beside EM: one TraceEnum_ELBO step against a hand-written autograd
step of the same loss, and EM against VI in time to 1e-6 of the best objective on the
seed examples.

The step benchmark asserts that the two losses and their gradients are equal (1e-10
relative) before a ratio is printed. The seed benchmark fits every shipped seed
experiment as ``emvi run`` does (the cell's data, its start, its EM and VI options; with
restarts, from the one shared start: EM's best) at the shipped size and at
:data:`LARGE_N` observations; both fits run interleaved ``repeats`` times. Its time to
1e-6 is the report's: the first step whose log-likelihood is within 1e-6 (relative) of
the better of the two final log-likelihoods, timed from the start of the loop; the
whole call (checks and set-up included) is recorded beside it.
"""

from __future__ import annotations

import statistics
import time

import torch

#: (config, experiment) of the seed examples: seeds.toml and the single-experiment configs
#: of the same three examples
SEED_CONFIGS = [("seeds", "kmeans"), ("seeds", "two_coins"), ("seeds", "gmm_1d"),
                ("kmeans", "kmeans"), ("two_coins", "two_coins"), ("gmm_1d", "gmm_1d")]
#: the size at which VI should be within :data:`TARGET` of EM
LARGE_N = 10_000
TARGET = 10.0
RTOL = 1e-6


class _Silent:
    def fit_progress(self, progress) -> None: ...


def _cell(config: str, experiment: str, n: int | None):
    from ..config import load

    overrides = [] if n is None else [f"data.n={n}"]
    cfg = load(config, overrides)
    exp = next(e for e in cfg.experiments if e.name == experiment)
    return exp.cells()[0][2], cfg.source


def _setting(config: str, experiment: str, n: int | None):
    """``(cell, model, data, start)``: the start both paths share (EM's best restart)."""
    from ...inference import fit_em
    from ..config import build_model
    from ..runner import make_data, make_init

    cell, source = _cell(config, experiment, n)
    model = build_model(cell.model, source)
    data = make_data(cell, model, source)[0]
    init = make_init(cell, model, data)
    if init.batch_shape(model.specs):
        em = cell.em
        every = fit_em(model, data, init, max_iter=em["max_iter"], tol=em["tol"],
                       hard=em["hard"], record_params=False)
        init = init.select(every.best_restart, model.specs)
    return cell, model, data, init


def _em(cell, model, data, init):
    from ...inference import fit_em

    em = cell.em
    return fit_em(model, data, init, max_iter=em["max_iter"], tol=em["tol"], hard=em["hard"],
                  chunk_size=em["chunk_size"], callback=_Silent().fit_progress)


def _vi(cell, model, data, init):
    from ...inference import fit_vi

    vi = cell.vi
    return fit_vi(model, data, init, optimizer=vi["optimizer"], lr=vi["lr"], steps=vi["steps"],
                  tol=vi["tol"], patience=vi["patience"], posterior=vi["posterior"],
                  callback=_Silent().fit_progress)


def seed_time_to_tolerance(config: str, experiment: str, n: int | None, repeats: int) -> dict:
    """EM and VI of one seed experiment, interleaved: time to 1e-6 of the best objective."""
    from ...inference.compare import time_to_reach

    cell, model, data, init = _setting(config, experiment, n)
    runs = {"em": _em, "vi": _vi}
    wall = {name: [] for name in runs}
    to_tol = {name: [] for name in runs}
    last = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            last[name] = fn(cell, model, data, init)
            wall[name].append(time.perf_counter() - start)
        best = max(f.log_likelihood for f in last.values())
        for name, fit in last.items():
            to_tol[name].append(time_to_reach(fit, best, RTOL))
    reached = {name: all(s is not None for _, s in to_tol[name]) for name in runs}
    seconds = {name: statistics.median(s for _, s in to_tol[name]) if reached[name] else None
               for name in runs}
    n_obs = model.n_observations(data)
    lls = {name: fit.log_likelihood for name, fit in last.items()}
    gap = abs(lls["em"] - lls["vi"]) / abs(max(lls.values()))
    ratio = seconds["vi"] / seconds["em"] if all(reached.values()) else None
    return {
        "name": "vi_vs_em_time_to_tolerance", "config": config, "experiment": experiment,
        "n": n_obs, "k": model.k, "model": model.describe(),
        "em": dict(cell.em), "vi": {k: cell.vi[k] for k in ("optimizer", "lr", "steps", "tol")},
        "rtol": RTOL,
        "log_likelihoods": lls, "relative_gap": gap,
        "iterations": {name: fit.iterations for name, fit in last.items()},
        "iterations_to_tolerance": {name: to_tol[name][-1][0] for name in runs},
        "seconds_to_tolerance": seconds,
        "wall_seconds": {name: statistics.median(ts) for name, ts in wall.items()},
        "median_seconds": {"ours": seconds["vi"], "anchor": seconds["em"]},
        "vi_over_em": ratio,
        "ratio": None if ratio is None else 1 / ratio,
        **({"target_vi_over_em": TARGET} if n_obs >= LARGE_N else {}),
        "note": "ratio: EM / VI time to 1e-6 of the best objective (< 1: VI is slower); "
                "vi_over_em is its inverse; None where a path never reached it",
    }


STEP_SHAPE = (10_000, 2, 3)


def _steps_setting():
    from ...inference import initialize
    from ...models import GaussianMixture
    from .__main__ import blobs

    n, d, k = STEP_SHAPE
    data = blobs(n, d, k, seed=3)
    model = GaussianMixture(k=k, dim=d, covariance="full")
    return model, data, initialize(model, data, method="kmeans++", seed=0)


def _hand_step(model, data, names: list[str], leaves: dict):
    """The same loss by hand: the leaves are the param store's unconstrained values."""
    from torch.distributions import transform_to

    def step():
        for leaf in leaves.values():
            leaf.grad = None
        values = {name: transform_to(model.specs[name].constraint)(leaves[name])
                  for name in names}
        comp = torch.distributions.MultivariateNormal(values["locs"],
                                                      scale_tril=values["scale_tril"])
        log_joint = comp.log_prob(data.unsqueeze(-2)) + values["weights"].log()
        loss = -torch.logsumexp(log_joint, -1).sum()
        loss.backward()
        return loss

    return step


def _pyro_step(objective, leaves, compiled: bool):
    import pyro
    from pyro.infer import JitTraceEnum_ELBO

    elbo = JitTraceEnum_ELBO(max_plate_nesting=1, ignore_jit_warnings=True) if compiled \
        else objective.elbo

    def step():
        for leaf in leaves:
            leaf.grad = None
        with pyro.validation_enabled(False), torch.jit.optimized_execution(False):
            loss = elbo.differentiable_loss(objective.pyro_model, objective.guide,
                                            objective.data)
        loss.backward()
        return loss

    return step


def _difference(ours, hand, ours_grads, hand_grads) -> tuple[float, float]:
    """Relative differences of the losses and of the gradients (largest entry)."""
    loss = abs(float(ours) - float(hand)) / abs(float(hand))
    grad = max(float((a - b).abs().max()) / max(float(b.abs().max()), 1e-300)
               for a, b in zip(ours_grads, hand_grads))
    return loss, grad


def pyro_steps(repeats: int, quick: bool) -> list[dict]:
    """TraceEnum_ELBO's step (and JitTraceEnum_ELBO's) beside the hand step of the same loss
    on the same leaves, interleaved; equality asserted before the ratio."""
    import pyro

    from ...inference.vi import Objective
    from .__main__ import interleaved, summary

    model, data, init = _steps_setting()
    out = []
    with pyro.get_param_store().scope():
        objective = Objective(model, data, init)
        leaves = objective.leaves()
        names = [name for name, _ in pyro.get_param_store().named_parameters()]
        hand_leaves = {name: leaf.detach().clone().requires_grad_()
                       for name, leaf in zip(names, leaves)}
        hand = _hand_step(model, data, names, hand_leaves)
        for compiled in (False, True):
            ours = _pyro_step(objective, leaves, compiled)
            ours_loss, hand_loss = ours().detach(), hand().detach()
            loss_diff, grad_diff = _difference(ours_loss, hand_loss,
                                               [leaf.grad for leaf in leaves],
                                               [hand_leaves[name].grad for name in names])
            bound = 1e-6 if compiled else 1e-10  # the tracer's single-precision constant
            assert loss_diff <= bound and grad_diff <= 1e-8, (loss_diff, grad_diff)
            for _ in range(3):  # a compiled step runs its profiling passes first
                ours()
            times, _ = interleaved({"ours": ours, "anchor": hand}, max(repeats * 5, 10))
            result = summary(times)
            result.update({
                "name": "jit_trace_enum_elbo_step" if compiled else "trace_enum_elbo_step",
                "shape": list(STEP_SHAPE), "model": model.describe(),
                "anchor": "the same loss by hand (same unconstrained leaves, same constraint "
                          "transforms, torch MultivariateNormal) + backward",
                "relative_loss_difference": loss_diff,
                "relative_gradient_difference": grad_diff,
                **({} if compiled else {"target_ratio": 0.5}),
                "note": ("JitTraceEnum_ELBO: fits switch to it after "
                         "50 evaluations where it gives the plain loss bitwise, which this "
                         "full-covariance model's does not (d log 2pi in single precision)"
                         if compiled else "TraceEnum_ELBO as fit_vi evaluates it; ratio < 1: "
                         "the price of Pyro's tracing and enumeration machinery"),
            })
            out.append(result)
    return out


def line(result: dict) -> str:
    """One printed line of a seed experiment's result."""
    sec = result["seconds_to_tolerance"]

    def ms(value):
        return "never" if value is None else f"{1e3 * value:.1f} ms"

    ratio = result["vi_over_em"]
    return (f"{result['name']:<26} {result['config'] + '/' + result['experiment']:<20} "
            f"n={result['n']:<6} EM {ms(sec['em']):>10}  VI {ms(sec['vi']):>10}  VI/EM "
            + ("-" if ratio is None else f"{ratio:6.2f}x")
            + (f"  (target <= {result['target_vi_over_em']}x)"
               if "target_vi_over_em" in result else ""))


def bench_vi_seeds(repeats: int, quick: bool) -> list[dict]:
    out = []
    for config, experiment in SEED_CONFIGS:
        for n in (None, LARGE_N):
            if quick and n is not None:
                continue
            out.append(seed_time_to_tolerance(config, experiment, n, repeats))
    return out
