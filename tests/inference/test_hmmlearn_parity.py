"""Parity with hmmlearn: from the same start, 20 Baum–Welch iterations reach the same
log-likelihood (1e-8 relative) and the same parameters (1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from emvi.inference import fit_em, initialize
from model_cases import make

hmm = pytest.importorskip("hmmlearn.hmm")

LENGTHS = [60, 25, 90, 40]
ITERATIONS = 20


def gaussian_anchor(model, init):
    """hmmlearn's GaussianHMM at our initial parameters, as a maximum-likelihood EM (no
    priors: covars_prior 0, means_weight 0)."""
    covariance = model.family.covariance
    anchor = hmm.GaussianHMM(model.k, covariance_type=covariance, n_iter=ITERATIONS,
                             tol=-np.inf, init_params="", params="stmc", covars_prior=0.0,
                             covars_weight=1.0, means_weight=0.0, implementation="log")
    anchor.startprob_ = init["initial"].numpy()
    anchor.transmat_ = init["transition"].numpy()
    anchor.means_ = init["locs"].numpy()
    if covariance == "diag":
        anchor.covars_ = init["scales"].numpy() ** 2
    else:
        tril = init["scale_tril"].numpy()
        anchor.covars_ = tril @ np.swapaxes(tril, -1, -2)
    return anchor


def ours_as_hmmlearn(model, params) -> dict:
    out = {"startprob_": params["initial"], "transmat_": params["transition"]}
    if "locs" in params:
        out["means_"] = params["locs"]
        if "scales" in params:
            out["covars_"] = params["scales"] ** 2
        else:
            out["covars_"] = params["scale_tril"] @ params["scale_tril"].mT
    else:
        out["emissionprob_"] = params["probs"][:, 0]
    return {k: v.numpy() for k, v in out.items()}


def check(model, data, init, anchor, x):
    lengths = data.lengths.tolist()
    fit = fit_em(model, data, init, max_iter=ITERATIONS, tol=None)
    anchor.fit(x, lengths)
    assert fit.iterations == ITERATIONS
    assert fit.log_likelihood == pytest.approx(anchor.score(x, lengths), rel=1e-8)
    for name, value in ours_as_hmmlearn(model, fit.params).items():
        theirs = getattr(anchor, name)
        if name == "covars_" and model.family.covariance == "diag":
            theirs = np.diagonal(theirs, 0, -2, -1)  # hmmlearn's covars_ are full matrices
        np.testing.assert_allclose(value, theirs, rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", ["hmm_gaussian_diag", "hmm_gaussian_full"])
def test_gaussian_hmm_matches_hmmlearn(name):
    model, truth = make(name)
    model.family.reg_covar = 0.0  # hmmlearn (priors off) has no regularisation either
    data = model.simulate(truth, lengths=LENGTHS, seed=11).data
    init = initialize(model, data, method="kmeans++", seed=0)
    check(model, data, init, gaussian_anchor(model, init), data.flat().numpy())


def test_categorical_hmm_matches_hmmlearn():
    model, truth = make("hmm_casino")
    data = model.simulate(truth, lengths=LENGTHS, seed=12).data
    init = initialize(model, data, method="random", seed=0)
    anchor = hmm.CategoricalHMM(model.k, n_iter=ITERATIONS, tol=-np.inf, init_params="",
                                params="ste", implementation="log")
    anchor.startprob_ = init["initial"].numpy()
    anchor.transmat_ = init["transition"].numpy()
    anchor.emissionprob_ = init["probs"][:, 0].numpy()
    anchor.n_features = 6
    check(model, data, init, anchor, data.flat().numpy().astype(np.int64))


def test_scaled_and_log_space_hmmlearn_agree_with_our_forward_backward_on_long_sequences():
    """T = 100,000 in one sequence: our scaled recursion stays finite and exact."""
    model, truth = make("hmm_gaussian_diag")
    data = model.simulate(truth, lengths=[100_000], seed=13).data
    ours = float(model.log_likelihood(data, truth))
    anchor = gaussian_anchor(model, truth)
    assert np.isfinite(ours)
    assert ours == pytest.approx(anchor.score(data.flat().numpy()), rel=1e-10)
    resp = model.posterior(data, truth)
    assert bool(torch.isfinite(resp).all())
    torch.testing.assert_close(resp.sum(-1), torch.ones(100_000, dtype=torch.float64))
    np.testing.assert_allclose(resp.numpy(), anchor.predict_proba(data.flat().numpy()),
                               rtol=0, atol=1e-8)
