"""emvi.sklearn: scikit-learn's estimator interface over emvi's fits.

Parity with scikit-learn from the same start, what the fitted attributes hold, seeds and
sampling, errors as scikit-learn words them, Pipeline and GridSearchCV, pandas input.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from emvi.models import COVARIANCE_TYPES
from sklearn import cluster, mixture
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import emvi
from emvi.sklearn import GaussianMixture, KMeans, MixtureEstimator

K, D = 3, 3


@pytest.fixture(scope="module")
def X():
    """Three correlated Gaussian clusters in 3-D, away from the origin: (400, 3)."""
    rng = np.random.RandomState(0)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 5.0, -3.0]])
    labels = rng.randint(K, size=400)
    mix = rng.randn(K, D, D) * 0.5 + np.eye(D)
    return centres[labels] + np.einsum("ni,nij->nj", rng.randn(400, D), mix[labels]) + 10.0


@pytest.fixture(scope="module")
def start(X):
    """One start in scikit-learn's terms: weights, means and precisions of every type."""
    rng = np.random.RandomState(1)
    a = rng.randn(K, D, D)
    full = a @ a.transpose(0, 2, 1) + D * np.eye(D)
    precisions = {"full": full, "tied": full[0], "diag": rng.uniform(0.5, 2.0, (K, D)),
                  "spherical": rng.uniform(0.5, 2.0, K)}
    return {"weights_init": np.array([0.2, 0.3, 0.5]),
            "means_init": X[rng.choice(len(X), K, replace=False)], "precisions": precisions}


def same_start(start, covariance):
    return {"weights_init": start["weights_init"], "means_init": start["means_init"],
            "precisions_init": start["precisions"][covariance], "covariance_type": covariance}


# -- parity with scikit-learn --------------------------------------------------------------
@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_gaussian_mixture_matches_scikit_learn_from_the_same_start(covariance, X, start):
    options = dict(same_start(start, covariance), max_iter=20, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never "converges"
        ours = GaussianMixture(K, **options).fit(X)
        theirs = mixture.GaussianMixture(K, **options).fit(X)
    assert ours.n_iter_ == theirs.n_iter_ == 20
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        mine, anchor = getattr(ours, name), getattr(theirs, name)
        assert type(mine) is np.ndarray and mine.shape == anchor.shape, name
        np.testing.assert_allclose(mine, anchor, rtol=1e-8, atol=0, err_msg=name)
    fresh = X[:60] + 0.3
    np.testing.assert_allclose(ours.score_samples(fresh), theirs.score_samples(fresh),
                               rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(fresh), theirs.predict_proba(fresh),
                               atol=1e-10)
    np.testing.assert_array_equal(ours.predict(fresh), theirs.predict(fresh))
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-12)
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-12)
    assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-12)


@pytest.mark.parametrize("tol", [1e-2, 1e-4])
def test_tol_is_scikit_learns_rule_tested_one_m_step_earlier(tol, X, start):
    """The same change of the mean log-likelihood against the same tol: scikit-learn makes
    one more M-step after the change it tests, so it reports n_iter_ + 1 and those params."""
    options = same_start(start, "diag")
    ours = GaussianMixture(K, tol=tol, **options).fit(X)
    theirs = mixture.GaussianMixture(K, tol=tol, **options).fit(X)
    assert ours.converged_ and theirs.converged_
    assert ours.n_iter_ + 1 == theirs.n_iter_
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-12)
    with pytest.warns(ConvergenceWarning):  # tol=0: max_iter reached, as scikit-learn warns
        one_more = GaussianMixture(K, tol=0.0, max_iter=ours.n_iter_ + 1, **options).fit(X)
    np.testing.assert_allclose(one_more.means_, theirs.means_, rtol=1e-10)


def test_kmeans_matches_scikit_learn_from_the_same_centres(X):
    for seed in range(3):
        centres = X[np.random.RandomState(seed).choice(len(X), 5, replace=False)]
        ours = KMeans(5, init=centres, tol=0.0).fit(X)
        theirs = cluster.KMeans(5, init=centres, n_init=1, tol=0.0).fit(X)
        np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_,
                                   rtol=1e-12)
        np.testing.assert_array_equal(ours.labels_, theirs.labels_)
        assert ours.n_iter_ == theirs.n_iter_
        assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-12)
        fresh = X[:40] * 1.1
        np.testing.assert_allclose(ours.transform(fresh), theirs.transform(fresh), rtol=1e-10)
        np.testing.assert_array_equal(ours.predict(fresh), theirs.predict(fresh))
        assert ours.score(fresh) == pytest.approx(theirs.score(fresh), rel=1e-10)


