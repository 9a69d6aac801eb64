"""Every public boundary refuses bad input with a ValueError/TypeError naming the argument.

One table, one row per bad input; the CLI side (configs and data files) is at the end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from emvi.inference import compare, fit_em, fit_vi, initialize
from emvi.models import (
    BernoulliMixture,
    CategoricalMixture,
    ExponentialMixture,
    GaussianMixture,
    KMeans,
    PoissonMixture,
    RegressionMixture,
    TwoCoins,
)

GMM = GaussianMixture(k=2, dim=2)
COINS = TwoCoins(k=2, tosses=10)
X = torch.randn(30, 2, dtype=torch.float64)
INIT = initialize(GMM, X, seed=0)
COINS_INIT = COINS.params(weights=[0.5, 0.5], probs=[0.8, 0.3])
HEADS = torch.tensor([3.0, 7.0, 5.0, 2.0])


def with_nan(x, value=math.nan):
    y = x.clone()
    y[2, 1] = value
    return y


BAD = [
    # (label, call, exception, words in the message)
    ("NaN for a model without missing values", lambda: fit_em(COINS, [3.0, math.nan, 4.0],
                                                            COINS_INIT), ValueError,
     "data: missing values (NaN) in row 1; this model cannot take missing values"),
    ("inf in data", lambda: fit_em(GMM, with_nan(X, math.inf), INIT), ValueError,
     "data: expected finite values (or NaN for a missing entry), found inf at index (2, 1)"),
    ("-inf in data (VI)", lambda: fit_vi(GMM, with_nan(X, -math.inf), INIT), ValueError, "data:"),
    ("inf beside a missing entry", lambda: fit_em(GMM, [[math.nan, 1.0], [2.0, math.inf],
                                                        [1.0, 2.0]], INIT),
     ValueError, "found inf at index (1, 1)"),
    ("inf for a model without missing values", lambda: fit_em(COINS, [3.0, math.inf, math.nan],
                                                             COINS_INIT), ValueError,
     "data: expected finite values, found inf at index 1"),
    ("a row with every entry missing (init)", lambda: initialize(
        GMM, torch.cat([X, torch.full((2, 2), math.nan)])), ValueError,
     "data: every entry is missing (NaN) in rows 30, 31"),
    ("a column with every entry missing", lambda: fit_em(GMM, X.index_fill(1, torch.tensor([1]),
                                                                           math.nan), INIT),
     ValueError, "data: every entry of column 1 is missing (NaN)"),
    ("NaN in scalar data", lambda: fit_em(PoissonMixture(k=2), [1.0, math.nan, 3.0],
                                          {"weights": [0.5, 0.5], "rates": [1.0, 3.0]}),
     ValueError, "every entry is missing (NaN) in row 1"),
    ("NaN for a regression", lambda: initialize(RegressionMixture(k=1), [[1.0, math.nan]]),
     ValueError, "cannot take missing values"),
    ("NaN for exponential waiting times", lambda: initialize(ExponentialMixture(k=1),
                                                             [1.0, math.nan, 2.0]),
     ValueError, "cannot take missing values"),
    ("rank 1 data", lambda: fit_em(GMM, X[:, 0], INIT), ValueError, "data: expected shape"),
    ("rank 3 data", lambda: fit_em(GMM, X[None], INIT), ValueError, "data: expected shape"),
    ("wrong width", lambda: fit_em(GMM, torch.randn(30, 3), INIT), ValueError, "(n, 2)"),
    ("empty data", lambda: fit_em(GMM, torch.zeros(0, 2), INIT), ValueError, "empty"),
    ("strings", lambda: fit_em(GMM, [["a", "b"]], INIT), TypeError, "data: expected numbers"),
    ("object array", lambda: fit_em(GMM, np.array([[1, None]], dtype=object), INIT), TypeError,
     "data: expected numbers"),
    ("complex data", lambda: fit_em(GMM, torch.ones(4, 2, dtype=torch.complex128), INIT),
     TypeError, "real numbers"),
    ("ragged lists", lambda: fit_em(GMM, [[1.0, 2.0], [3.0]], INIT), ValueError, "data:"),
    ("a string as data", lambda: initialize(GMM, "data.csv"), TypeError, "data:"),
    ("k = 0", lambda: GaussianMixture(k=0), ValueError, "k: expected an integer >= 1"),
    ("k negative", lambda: KMeans(k=-2), ValueError, "k: expected an integer >= 1"),
    ("k not an integer", lambda: TwoCoins(k=2.5), TypeError, "k: expected an integer"),
    ("k huge", lambda: PoissonMixture(k=10**9), ValueError, "k: expected an integer <="),
    ("k > n (fit)", lambda: fit_em(KMeans(k=5, dim=2), X[:3], KMeans(k=5, dim=2).params(
        locs=torch.zeros(5, 2))), ValueError, "k: expected at most"),
    ("k > n (init)", lambda: initialize(GaussianMixture(k=5, dim=2), X[:4]), ValueError, "k:"),
    ("probability > 1", lambda: COINS.params(weights=[0.5, 0.5], probs=[1.2, 0.1]), ValueError,
     "params.probs: expected probabilities"),
    ("probability < 0", lambda: BernoulliMixture(k=1, dim=2).params(weights=[1.0],
                                                                    probs=[[-0.1, 0.5]]),
     ValueError, "params.probs"),
    ("weights not summing to 1", lambda: COINS.params(weights=[0.6, 0.6], probs=[0.5, 0.5]),
     ValueError, "params.weights"),
    ("negative weight", lambda: COINS.params(weights=[1.5, -0.5], probs=[0.5, 0.5]), ValueError,
     "params.weights"),
    ("heads above tosses", lambda: fit_em(COINS, [3, 11, 4], COINS_INIT), ValueError,
     "data: expected whole numbers of heads in [0, tosses=10]"),
    ("negative heads", lambda: fit_em(COINS, [3, -1, 4], COINS_INIT), ValueError, "data:"),
    ("fractional heads", lambda: fit_em(COINS, [3, 2.5], COINS_INIT), ValueError, "data:"),
    ("negative Poisson count", lambda: initialize(PoissonMixture(k=1), [1.0, -2.0, 3.0]),
     ValueError, "data: expected non-negative whole counts"),
    ("Bernoulli data not 0/1", lambda: initialize(BernoulliMixture(k=1, dim=2), [[0, 2]]),
     ValueError, "data: expected binary"),
    ("label out of range", lambda: initialize(CategoricalMixture(k=1, categories=3, dim=1),
        [[0], [3]]), ValueError, "data: expected labels"),
    ("non-PD covariance (truth)", lambda: GMM.params(
        weights=[0.5, 0.5], locs=[[0, 0], [1, 1]], covariances=[[[1, 2], [2, 1]], np.eye(2)]),
     ValueError, "covariances: expected symmetric positive-definite"),
    ("asymmetric covariance", lambda: GMM.params(
        weights=[0.5, 0.5], locs=[[0, 0], [1, 1]], covariances=[[[1, 0.5], [0, 1]], np.eye(2)]),
     ValueError, "covariances"),
    ("non-positive scale_tril diagonal (init)", lambda: fit_em(GMM, X, {
        **INIT, "scale_tril": torch.tensor([[[1.0, 0], [0, -1]], [[1, 0], [0, 1]]])}),
     ValueError, "init.scale_tril: expected a positive diagonal"),
    ("upper-triangular factor", lambda: fit_em(GMM, X, {
        **INIT, "scale_tril": torch.tensor([[[1.0, 1], [0, 1]], [[1, 0], [0, 1]]])}),
     ValueError, "init.scale_tril: expected lower-triangular"),
    ("negative variance (alias)", lambda: GaussianMixture(k=1, dim=1, covariance="spherical")
     .params(weights=[1.0], locs=[0.0], variances=[-1.0]), ValueError, "variances"),
    ("init wrong shape", lambda: fit_em(GMM, X, {**INIT, "locs": torch.zeros(3, 2)}),
     ValueError, "init.locs: expected shape (2, 2)"),
    ("init missing a parameter", lambda: fit_vi(GMM, X, {"weights": INIT["weights"]}),
     ValueError, "init: missing parameter 'locs'"),
    ("init unknown parameter", lambda: fit_em(GMM, X, {**INIT, "mu": 1.0}), ValueError,
     "init: unknown parameter 'mu'"),
    ("init not a mapping", lambda: fit_em(GMM, X, [1, 2, 3]), TypeError, "init: expected a "
     "mapping"),
    ("NaN in init", lambda: fit_em(GMM, X, {**INIT, "locs": torch.full((2, 2), math.nan)}),
     ValueError, "init.locs: expected finite"),
    ("restart batches disagree", lambda: fit_em(GMM, X, {
        "weights": torch.full((3, 2), 0.5), "locs": torch.zeros(4, 2, 2),
        "scale_tril": INIT["scale_tril"]}), ValueError, "restart batch"),
    ("fixed value changed", lambda: KMeans(k=2, dim=1).params(locs=[0.0, 1.0], weights=[.2, .8]),
     ValueError, "fixed by the model"),
    ("tol negative", lambda: fit_em(GMM, X, INIT, tol=-1.0), ValueError, "tol"),
    ("max_iter negative", lambda: fit_em(GMM, X, INIT, max_iter=-1), ValueError, "max_iter"),
    ("chunk_size zero", lambda: fit_em(GMM, X, INIT, chunk_size=0), ValueError, "chunk_size"),
    ("unknown optimizer", lambda: fit_vi(GMM, X, INIT, optimizer="sgd"), ValueError,
     "optimizer: expected one of"),
    ("lr zero", lambda: fit_vi(GMM, X, INIT, lr=0.0), ValueError, "lr: expected a number > 0"),
    ("steps negative", lambda: fit_vi(GMM, X, INIT, steps=-3), ValueError, "steps"),
    ("unknown init method", lambda: initialize(GMM, X, method="magic"), ValueError,
     "method: expected one of"),
    ("restarts zero", lambda: initialize(GMM, X, restarts=0), ValueError, "restarts"),
    ("negative seed", lambda: initialize(GMM, X, seed=-1), ValueError, "seed"),
    ("simulate n = 0", lambda: COINS.simulate(COINS_INIT, n=0), ValueError, "n: expected"),
    ("simulate bad labels", lambda: COINS.simulate(COINS_INIT, n=3, assignments=[0, 5, 1]),
     ValueError, "assignments"),
    ("simulate a batch", lambda: GMM.simulate(initialize(GMM, X, restarts=2), n=5), ValueError,
     "one parameter set"),
    ("unknown covariance", lambda: GaussianMixture(covariance="fully"), ValueError,
     "covariance: expected one of"),
    ("negative reg_covar", lambda: GaussianMixture(reg_covar=-1e-6), ValueError, "reg_covar"),
    ("tosses zero", lambda: TwoCoins(tosses=0), ValueError, "tosses"),
    ("kmeans scale zero", lambda: KMeans(scale=0.0), ValueError, "scale"),
    ("regression features zero", lambda: RegressionMixture(features=0), ValueError, "features"),
    ("compare without fits", lambda: compare(), ValueError, "fits"),
    ("hard as a string", lambda: fit_em(GMM, X, INIT, hard="false"), TypeError,
     "hard: expected True or False"),
    ("callback not callable", lambda: fit_em(GMM, X, INIT, callback=3), TypeError,
     "callback: expected a function"),
    ("VI callback not callable", lambda: fit_vi(GMM, X, INIT, callback="print"), TypeError,
     "callback: expected a function"),
    ("lr infinite", lambda: fit_vi(GMM, X, INIT, lr=math.inf), ValueError,
     "lr: expected a finite number"),
    ("tol a string", lambda: fit_em(GMM, X, INIT, tol="1e-8"), TypeError,
     "tol: expected a number"),
    ("two restart dimensions", lambda: fit_em(COINS, HEADS, {
        "weights": torch.full((2, 3, 2), 0.5), "probs": torch.full((2, 3, 2), 0.5)}),
     ValueError, "restart"),
    ("masked entries for a model without missing values", lambda: initialize(
        COINS, np.ma.masked_array(HEADS.numpy(), mask=[False, True, False, True])),
     ValueError, "data: missing values (NaN) in rows 1, 3"),
    ("Poisson count beyond 2^40", lambda: initialize(PoissonMixture(k=1), [1.0, 1e17]),
     ValueError, "data: expected counts up to"),
    ("exponential all zeros", lambda: initialize(ExponentialMixture(k=1), [0.0, 0.0, 0.0]),
     ValueError, "data: every value is 0"),
    ("exponential beyond 1e150", lambda: initialize(ExponentialMixture(k=1), [1.0, 1e200]),
     ValueError, "data: expected values up to"),
    ("regression beyond 1e100", lambda: initialize(RegressionMixture(k=1), [[1.0, 1e120]]),
     ValueError, "data: expected values up to"),
    ("regression reg_covar negative", lambda: RegressionMixture(reg_covar=-1.0), ValueError,
     "reg_covar: expected a finite number >= 0"),
    ("regression reg_covar a string", lambda: RegressionMixture(reg_covar="small"), ValueError,
     "reg_covar"),
    ("fixed unknown parameter", lambda: GaussianMixture(k=2, fixed={"mu": [0.0, 1.0]}),
     ValueError, "fixed: unknown parameter 'mu'"),
    ("fixed wrong shape", lambda: GaussianMixture(k=2, dim=2, fixed={"locs": [0.0, 1.0]}),
     ValueError, "fixed.locs: expected shape (2, 2)"),
]


def test_numpy_numbers_of_any_precision_are_numbers():
    fit = fit_em(GMM, X, INIT, tol=np.float32(1e-6), max_iter=np.int64(5))
    assert fit.iterations <= 5
    vi = fit_vi(GMM, X, INIT, lr=np.float32(0.5), steps=np.int32(2), tol=np.float16(0.0))
    assert vi.iterations <= 2


@pytest.mark.parametrize("label, call, error, words", BAD, ids=[row[0] for row in BAD])
def test_bad_input_is_refused_with_a_clear_message(label, call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_the_table_is_large():
    assert len(BAD) >= 55
