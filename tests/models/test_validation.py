"""Bad input to the public functions raises an error that names the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from emvi.inference import fit_em, fit_vi, initialize
from emvi.models import GaussianMixture, KMeans, TwoCoins


@pytest.fixture
def gmm():
    return GaussianMixture(k=2, dim=2)


@pytest.mark.parametrize("bad", [math.inf, -math.inf])
def test_infinite_data(gmm, bad):
    data = torch.randn(20, 2, dtype=torch.float64)
    data[3, 1] = bad
    init = initialize(gmm, torch.randn(20, 2), seed=0)
    for call in (lambda: fit_em(gmm, data, init), lambda: fit_vi(gmm, data, init, steps=1),
                 lambda: initialize(gmm, data)):
        with pytest.raises(ValueError, match=r"data: expected finite values.*index \(3, 1\)"):
            call()


def test_nan_is_refused_by_a_model_without_missing_values():
    coins = TwoCoins(k=2, tosses=10)
    init = coins.params(weights=[0.5, 0.5], probs=[0.8, 0.7])
    data = [3.0, math.nan, 4.0, 2.0, math.nan]
    for call in (lambda: fit_em(coins, data, init), lambda: fit_vi(coins, data, init, steps=1),
                 lambda: initialize(coins, data)):
        with pytest.raises(ValueError, match=r"data: missing values \(NaN\) in rows 1, 4; "
                                             "this model cannot take missing values"):
            call()


@pytest.mark.parametrize("shape", [(20,), (20, 3), (20, 2, 1), (0, 2)])
def test_wrong_shape_or_empty_data(gmm, shape):
    with pytest.raises(ValueError, match="data: expected"):
        initialize(gmm, torch.zeros(shape))


def test_non_numeric_data(gmm):
    with pytest.raises(TypeError, match="data: expected numbers"):
        initialize(gmm, [["a", "b"], ["c", "d"]])
    with pytest.raises(TypeError, match="data"):
        initialize(gmm, "not data")


def test_heads_above_tosses_or_fractional():
    coins = TwoCoins(k=2, tosses=10)
    init = coins.params(weights=[0.5, 0.5], probs=[0.8, 0.7])
    with pytest.raises(ValueError, match=r"data: .*\[0, tosses=10\].*11"):
        fit_em(coins, [3, 11, 4], init)
    with pytest.raises(ValueError, match="data: .*-1"):
        fit_em(coins, [3, -1, 4], init)
    with pytest.raises(ValueError, match="data: .*2.5"):
        fit_em(coins, [3, 2.5, 4], init)


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one(k):
    for build in (lambda: KMeans(k=k), lambda: TwoCoins(k=k), lambda: GaussianMixture(k=k)):
        with pytest.raises(ValueError, match="k: expected an integer >= 1"):
            build()


def test_k_above_n():
    model = KMeans(k=5, dim=2)
    data = np.zeros((3, 2))
    with pytest.raises(ValueError, match="k: expected at most as many components"):
        initialize(model, data)
    init = model.params(locs=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="k: expected at most"):
        fit_em(model, data, init)


def test_bad_parameters_name_the_parameter(gmm):
    coins = TwoCoins(k=2)
    with pytest.raises(ValueError, match=r"params.probs: expected probabilities"):
        coins.params(weights=[0.5, 0.5], probs=[1.5, 0.2])
    with pytest.raises(ValueError, match=r"params.weights: expected non-negative weights"):
        coins.params(weights=[0.7, 0.7], probs=[0.5, 0.2])
    with pytest.raises(ValueError, match="params: missing parameter 'probs'"):
        coins.params(weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="params: unknown parameter 'bias'"):
        coins.params(weights=[0.5, 0.5], probs=[0.5, 0.2], bias=[1, 2])
    with pytest.raises(ValueError, match="covariances: expected symmetric positive-definite"):
        gmm.params(weights=[0.5, 0.5], locs=[[0, 0], [1, 1]],
                   covariances=[[[1, 2], [2, 1]], [[1, 0], [0, 1]]])
    with pytest.raises(ValueError, match=r"init.locs: expected shape \(2, 2\)"):
        fit_em(gmm, torch.randn(10, 2), {"weights": [0.5, 0.5], "locs": [[0, 0, 0]] * 2,
                                         "scale_tril": torch.eye(2).expand(2, 2, 2)})
    with pytest.raises(ValueError, match="params.weights: fixed by the model"):
        KMeans(k=2, dim=1).params(locs=[0.0, 1.0], weights=[0.2, 0.8])


def test_fit_arguments():
    coins = TwoCoins(k=2)
    init = coins.params(weights=[0.5, 0.5], probs=[0.8, 0.7])
    with pytest.raises(ValueError, match="tol"):
        fit_em(coins, [1, 2, 3], init, tol=-1)
    with pytest.raises(ValueError, match="max_iter"):
        fit_em(coins, [1, 2, 3], init, max_iter=-5)
    with pytest.raises(ValueError, match="optimizer"):
        fit_vi(coins, [1, 2, 3], init, optimizer="sgd")
    with pytest.raises(ValueError, match="lr"):
        fit_vi(coins, [1, 2, 3], init, lr=0)
    with pytest.raises(ValueError, match="method: expected one of"):
        initialize(coins, [1, 2, 3], method="magic")
