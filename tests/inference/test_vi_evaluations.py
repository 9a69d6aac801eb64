"""The variational path's evaluations: remembered points and the compiled objective
change how often and how the objective is computed, never its values or the iterates."""

from __future__ import annotations

from types import SimpleNamespace

import pyro
import pytest
import torch
from emvi.inference import fit_vi, initialize
from emvi.inference import vi as vi_module
from model_cases import make

CASES = ["two_coins", "gmm_1d", "poisson"]


def setting(name: str, n: int = 200, seed: int = 0):
    model, truth = make(name)
    data = model.simulate(truth, n=n, seed=seed).data
    return model, data, initialize(model, data, method="random", seed=seed)


def same_fit(a, b) -> bool:
    return (torch.equal(a.objective, b.objective) and a.iterations == b.iterations
            and all(torch.equal(a.params[k], b.params[k]) for k in a.params))


def count_losses(monkeypatch) -> dict:
    calls = {"loss": 0}
    plain = vi_module.Objective.loss

    def loss(self):
        calls["loss"] += 1
        return plain(self)

    monkeypatch.setattr(vi_module.Objective, "loss", loss)
    return calls


@pytest.mark.parametrize("name", CASES)
def test_remembered_points_leave_lbfgs_iterates_unchanged_with_fewer_evaluations(
        name, monkeypatch):
    model, data, init = setting(name)
    calls = count_losses(monkeypatch)
    remembered = fit_vi(model, data, init, steps=40, tol=1e-12)
    fewer = calls["loss"]
    monkeypatch.setattr(vi_module.Evaluations, "_recall", lambda self: None)
    calls["loss"] = 0
    again = fit_vi(model, data, init, steps=40, tol=1e-12)
    assert same_fit(remembered, again)
    # every step after the first starts at the point the last line search accepted
    assert fewer <= calls["loss"] - remembered.iterations + 1


@pytest.mark.parametrize("name", CASES)
def test_compiled_objective_is_the_same_function(name):
    model, data, init = setting(name)
    with pyro.get_param_store().scope():
        objective = vi_module.Objective(model, data, init)
        leaves = objective.leaves()
        with pyro.validation_enabled(False):
            plain = objective.loss()
        plain.backward()
        grads = [leaf.grad.clone() for leaf in leaves]
        assert objective.compile(leaves, plain)
        assert objective.compiled is not None
        for leaf in leaves:
            leaf.grad = None
        with torch.no_grad():  # another point: the compiled function is not frozen at one
            for leaf in leaves:
                leaf.add_(0.01)
        compiled = objective.loss()
        compiled.backward()
        compiled_grads = [leaf.grad.clone() for leaf in leaves]
        objective.compiled = None
        for leaf in leaves:
            leaf.grad = None
        plain = objective.loss()
        plain.backward()
    assert float(compiled.detach()) == pytest.approx(float(plain.detach()), rel=1e-12, abs=0)
    assert not all(torch.equal(a, b) for a, b in zip(grads, compiled_grads))  # it moved
    for leaf, grad in zip(leaves, compiled_grads):
        torch.testing.assert_close(grad, leaf.grad, rtol=1e-12, atol=0)


def test_an_objective_the_tracer_changes_is_not_compiled():
    # a full-covariance Gaussian: the tracer keeps d log(2 pi) in single precision
    model, data, init = setting("gmm_full")
    with pyro.get_param_store().scope():
        objective = vi_module.Objective(model, data, init)
        leaves = objective.leaves()
        plain = objective.loss()
        plain.backward()
        grads = [leaf.grad.clone() for leaf in leaves]
        assert not objective.compile(leaves, plain)
        assert objective.compiled is None
        assert all(torch.equal(leaf.grad, grad) for leaf, grad in zip(leaves, grads))


@pytest.mark.parametrize("name", ["two_coins", "gmm_full"])
def test_a_fit_that_compiles_its_objective_takes_the_same_steps(name, monkeypatch):
    model, data, init = setting(name)
    plain = fit_vi(model, data, init, optimizer="adam", steps=25, tol=None)
    outcomes = []
    compile_ = vi_module.Objective.compile

    def compile(self, leaves, loss):
        outcomes.append(compile_(self, leaves, loss))
        return outcomes[-1]

    monkeypatch.setattr(vi_module.Objective, "compile", compile)
    monkeypatch.setattr(vi_module, "JIT_AFTER", 4)  # compiled at 4, checked at 8, 12, ...
    compiled = fit_vi(model, data, init, optimizer="adam", steps=25, tol=None)
    assert outcomes == [name != "gmm_full"]
    assert same_fit(plain, compiled)
    assert compiled.notes == plain.notes


def test_a_compiled_objective_that_stops_agreeing_is_dropped_with_a_note(monkeypatch):
    model, data, init = setting("two_coins")
    monkeypatch.setattr(vi_module, "JIT_AFTER", 3)
    monkeypatch.setattr(vi_module.Objective, "_agrees",
                        lambda self, elbo, leaves, loss: elbo is not self.elbo)
    used = []  # per evaluation: whether the compiled objective computed it
    loss = vi_module.Objective.loss

    def recording(self):
        used.append(self.compiled is not None)
        return loss(self)

    monkeypatch.setattr(vi_module.Objective, "loss", recording)
    fit = fit_vi(model, data, init, optimizer="adam", steps=10, tol=None)
    assert any("stopped agreeing" in note and "evaluation 6" in note for note in fit.notes)
    assert used == [False] * 3 + [True] * 3 + [False] * 5  # compiled after 3, dropped at 6


def test_a_point_that_differs_in_one_parameter_is_evaluated_again():
    model, data, init = setting("two_coins")
    with pyro.get_param_store().scope():
        objective = vi_module.Objective(model, data, init)
        leaves = objective.leaves()
        closure = vi_module.Evaluations(objective, leaves, remember=True)
        first = closure().detach().clone()
        assert torch.equal(closure(), first) and closure.count == 1  # remembered
        with torch.no_grad():
            leaves[-1].add_(0.1)
        second = closure()
        assert closure.count == 2 and not torch.equal(second.detach(), first)


def test_each_step_is_timed_when_its_objective_was_computed(monkeypatch):
    model, data, init = setting("gmm_1d")
    clock = iter(range(10**6))  # one tick per reading: the loop's start, then one per evaluation
    monkeypatch.setattr(vi_module, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    evaluations, after_step = [0], []
    loss, record = vi_module.Objective.loss, vi_module._record

    def counted(self):
        evaluations[0] += 1
        return loss(self)

    def recorded(run, *args):
        after_step.append(evaluations[0])
        record(run, *args)

    monkeypatch.setattr(vi_module.Objective, "loss", counted)
    monkeypatch.setattr(vi_module, "_record", recorded)
    fit = fit_vi(model, data, init, steps=15, tol=None)
    seconds = fit.seconds.tolist()  # the number of the evaluation that computed the point
    assert seconds[0] == 1
    for i in range(1, len(seconds)):  # x_i was computed by step i - 1's line search
        assert (after_step[i - 2] if i > 1 else 1) < seconds[i] <= after_step[i - 1]