def test_kmeans_tol_is_relative_to_the_data_variance(X):
    centres = X[np.random.RandomState(2).choice(len(X), 8, replace=False)]
    exact = KMeans(8, init=centres, tol=0.0).fit(X)
    loose = KMeans(8, init=centres, tol=1e-2).fit(X)
    scaled = KMeans(8, init=centres * 1e3, tol=1e-2).fit(X * 1e3)
    assert loose.n_iter_ < exact.n_iter_  # tol stops it early ...
    assert scaled.n_iter_ == loose.n_iter_  # ... at the same point in any unit
    np.testing.assert_allclose(scaled.cluster_centers_, loose.cluster_centers_ * 1e3,
                               rtol=1e-10)


# -- what the fitted attributes hold ----------------------------------------------------
def scikit_learn_with(ours) -> mixture.GaussianMixture:
    """scikit-learn's GaussianMixture carrying our fitted attributes (scored by its code)."""
    theirs = mixture.GaussianMixture(ours.n_components, covariance_type=ours.covariance_type)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        setattr(theirs, name, getattr(ours, name))
    return theirs


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_attributes_are_those_of_the_best_restart(covariance, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(K, covariance_type=covariance, n_init=6, max_iter=3,
                               init_params="random_from_data", random_state=0).fit(X)
    restarts = ours.fit_.restart_log_likelihoods.numpy()
    assert len(restarts) == 6 and np.ptp(restarts) > 50  # the starts end apart
    assert restarts.argmax() not in (0, 5)  # (neither the first nor the last is kept)
    n = len(X)
    assert ours.lower_bound_ == pytest.approx(restarts.max() / n, rel=1e-12)
    # scikit-learn's own code scores our attributes at the best restart's log-likelihood
    assert scikit_learn_with(ours).score(X) == pytest.approx(restarts.max() / n, rel=1e-10)
    assert ours.score(X) == pytest.approx(restarts.max() / n, rel=1e-12)
    precisions = np.asarray(ours.precisions_)
    if covariance in ("full", "tied"):
        np.testing.assert_allclose(precisions @ ours.covariances_,
                                   np.broadcast_to(np.eye(D), precisions.shape), atol=1e-10)
        chol = ours.precisions_cholesky_
        np.testing.assert_allclose(chol @ np.swapaxes(chol, -1, -2), precisions, rtol=1e-10)
        assert np.allclose(chol, np.triu(chol))
    else:
        np.testing.assert_allclose(precisions * ours.covariances_, 1.0, rtol=1e-12)
    assert ours.lower_bounds_[0] < ours.lower_bounds_[-1] == pytest.approx(ours.lower_bound_)


def test_predictions_are_probabilities_and_their_argmax(X):
    est = GaussianMixture(K, random_state=0).fit(X)
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), K) and proba.min() >= 0
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    labels = est.predict(X)
    assert labels.dtype == np.int64 and labels.shape == (len(X),)
    np.testing.assert_array_equal(labels, proba.argmax(1))
    assert proba.max(1).mean() > 0.9  # well separated clusters
    np.testing.assert_array_equal(clone(est).fit_predict(X), labels)
    # the log density sums the weighted component densities
    dens = scikit_learn_with(est)._estimate_weighted_log_prob(X)
    np.testing.assert_allclose(est.score_samples(X), np.logaddexp.reduce(dens, 1), rtol=1e-10)


def test_vi_reaches_the_em_optimum_from_the_same_start(X):
    em = GaussianMixture(K, covariance_type="diag", tol=1e-10, max_iter=500,
                         random_state=0).fit(X)
    vi = GaussianMixture(K, covariance_type="diag", tol=1e-10, max_iter=500, random_state=0,
                         method="vi").fit(X)
    assert em.fit_.method == "em" and vi.fit_.method == "vi-lbfgs"
    assert vi.converged_ and vi.score(X) == pytest.approx(em.score(X), rel=1e-8)
    assert emvi.compare(em.fit_, vi.fit_).relative_gap < 1e-8
    order = np.argsort(em.means_[:, 0])
    np.testing.assert_allclose(np.sort(vi.means_[:, 0]), em.means_[order, 0], rtol=1e-5)


