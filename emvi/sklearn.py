"""scikit-learn estimators over emvi's models: the conventions of scikit-learn, emvi's fits.

Usage (``X``: ``(n_samples, n_features)`` NumPy array or pandas DataFrame)::

    import emvi
    from emvi.sklearn import GaussianMixture, KMeans, MixtureEstimator

    gm = GaussianMixture(n_components=3, covariance_type="diag", n_init=4,
                         random_state=0).fit(X)          # closed-form EM, restarts in a batch
    gm.weights_, gm.means_, gm.covariances_               # scikit-learn's layouts
    gm.predict(X), gm.predict_proba(X), gm.score(X), gm.bic(X)
    X_new, labels = gm.sample(100)
    vi = GaussianMixture(3, covariance_type="diag", n_init=4, random_state=0,
                         method="vi").fit(X)              # TraceEnum_ELBO, the same start
    print(emvi.compare(gm.fit_, vi.fit_).table())         # fit_: the emvi Fit

    km = KMeans(n_clusters=4, random_state=0).fit(X)     # hard EM on emvi.KMeans
    km.cluster_centers_, km.labels_, km.inertia_, km.transform(X)

    counts = MixtureEstimator(model=emvi.PoissonMixture(k=3), n_init=5).fit(C)  # C: (n, 1)
    counts.params_["rates"], counts.predict(C)

They are ordinary scikit-learn estimators (``get_params``/``set_params``, ``clone``,
``Pipeline``, ``GridSearchCV``) and pass scikit-learn's estimator checks.

``random_state``: an int is emvi's seed itself (``GaussianMixture(random_state=3)`` starts
where ``emvi.initialize(model, X, seed=3)`` does); ``None`` or a ``RandomState`` draws a
seed from NumPy's generator, so each fit differs. ``sample`` draws, as scikit-learn's
mixtures do, from ``check_random_state(random_state)``: the same draws on every call for an
int, new ones for ``None`` (NumPy's global generator) or a ``RandomState`` (which advances).

scikit-learn is not a dependency of emvi: ``pip install scikit-learn`` to use this module.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings

try:  # first: without scikit-learn, fail before importing anything heavy
    from sklearn.base import (
        BaseEstimator,
        ClassNamePrefixFeaturesOutMixin,
        ClusterMixin,
        DensityMixin,
        TransformerMixin,
    )
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_array, check_random_state
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:  # not a dependency of emvi
    raise ImportError("emvi.sklearn needs scikit-learn, which emvi does not install: "
                      "pip install scikit-learn") from exc
try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6
    def validate_data(estimator, X, **kwargs):
        return estimator._validate_data(X, **kwargs)

import numpy as np
import torch

from .inference.em import fit_em
from .inference.init import initialize
from .inference.options import EM, INIT
from .inference.vi import fit_vi
from .models.base import LatentModel
from .models.families.gaussian import COVARIANCE_TYPES, Gaussian
from .models.gaussian_mixture import GaussianMixture as _GaussianMixtureModel
from .models.kmeans import KMeans as _KMeansModel
from .models.validation import InputError, InputTypeError, check_int, check_real

__all__ = ["GaussianMixture", "KMeans", "MixtureEstimator"]

#: scikit-learn's init_params -> emvi.initialize's method (emvi's own names pass through)
INIT_PARAMS = {"kmeans": "kmeans", "k-means++": "kmeans++", "random": "random",
               "random_from_data": "random_points"}
METHODS = ("em", "vi")


# -- helpers ------------------------------------------------------------------------------
def _seed(random_state) -> int:
    """emvi's seed from scikit-learn's ``random_state`` (see the module docstring)."""
    rng = check_random_state(random_state)  # scikit-learn's checks and errors
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(rng.randint(np.iinfo(np.int32).max))


def _tensor(X: np.ndarray) -> torch.Tensor:
    """A float64 tensor sharing ``X``'s memory when it is writable (a read-only array, e.g.
    a pandas frame or a memory map, is copied: torch warns on non-writable arrays)."""
    return torch.from_numpy(np.require(X, dtype=np.float64, requirements=["W"]))


def _choice(value, name: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


def _event_shape(model) -> tuple | None:
    """The shape of one observation the model takes, where it says (``None``: unknown)."""
    family = getattr(model, "family", None)
    return getattr(family, "event_shape", getattr(model, "event_shape", None))


def _gaussian_attributes(params, covariance: str) -> dict:
    """``means_``, ``covariances_``, ``precisions_`` and ``precisions_cholesky_`` in
    scikit-learn's layout for ``covariance`` (precision = P P^T with P upper-triangular)."""
    out = {"means_": params["locs"].numpy()}
    if covariance in ("spherical", "diag"):
        var = params["scales"].square()
        out.update(covariances_=var.numpy(), precisions_=(1 / var).numpy(),
                   precisions_cholesky_=(1 / params["scales"]).numpy())
        return out
    tril = params["scale_tril"]
    eye = torch.eye(tril.shape[-1], dtype=tril.dtype)
    upper = torch.linalg.solve_triangular(tril, eye.expand_as(tril), upper=False).mT
    out.update(covariances_=(tril @ tril.mT).numpy(), precisions_=(upper @ upper.mT).numpy(),
               precisions_cholesky_=upper.contiguous().numpy())
    return out


