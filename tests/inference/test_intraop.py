"""Small fits run single-threaded and give the thread count back as they found it."""

from __future__ import annotations

import threading

import torch
from emvi.inference import fit_em, fit_vi, intraop
from emvi.models import GaussianMixture


def _fit_seeing_threads(monkeypatch=None, threshold=None):
    if threshold is not None:
        monkeypatch.setattr(intraop, "SERIAL_ELEMENTS", threshold)
    model = GaussianMixture(k=2, dim=1)
    x = torch.linspace(-3, 3, 50, dtype=torch.float64).unsqueeze(1)
    init = model.params(weights=[0.5, 0.5], locs=[[-1.0], [1.0]], scale_tril=[[[1.0]], [[1.0]]])
    seen = []
    fit_em(model, x, init, max_iter=3, callback=lambda p: seen.append(torch.get_num_threads()))
    return seen


def test_a_small_fit_runs_on_one_thread_and_restores_the_setting(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert set(_fit_seeing_threads()) == {1}
        assert torch.get_num_threads() == 2
        assert set(_fit_seeing_threads(monkeypatch, threshold=0)) == {2}  # large: untouched
    finally:
        torch.set_num_threads(before)


def test_a_small_variational_fit_runs_on_one_thread_too():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = GaussianMixture(k=2, dim=1)
        x = torch.linspace(-3, 3, 50, dtype=torch.float64).unsqueeze(1)
        init = model.params(weights=[0.5, 0.5], locs=[[-1.0], [1.0]],
                            scale_tril=[[[1.0]], [[1.0]]])
        seen = []
        fit_vi(model, x, init, steps=2, callback=lambda p: seen.append(torch.get_num_threads()))
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_fit_in_another_thread_leaves_this_threads_setting_alone():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inside, release = threading.Event(), threading.Event()

        def small_fit():
            torch.ones(1).exp()  # this thread's pool is set up
            with intraop.serial_when_small(10):
                inside.set()
                release.wait(5)

        worker = threading.Thread(target=small_fit)
        worker.start()
        inside.wait(5)
        assert torch.get_num_threads() == 2
        with intraop.serial_when_small(10):
            assert torch.get_num_threads() == 1
        release.set()
        worker.join(5)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