# -- seeds, starts and sampling ----------------------------------------------------------
@pytest.mark.parametrize("ours, method", [("kmeans", "kmeans"), ("k-means++", "kmeans++"),
                                          ("random", "random"),
                                          ("random_from_data", "random_points")])
def test_init_params_and_random_state_are_emvis_method_and_seed(ours, method, X):
    est = GaussianMixture(K, init_params=ours, max_iter=0, random_state=7).fit(X)
    model = emvi.GaussianMixture(k=K, dim=D)
    init = emvi.initialize(model, X, method=method, seed=7)
    np.testing.assert_array_equal(est.means_, init["locs"].numpy())
    np.testing.assert_array_equal(est.weights_, init["weights"].numpy())
    assert est.n_iter_ == 0


def test_random_state_decides_the_start(X):
    def means(random_state):
        return GaussianMixture(K, init_params="random_from_data", max_iter=0,
                               random_state=random_state).fit(X).means_

    np.testing.assert_array_equal(means(3), means(3))
    assert not np.array_equal(means(3), means(4))
    assert not np.array_equal(means(None), means(None))
    np.random.seed(0)
    first = means(None)  # None draws from NumPy's global generator, as scikit-learn
    np.random.seed(0)
    np.testing.assert_array_equal(means(None), first)
    a, b = np.random.RandomState(5), np.random.RandomState(5)
    np.testing.assert_array_equal(means(a), means(b))
    assert not np.array_equal(means(a), means(np.random.RandomState(5)))  # a advanced


def test_kmeans_starts_are_emvis_seeded_restarts(X):
    model = emvi.KMeans(k=4, dim=D)
    for init, method in (("k-means++", "kmeans++"), ("random", "random_points")):
        start = KMeans(4, init=init, max_iter=0, random_state=5).fit(X)
        expected = emvi.initialize(model, X, method=method, seed=5)["locs"].numpy()
        np.testing.assert_array_equal(start.cluster_centers_, expected)
        other = KMeans(4, init=init, max_iter=0, random_state=6).fit(X)
        assert not np.array_equal(other.cluster_centers_, expected)
    batch = KMeans(8, n_init=5, init="random", max_iter=2, random_state=0).fit(X)
    n = len(X)  # emvi's objective: -inertia / 2 - n (d/2 log(2 pi) + log k)
    inertias = -2 * batch.fit_.restart_objectives.numpy() - n * (D * np.log(2 * np.pi)
                                                                 + 2 * np.log(8))
    assert len(inertias) == 5 and np.ptp(inertias) > 1.0
    assert batch.inertia_ == pytest.approx(inertias.min(), rel=1e-9)
    auto = KMeans(4, n_init="auto", init="random", random_state=0).fit(X)
    assert len(auto.fit_.restart_objectives) == 10  # as scikit-learn: 10 random starts


def test_sample_draws_from_the_fitted_mixture(X):
    est = GaussianMixture(K, random_state=0).fit(X)
    drawn, labels = est.sample(4000)
    assert drawn.shape == (4000, D) and labels.shape == (4000,)
    assert type(drawn) is np.ndarray and labels.dtype == np.int64
    counts = np.bincount(labels, minlength=K) / 4000
    np.testing.assert_allclose(counts, est.weights_, atol=0.03)
    for j in range(K):
        np.testing.assert_allclose(drawn[labels == j].mean(0), est.means_[j], atol=0.15)
        np.testing.assert_allclose(np.cov(drawn[labels == j].T), est.covariances_[j],
                                   atol=0.3)


def test_sample_is_random_on_each_call_unless_seeded(X):
    seeded = GaussianMixture(K, random_state=0).fit(X)
    np.testing.assert_array_equal(seeded.sample(5)[0], seeded.sample(5)[0])  # as scikit-learn
    free = clone(seeded).set_params(random_state=None).fit(X)
    assert not np.array_equal(free.sample(5)[0], free.sample(5)[0])
    stream = clone(seeded).set_params(random_state=np.random.RandomState(0)).fit(X)
    assert not np.array_equal(stream.sample(5)[0], stream.sample(5)[0])  # it advances
    with pytest.raises(ValueError, match="n_samples"):
        seeded.sample(0)