def _squared_distances(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(n, k)`` squared distances from differences (no cancellation), one centre at a time."""
    out = np.empty((X.shape[0], centres.shape[0]))
    for j, centre in enumerate(centres):
        diff = X - centre
        out[:, j] = np.einsum("ij,ij->i", diff, diff)
    return out


def _warn_if_not_converged(fit, max_iter: int) -> None:
    if not fit.converged and max_iter > 0:  # as scikit-learn's mixtures
        warnings.warn("Best performing initialization did not converge. Try different init "
                      "parameters, or increase max_iter, tol, or check for degenerate data.",
                      ConvergenceWarning, stacklevel=4)


# -- mixtures -----------------------------------------------------------------------------
class _Mixture(DensityMixin, BaseEstimator):
    """What the mixture estimators share: fitting through emvi, and scikit-learn's methods
    on the fitted model. A subclass gives ``_model(n_features)`` and ``_start``."""

    #: fewest rows fit accepts (scikit-learn's GaussianMixture asks for 2)
    _min_samples = 1

    # -- for subclasses -------------------------------------------------------------------
    def _model(self, n_features: int) -> LatentModel:
        raise NotImplementedError

    def _init_method(self) -> str:
        return _choice(self.init_params, "init_params",
                       tuple(INIT_PARAMS) + tuple(INIT["method"].choices))

    def _start(self, model, data, seed: int, restarts: int):
        method = INIT_PARAMS.get(self.init_params, self.init_params)
        return initialize(model, data, method=method, seed=seed, restarts=restarts)

    def _fitted(self, model, params) -> dict:
        """Attributes beyond the common ones (``means_``, ... for a Gaussian family)."""
        family = getattr(model, "family", None)
        return _gaussian_attributes(params, family.covariance) if isinstance(
            family, Gaussian) else {}

    # -- fitting --------------------------------------------------------------------------
    def _data(self, X: np.ndarray, model) -> torch.Tensor:
        data = _tensor(X)
        if _event_shape(model) == ():
            if X.shape[1] != 1:
                raise ValueError(f"X: this model takes one value per observation (one "
                                 f"column), got {X.shape[1]} columns")
            data = data[:, 0]
        return data

    def _fit(self, X) -> torch.Tensor:
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=self._min_samples)
        model = self._model(X.shape[1])
        if X.shape[0] < model.k:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{model.k}, n_samples = {X.shape[0]}")
        method = _choice(self.method, "method", METHODS)
        max_iter = EM["max_iter"].check(self.max_iter, "max_iter")
        tol = check_real(self.tol, "tol", low=0.0)
        restarts = INIT["restarts"].check(self.n_init, "n_init")
        self._init_method()
        data = self._data(X, model)
        init = self._start(model, data, _seed(self.random_state), restarts)
        if method == "em":
            fit = fit_em(model, data, init, max_iter=max_iter, tol=tol, record_params=False)
        else:
            fit = fit_vi(model, data, init, steps=max_iter, tol=tol, record_params=False)
        _warn_if_not_converged(fit, max_iter)
        n = model.n_observations(data)
        params = fit.params.map(lambda v: v.detach())
        self.fit_ = fit
        self.model_ = model
        self.converged_ = bool(fit.converged)
        self.n_iter_ = int(fit.iterations)
        self.lower_bound_ = fit.log_likelihood / n
        self.lower_bounds_ = (fit.objective / n).numpy()
        self.params_ = {name: value.numpy() for name, value in params.items()}
        if "weights" in params:
            self.weights_ = params["weights"].numpy()
        for name, value in self._fitted(model, params).items():
            setattr(self, name, value)
        return data

    def fit(self, X, y=None):
        """Fit the model to ``X: (n_samples, n_features)`` from ``n_init`` starts (one
        batched fit; the start with the highest log-likelihood is kept). ``y`` is ignored."""
        self._fit(X)
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit, then the most probable component of each row of ``X``: ``(n_samples,)``."""
        return self.fit(X).predict(X)

    # -- the fitted model on new data -----------------------------------------------------
    def _check(self, X) -> torch.Tensor:
        check_is_fitted(self)
        return self._data(validate_data(self, X, dtype=np.float64, reset=False), self.model_)

    def predict_proba(self, X) -> np.ndarray:
        """Posterior probability of each component: ``(n_samples, n_components)``."""
        data = self._check(X)  # before fit_ is read: NotFittedError
        return self.fit_.predict_proba(data).numpy()

    def predict(self, X) -> np.ndarray:
        """Most probable component of each row: ``(n_samples,)`` int64."""
        return self.predict_proba(X).argmax(1)

    def score_samples(self, X) -> np.ndarray:
        """Log density of each row under the fitted model: ``(n_samples,)``."""
        data = self._check(X)
        return self.fit_.score_samples(data).numpy()

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per row of ``X`` (higher is better)."""
        return float(self.score_samples(X).mean())

    def _criterion(self, X, penalty) -> float:
        n = self._check(X).shape[0]
        return -2 * self.score(X) * n + penalty(n) * self.fit_.n_parameters()

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        return self._criterion(X, math.log)

    def aic(self, X) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        return self._criterion(X, lambda n: 2.0)

    def sample(self, n_samples=1):
        """``(X (n_samples, n_features), labels (n_samples,))`` drawn from the fitted
        model's Pyro program; random on each call unless ``random_state`` is an int."""
        check_is_fitted(self)
        n = check_int(n_samples, "n_samples", low=1)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        drawn = self.model_.simulate(self.fit_.params, n, seed=seed)
        return drawn.data.reshape(n, -1).numpy(), drawn.assignments.numpy()


class GaussianMixture(_Mixture):
    """A Gaussian mixture with scikit-learn's ``GaussianMixture`` interface, fitted by emvi.

    A drop-in for :class:`sklearn.mixture.GaussianMixture`: the same arguments and defaults
    (less ``warm_start`` and ``verbose``) and the same fitted attributes. From the same data
    and start (``weights_init``, ``means_init``, ``precisions_init``) it gives scikit-learn's
    parameters (tested within 1e-8 after 20 iterations, every covariance type).

    Args:
        n_components: number of components.
        covariance_type: ``full``, ``tied``, ``diag`` or ``spherical``.
        tol: a start stops when the mean log-likelihood per sample changes by at most
            ``tol`` between iterations: scikit-learn's rule for mixtures
            (``abs(change) < tol`` there). scikit-learn tests it after the M-step that
            follows the two E-steps compared, emvi before it, so at the same ``tol`` emvi
            stops one M-step earlier, at the parameters whose log-likelihood it evaluated
            last (``n_iter_`` one less; ``lower_bound_`` the same). With ``tol=0``
            scikit-learn runs all ``max_iter`` M-steps; emvi stops early only where the
            log-likelihood no longer changes at all.
        reg_covar: added to the diagonal of every covariance.
        max_iter: most EM iterations (M-steps), or L-BFGS steps for ``method="vi"``.
        n_init: number of starts, fitted as one vectorised batch; the best is kept.
        init_params: ``kmeans`` (k-means++ then Lloyd), ``k-means++``, ``random``
            (random responsibilities) or ``random_from_data`` (random points as centres);
            emvi's own method names are accepted too. The starts are emvi's, not the same
            random draws as scikit-learn's.
        weights_init: ``(n_components,)`` initial weights (overrides ``init_params``').
        means_init: ``(n_components, n_features)`` initial means.
        precisions_init: initial precisions (inverse covariances): ``(n_components,)``
            spherical, ``(n_components, n_features)`` diag, ``(n_features, n_features)``
            tied, ``(n_components, n_features, n_features)`` full.
        random_state: ``None``, an int (emvi's seed) or a ``numpy.random.RandomState``.
        method: ``em`` (closed-form EM) or ``vi`` (:func:`emvi.fit_vi`: L-BFGS on
            TraceEnum_ELBO of the same model, from the same start).

    Attributes:
        weights_, means_, covariances_, precisions_, precisions_cholesky_: the fitted
            parameters in scikit-learn's layouts.
        converged_, n_iter_: whether the kept start met ``tol``; its M-steps (or steps).
        lower_bound_: mean log-likelihood per sample at the fitted parameters.
        lower_bounds_: the same per iteration, from the start (index 0).
        n_features_in_, feature_names_in_ (DataFrames): as scikit-learn.
        fit_: the :class:`emvi.Fit` (traces, restarts, notes; ``emvi.compare``); as every
            Fit, it keeps the training data.
        model_: the :class:`emvi.GaussianMixture` fitted; ``params_``: its parameters.
    """

    _min_samples = 2

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, method="em"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.method = method

    def _model(self, n_features):
        k = check_int(self.n_components, "n_components", low=1, high=100_000)
        covariance = _choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        reg_covar = check_real(self.reg_covar, "reg_covar", low=0.0)
        return _GaussianMixtureModel(k=k, dim=n_features, covariance=covariance,
                                     reg_covar=reg_covar)

    def _given(self, model) -> dict:
        """The given initial values as emvi parameters (checked shapes)."""
        k, d, covariance = model.k, model.dim, model.covariance
        given = {}
        for name, value, shape in (("weights_init", self.weights_init, (k,)),
                                   ("means_init", self.means_init, (k, d))):
            if value is not None:
                given[name] = _array(value, name, shape)
        if self.precisions_init is not None:
            shape = {"spherical": (k,), "diag": (k, d), "tied": (d, d),
                     "full": (k, d, d)}[covariance]
            precisions = _array(self.precisions_init, "precisions_init", shape)
            given["precisions_init"] = _covariance_parameter(precisions, covariance)
        names = {"weights_init": "weights", "means_init": "locs",
                 "precisions_init": model.family.cov_name}
        return {names[key]: torch.from_numpy(value) for key, value in given.items()}

    def _start(self, model, data, seed, restarts):
        given = self._given(model)
        if len(given) == 3:  # nothing left to initialise
            init = model.check_params(given, "init")
            return init if restarts == 1 else init.map(
                lambda v: v.expand(restarts, *v.shape).clone())
        init = super()._start(model, data, seed, restarts)
        for name, value in given.items():
            init[name] = value.expand_as(init[name]).clone()
        return model.check_params(init, "init")


def _array(value, name: str, shape: tuple) -> np.ndarray:
    array = check_array(value, dtype=np.float64, ensure_2d=False, allow_nd=True,
                        input_name=name)
    if array.shape != shape:
        raise InputError(f"{name}: expected shape {shape}, got {array.shape}")
    return array


def _covariance_parameter(precisions: np.ndarray, covariance: str) -> np.ndarray:
    """emvi's ``scales`` (standard deviations) or ``scale_tril`` (Cholesky factors of the
    covariances) from scikit-learn's precisions."""
    if covariance in ("spherical", "diag"):
        if not (precisions > 0).all():
            raise InputError("precisions_init: expected positive precisions")
        return 1 / np.sqrt(precisions)
    matrices = precisions.reshape(-1, *precisions.shape[-2:])
    if not np.allclose(matrices, np.swapaxes(matrices, -1, -2)) or not (
            np.linalg.eigvalsh(matrices) > 0).all():
        raise InputError("precisions_init: expected symmetric positive-definite matrices")
    return np.linalg.cholesky(np.linalg.inv(precisions))


class MixtureEstimator(_Mixture):
    """Any emvi model as a scikit-learn density estimator.

    Args:
        model: an emvi model, e.g. ``emvi.PoissonMixture(k=3)`` (a parameter like any
            other: ``clone`` copies it, ``GridSearchCV`` can search over models). ``None``:
            one full-covariance Gaussian the width of ``X``. ``X`` is ``(n_samples,
            n_features)``; a model of one value per observation (Poisson, exponential)
            takes one column.
        n_init: number of starts, fitted as one batch; the best is kept.
        init_params: :func:`emvi.initialize`'s method (``kmeans++``, ``kmeans``,
            ``random``, ``random_points``, ``random_params``; scikit-learn's ``k-means++``
            and ``random_from_data`` too).
        max_iter: most EM iterations, or L-BFGS steps for ``method="vi"``.
        tol: stop when the log-likelihood per observation changes by at most ``tol``.
        random_state: ``None``, an int (emvi's seed) or a ``numpy.random.RandomState``.
        method: ``em`` (the model's EM; hard EM for ``emvi.KMeans``) or ``vi``.

    Attributes:
        params_: ``name -> array`` fitted parameters; ``weights_`` when the model has
            weights; ``means_``, ``covariances_``, ... for a Gaussian family.
        converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_: as
            :class:`GaussianMixture`; ``n_components_``: the model's ``k``.
        fit_: the :class:`emvi.Fit`; ``model_``: the fitted copy of ``model``.
    """

    def __init__(self, model=None, *, n_init=1, init_params="kmeans++",
                 max_iter=EM["max_iter"].default, tol=EM["tol"].default, random_state=None,
                 method="em"):
        self.model = model
        self.n_init = n_init
        self.init_params = init_params
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.method = method

    def _model(self, n_features):
        if self.model is None:
            return _GaussianMixtureModel(k=1, dim=n_features)
        if not isinstance(self.model, LatentModel):
            hint = " (a class: build one, e.g. PoissonMixture(k=3))" if isinstance(
                self.model, type) else ""
            raise InputTypeError(f"model: expected an emvi model such as "
                                 f"emvi.PoissonMixture(k=3){hint}, got {self.model!r:.80}")
        return copy.deepcopy(self.model)  # the parameter itself is never changed

    def _fitted(self, model, params):
        return {"n_components_": model.k, **super()._fitted(model, params)}


# -- K-means ------------------------------------------------------------------------------
class KMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """K-means with scikit-learn's ``KMeans`` interface: hard EM (Lloyd's algorithm) on
    :class:`emvi.KMeans`; an empty cluster moves to the point farthest from its centre.

    Args:
        n_clusters: number of clusters.
        init: ``k-means++`` (k-means++ seeding, each centre then the mean of its points),
            ``random`` (random points as centres) or an ``(n_clusters, n_features)`` array.
        n_init: number of starts, fitted as one batch (the lowest inertia is kept);
            ``auto``: 1 (10 for ``init="random"``), as scikit-learn.
        max_iter: most iterations.
        tol: stop when the inertia per sample changes by at most
            ``tol * mean(var(X, axis=0))`` between iterations (or when no label changes).
            scikit-learn's ``tol`` bounds, relative to the same variance, the squared shift
            of the centres instead; both stop at a fixed point of Lloyd's algorithm.
        random_state: ``None``, an int (emvi's seed) or a ``numpy.random.RandomState``.

    Attributes:
        cluster_centers_: ``(n_clusters, n_features)``; labels_: ``(n_samples,)``;
        inertia_: sum of squared distances to the closest centre; n_iter_, converged_,
        n_features_in_; fit_: the :class:`emvi.Fit`.
    """

    def __init__(self, n_clusters=8, *, init="k-means++", n_init=1, max_iter=300, tol=1e-4,
                 random_state=None):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _start(self, model, data, X):
        if isinstance(self.init, str):
            method = {"k-means++": "kmeans++", "random": "random_points"}.get(self.init)
            if method is None:
                raise InputError(f"init: expected 'k-means++', 'random' or an array of "
                                 f"centres, got {self.init!r}")
            n_init = (10 if self.init == "random" else 1) if self.n_init == "auto" else (
                INIT["restarts"].check(self.n_init, "n_init"))
            return initialize(model, data, method=method, seed=_seed(self.random_state),
                              restarts=n_init)
        centres = _array(self.init, "init", (model.k, X.shape[1]))
        if self.n_init not in ("auto", 1):
            warnings.warn(f"Explicit initial center position passed: performing only one "
                          f"init in KMeans instead of n_init={self.n_init}.", RuntimeWarning,
                          stacklevel=3)
        return model.params(locs=centres)

    def fit(self, X, y=None):
        """Cluster ``X: (n_samples, n_features)`` (``y`` is ignored)."""
        X = validate_data(self, X, dtype=np.float64)
        k = check_int(self.n_clusters, "n_clusters", low=1, high=100_000)
        if X.shape[0] < k:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={k}.")
        max_iter = EM["max_iter"].check(self.max_iter, "max_iter")
        tol = check_real(self.tol, "tol", low=0.0)
        model = _KMeansModel(k=k, dim=X.shape[1])
        data = _tensor(X)
        init = self._start(model, data, X)
        # emvi's objective is -inertia / 2 (unit scale) plus a constant
        spread = float(np.var(X, axis=0).mean())
        fit = fit_em(model, data, init, max_iter=max_iter, tol=0.5 * tol * spread, hard=True,
                     record_params=False, track_log_likelihood=False)
        self.fit_ = fit
        self.cluster_centers_ = fit.params["locs"].detach().numpy()
        distances = _squared_distances(X, self.cluster_centers_)
        self.labels_ = distances.argmin(1)
        self.inertia_ = float(distances.min(1).sum())
        self.n_iter_ = int(fit.iterations)
        self.converged_ = bool(fit.converged)
        self._n_features_out = k
        return self

    def _distances(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return _squared_distances(X, self.cluster_centers_)

    def predict(self, X) -> np.ndarray:
        """Index of the closest centre of each row: ``(n_samples,)``."""
        return self._distances(X).argmin(1)

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit, then ``labels_``."""
        return self.fit(X).labels_

    def transform(self, X) -> np.ndarray:
        """Distance of each row to each centre: ``(n_samples, n_clusters)``."""
        return np.sqrt(self._distances(X))

    def score(self, X, y=None) -> float:
        """Minus the inertia of ``X`` (sum of squared distances to the closest centre)."""
        return -float(self._distances(X).min(1).sum())
