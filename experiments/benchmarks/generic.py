"""Generic EM (a model given only as a Pyro program) against VI to the same optimum.

Both fit the same program from the same start: EM with the numerical (Newton) M-step,
VI with TraceEnum_ELBO and L-BFGS, each until its objective per observation changes by at
most :data:`TOL` (the same unit-free rule). The optimum is asserted equal (log-likelihood
within :data:`SAME` relative, parameters after label alignment) before any ratio is
reported. Reported: whole-fit wall time, and the seconds each takes to come within 1e-6
and 1e-8 (relative) of the better final objective. ``ratio`` = VI / EM (the table's
anchor / ours); the target is EM within 3x of VI, i.e. ``ratio >= 1/3``.
"""

from __future__ import annotations

import statistics
from functools import partial

import pyro
import pyro.distributions as dist
from torch.distributions import constraints

from ...models import ParamSpec, PyroModel
from ...models.families import pick

#: the shared stopping rule, and how equal the two optima must be
TOL, SAME = 1e-11, 1e-8


class GammaMixture(PyroModel):
    """The tutorial's Gamma mixture (docs/tutorial.md, section 4)."""

    def __init__(self, k=2):
        super().__init__(k, {"weights": ParamSpec((k,), constraints.simplex),
                             "concentration": ParamSpec((k,), constraints.positive),
                             "rate": ParamSpec((k,), constraints.positive)})

    def program(self, params, data=None, n=None):
        with pyro.plate("data", len(data) if data is not None else n):
            z = pyro.sample("assignment", dist.Categorical(params["weights"]),
                            infer={"enumerate": "parallel"})
            pyro.sample("obs", dist.Gamma(pick(params["concentration"], z),
                                          pick(params["rate"], z)), obs=data)


class VonMisesMixture(PyroModel):
    """Angles from k von Mises components (no closed-form concentration)."""

    def __init__(self, k=3):
        super().__init__(k, {"weights": ParamSpec((k,), constraints.simplex),
                             "locs": ParamSpec((k,), constraints.real),
                             "concentration": ParamSpec((k,), constraints.positive)})

    def program(self, params, data=None, n=None):
        with pyro.plate("data", len(data) if data is not None else n):
            z = pyro.sample("assignment", dist.Categorical(params["weights"]),
                            infer={"enumerate": "parallel"})
            pyro.sample("obs", dist.VonMises(pick(params["locs"], z),
                                             pick(params["concentration"], z)), obs=data)


def cases(quick: bool) -> list[tuple]:
    """``(label, model, truth values, n)``: the tutorial's Gamma mixture at its n, a
    three-component one at n=2000, and a von Mises mixture at n=2000."""
    n = 500 if quick else 2000
    return [
        ("gamma_tutorial", GammaMixture(2),
         {"weights": [0.6, 0.4], "concentration": [2.0, 12.0], "rate": [2.0, 1.5]}, 400),
        ("gamma", GammaMixture(3),
         {"weights": [0.3, 0.4, 0.3], "concentration": [2.0, 12.0, 30.0],
          "rate": [2.0, 1.5, 1.0]}, n),
        ("von_mises", VonMisesMixture(3),
         {"weights": [0.3, 0.4, 0.3], "locs": [-2.0, 0.5, 2.5],
          "concentration": [4.0, 8.0, 2.0]}, n),
    ]


def bench_generic(repeats: int, quick: bool):
    """One result per case, yielded as each is measured (a slow case prints the others)."""
    from ...inference import compare, fit_em, fit_vi, initialize
    from ...inference.compare import time_to_reach
    from .__main__ import interleaved

    for label, model, values, n in cases(quick):
        truth = model.params(**values)
        data = model.simulate(truth, n=n, seed=0).data
        init = initialize(model, data, method="kmeans++", seed=0)
        runs = {"ours": partial(fit_em, model, data, init, tol=TOL, max_iter=20_000,
                                record_params=False),
                "anchor": partial(fit_vi, model, data, init, optimizer="lbfgs", steps=5_000,
                                  tol=TOL, record_params=False)}
        times, last = interleaved(runs, repeats)
        em, vi = last["ours"], last["anchor"]
        result = compare(em, vi, names=["em", "vi"])
        assert em.converged and vi.converged, (label, em.notes, vi.notes)
        assert result.relative_gap <= SAME, f"{label}: optima differ by {result.relative_gap}"
        errors = result.parameter_errors[("em", "vi")]
        best = max(em.log_likelihood, vi.log_likelihood)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        reach = {f"{rtol:g}": {name: time_to_reach(fit, best, rtol)[1]
                               for name, fit in (("em", em), ("vi", vi))}
                 for rtol in (1e-6, 1e-8)}
        yield {
            "name": f"generic_em_{label}", "shape": [n, 1, model.k],
            "median_seconds": med, "ratio": med["anchor"] / med["ours"],
            "em_over_vi": med["ours"] / med["anchor"], "target_ratio": round(1 / 3, 4),
            "anchor": "fit_vi(optimizer='lbfgs') on the same program, same start",
            "tol": TOL, "iterations": {"em": em.iterations, "vi": vi.iterations},
            "log_likelihood": {"em": em.log_likelihood, "vi": vi.log_likelihood},
            "relative_gap": result.relative_gap, "max_parameter_difference": errors,
            "seconds_to_rtol_of_best": reach,
            "to_rtol_em_over_vi": {key: (value["em"] / value["vi"]
                                         if value["em"] and value["vi"] else None)
                                   for key, value in reach.items()},
            "note": "ratio = VI / EM whole-fit seconds (>= 1/3: EM within 3x of VI)",
        }