# -- errors, as scikit-learn words them --------------------------------------------------
def bad_inputs(X):
    import scipy.sparse

    nan, inf = X[:20].copy(), X[:20].copy()
    nan[3, 1], inf[5, 0] = np.nan, np.inf
    return {"nan": nan, "inf": inf, "sparse": scipy.sparse.csr_matrix(X[:20]),
            "complex": X[:20] + 1j, "empty": X[:0], "1-d": X[:, 0], "3-d": X[None, :20],
            "strings": np.array([["a", "b", "c"]] * 20, dtype=object)}


@pytest.fixture(scope="module")
def both(X):
    """Ours and scikit-learn's GaussianMixture, fitted on the same data."""
    return GaussianMixture(2).fit(X), mixture.GaussianMixture(2).fit(X)


@pytest.mark.parametrize("case", ["nan", "inf", "sparse", "complex", "empty", "1-d", "3-d",
                                  "strings"])
def test_bad_data_raise_as_scikit_learn_raises(case, X, both):
    bad = bad_inputs(X)[case]
    calls = [lambda est: clone(est).fit(bad)]
    if case != "empty":  # after fitting, predict refuses the same inputs the same way
        calls.append(lambda est: est.predict(bad))
    for call in calls:
        with pytest.raises((TypeError, ValueError)) as theirs:
            call(both[1])
        with pytest.raises(theirs.type) as ours:
            call(both[0])
        assert str(ours.value) == str(theirs.value)


def test_wrong_number_of_features_is_refused_by_every_method(X, both):
    est = both[0]
    for method in ("predict", "predict_proba", "score_samples", "score", "bic", "aic"):
        with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is "
                                             "expecting 3 features as input"):
            getattr(est, method)(X[:, :2])
    with pytest.raises(ValueError, match="but KMeans is expecting 3 features"):
        KMeans(2).fit(X).transform(X[:, :2])
    with pytest.raises(ValueError, match="n_components = 5, n_samples = 4"):
        GaussianMixture(5).fit(X[:4])
    with pytest.raises(ValueError, match="n_samples=4 should be >= n_clusters=5"):
        KMeans(5).fit(X[:4])


@pytest.mark.parametrize("estimator, name", [
    (GaussianMixture(0), "n_components"), (GaussianMixture(covariance_type="round"),
                                           "covariance_type"),
    (GaussianMixture(reg_covar=-1.0), "reg_covar"), (GaussianMixture(tol=-1.0), "tol"),
    (GaussianMixture(max_iter=2.5), "max_iter"), (GaussianMixture(n_init=0), "n_init"),
    (GaussianMixture(init_params="kmedoids"), "init_params"),
    (GaussianMixture(method="mcmc"), "method"),
    (GaussianMixture(2, means_init=np.zeros((3, 3))), "means_init"),
    (GaussianMixture(2, weights_init=[0.5, 0.6]), "weights"),
    (GaussianMixture(2, covariance_type="diag", precisions_init=-np.ones((2, 3))),
     "precisions_init"),
    (GaussianMixture(2, precisions_init=np.ones((2, 3, 3))), "precisions_init"),
    (KMeans(2, init="kmedoids"), "init"), (KMeans(2, init=np.zeros((2, 2))), "init"),
    (KMeans(0), "n_clusters"), (KMeans(2, tol=-1.0), "tol"),
    (MixtureEstimator(emvi.PoissonMixture), "model"), (MixtureEstimator("poisson"), "model"),
    (MixtureEstimator(emvi.GaussianMixture(k=2, dim=2)), "data"),
    (MixtureEstimator(emvi.PoissonMixture(k=2)), "one column"),
])
def test_bad_parameters_name_themselves(estimator, name, X):
    with pytest.raises((TypeError, ValueError), match=name):
        estimator.fit(X)


