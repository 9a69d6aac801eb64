"""Fits you can keep: save -> load -> predict round-trips bit-identically, safely."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

import emvi


@pytest.fixture(scope="module")
def fitted():
    model = emvi.GaussianMixture(k=3, dim=2, covariance="diag", fixed={"weights": [0.2, 0.3, 0.5]})
    truth = model.params(locs=[[0.0, 0.0], [5.0, 0.0], [0.0, 6.0]],
                         scales=[[1.0, 0.5], [0.7, 1.0], [1.2, 0.8]])
    data = model.simulate(truth, n=300, seed=0).data
    init = emvi.initialize(model, data, seed=1, restarts=3)
    return model, data, emvi.fit_em(model, data, init), emvi.fit_vi(model, data, init, steps=30)


@pytest.mark.parametrize("which", [2, 3])
def test_save_load_predict_round_trips_bit_identically(fitted, tmp_path, which):
    model, data, *fits = fitted
    fit = fits[which - 2]
    path = fit.save(tmp_path / "fit.pt")
    back = emvi.load(path)
    assert type(back.model) is type(model) and back.model.describe() == model.describe()
    for name in fit.params:
        assert torch.equal(back.params[name], fit.params[name])
    fresh = data[:40] + 0.25
    assert torch.equal(back.predict_proba(fresh), fit.predict_proba(fresh))
    assert torch.equal(back.score_samples(fresh), fit.score_samples(fresh))
    assert torch.equal(back.objective, fit.objective)
    assert torch.equal(back.restart_log_likelihoods, fit.restart_log_likelihoods)
    for name in ("method", "iterations", "converged", "log_likelihood", "best_restart", "notes",
                 "events"):
        assert getattr(back, name) == getattr(fit, name), name


def test_a_fit_file_holds_tensors_and_json_only(fitted, tmp_path):
    path = fitted[2].save(tmp_path / "fit.pt")
    payload = torch.load(path, weights_only=True)  # refuses anything but tensors and plain data
    assert set(payload) >= {"format", "version", "meta", "params"}
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "emvi-fit", "x": object()}))
    with pytest.raises(ValueError, match="not an emvi fit file"):
        emvi.load(evil)


def test_a_user_model_file_is_imported_only_when_trusted(tmp_path):
    (tmp_path / "mine.py").write_text(
        "from emvi import Mixture, Poisson\n"
        "class Counts(Mixture):\n"
        "    def __init__(self, k=2):\n"
        "        super().__init__(Poisson(), k)\n")
    model = emvi.build(f"{tmp_path / 'mine.py'}:Counts", k=2)
    x = torch.tensor([1.0, 2.0, 9.0, 11.0, 10.0, 0.0])
    fit = emvi.fit_em(model, x, emvi.initialize(model, x, seed=0))
    path = fit.save(tmp_path / "counts.pt")
    with pytest.raises(ValueError, match="trust_model_code=True"):
        emvi.load(path)
    assert torch.equal(emvi.load(path, trust_model_code=True).predict(x), fit.predict(x))
    assert torch.equal(emvi.load(path, model=model).predict(x), fit.predict(x))
    with pytest.raises(TypeError, match="model: expected the fit's model"):
        emvi.load(path, model=emvi.PoissonMixture(k=3))


def test_a_fit_prints_in_a_few_lines(fitted):
    text = repr(fitted[2])
    assert len(text) < 300 and "\n" not in text
    assert "em" in text and "iterations" in text and "locs (3, 2)" in text


def test_read_only_arrays_and_frames_give_no_warning():
    array = np.random.default_rng(0).normal(size=(50, 2))
    array.setflags(write=False)  # what a pandas frame's .values is under copy-on-write
    model = emvi.GaussianMixture(k=2, dim=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emvi.initialize(model, array, seed=0)
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(array, columns=["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emvi.fit_em(model, frame, emvi.initialize(model, frame, seed=0), max_iter=3)