def test_emvi_sklearn_says_how_to_get_scikit_learn():
    script = ("import sys, emvi\n"
              "emvi.fit_em, emvi.GaussianMixture\n"
              "assert 'sklearn' not in sys.modules, 'import emvi pulled scikit-learn in'\n"
              "sys.modules['sklearn'] = None  # as if it were not installed\n"
              "try:\n    import emvi.sklearn\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert "pip install scikit-learn" in out.stdout, out.stdout + out.stderr


# -- scikit-learn's machinery ------------------------------------------------------------
def test_in_a_pipeline(X):
    pipe = Pipeline([("scale", StandardScaler()), ("gm", GaussianMixture(K, random_state=0))])
    labels = pipe.fit(X).predict(X)
    alone = GaussianMixture(K, random_state=0).fit(StandardScaler().fit_transform(X))
    np.testing.assert_array_equal(labels, alone.predict(StandardScaler().fit_transform(X)))
    assert pipe.score(X) == pytest.approx(alone.score(StandardScaler().fit_transform(X)))
    features = Pipeline([("km", KMeans(K, random_state=0)), ("scale", StandardScaler())])
    assert features.fit_transform(X).shape == (len(X), K)
    assert list(features[:1].get_feature_names_out()) == ["kmeans0", "kmeans1", "kmeans2"]


def neg_bic(estimator, X, y=None):
    return -estimator.bic(X)


def test_grid_search_picks_the_number_of_components(X):
    search = GridSearchCV(GaussianMixture(random_state=0),
                          {"n_components": [1, 2, 3, 4, 5],
                           "covariance_type": ["full", "spherical"]},
                          scoring=neg_bic, cv=3).fit(X)
    assert search.best_params_ == {"n_components": 3, "covariance_type": "full"}
    assert search.best_estimator_.means_.shape == (3, D)


def test_grid_search_over_emvi_models_leaves_them_as_they_were():
    rng = np.random.RandomState(0)
    counts = rng.poisson(np.repeat([2.0, 15.0], 150))[:, None]
    models = [emvi.PoissonMixture(k=k) for k in (1, 2, 3, 4)]
    before = pickle.dumps(models)
    search = GridSearchCV(MixtureEstimator(random_state=0, n_init=3), {"model": models},
                          scoring=neg_bic, cv=3).fit(counts)
    assert search.best_params_["model"].k == 2
    best = search.best_estimator_
    np.testing.assert_allclose(np.sort(best.params_["rates"]), [2.0, 15.0], rtol=0.15)
    assert best.model_ is not best.model and pickle.dumps(models) == before
    drawn, labels = best.sample(10)
    assert drawn.shape == (10, 1) and (drawn == np.round(drawn)).all()
    assert set(best.get_params()) == {"model", "n_init", "init_params", "max_iter", "tol",
                                      "random_state", "method"}


def test_mixture_estimator_uses_the_models_own_em(X):
    hard = MixtureEstimator(emvi.KMeans(k=K, dim=D), random_state=0).fit(X)
    assert hard.fit_.method == "hard-em" and hard.n_components_ == K
    soft = MixtureEstimator(emvi.GaussianMixture(k=K, dim=D, covariance="tied"), n_init=2,
                            random_state=0).fit(X)
    assert soft.fit_.method == "em" and soft.covariances_.shape == (D, D)
    same = GaussianMixture(K, covariance_type="tied", init_params="k-means++", n_init=2,
                           tol=1e-8, max_iter=1000, random_state=0).fit(X)
    np.testing.assert_array_equal(soft.means_, same.means_)
    default = MixtureEstimator().fit(X)  # one Gaussian: the sample mean and covariance
    np.testing.assert_allclose(default.means_[0], X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(default.covariances_[0], np.cov(X.T, bias=True) + 1e-6 *
                               np.eye(D), rtol=1e-10)


def test_pandas_frames_in_numpy_out_without_warnings(X):
    import pandas as pd  # a dev dependency
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable NumPy array" warning, nor any other
        est = GaussianMixture(K, random_state=0).fit(frame)
        labels = est.predict(frame)
        km = KMeans(K, random_state=0).fit(frame)
        km.transform(frame)
        MixtureEstimator(emvi.PoissonMixture(k=2)).fit(pd.DataFrame({"n": [1, 2, 9, 8, 1, 9]}))
    assert list(est.feature_names_in_) == ["a", "b", "c"] and est.n_features_in_ == 3
    np.testing.assert_array_equal(labels, GaussianMixture(K, random_state=0).fit(X).predict(X))
    assert type(est.means_) is np.ndarray and type(km.cluster_centers_) is np.ndarray
