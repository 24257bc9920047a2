"""LSML and LSML_Supervised with metric-learn's parameters, on :class:`linmetric.LSML`."""

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array

from ... import LSML as _LinmetricLSML
from ... import QuadrupletsClassifier
from ..._constraints import sample_quadruplets
from .base_metric import (
    MahalanobisMixin,
    _QuadrupletsClassifierMixin,
    _SupervisedMixin,
    count_features,
    n_constraints_default,
    renamed,
    samples,
    tuples,
)
from .sdml import resolve_prior

__all__ = ["LSML", "LSML_Supervised"]


class _BaseLSML(MahalanobisMixin):
    """What LSML and LSML_Supervised share."""

    def __init__(
        self,
        tol=1e-3,
        max_iter=1000,
        prior="identity",
        verbose=False,
        preprocessor=None,
        random_state=None,
    ):
        self.tol = tol
        self.max_iter = max_iter
        self.prior = prior
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state

    def _make_learner(self, X=None, y=None, n_features=None):
        prior = resolve_prior(self.prior, n_features, self.random_state)
        return _LinmetricLSML(
            prior=prior,
            max_iter=self.max_iter,
            tol=self.tol,
            verbose=self.verbose,
            random_state=self.random_state,
        )


class LSML(_BaseLSML, _QuadrupletsClassifierMixin):
    """Least Squared-residual Metric Learning from quadruplets; metric-learn's ``LSML``.

    Fits :class:`linmetric.LSML` through
    :class:`linmetric.QuadrupletsClassifier`. A quadruplet ``(a, b, c, d)``
    means ``d(a, b) < d(c, d)``. ``prior='random'`` draws a random SPD prior
    from ``random_state``.

    Parameters
    ----------
    tol : float, default=1e-3
    max_iter : int, default=1000
    prior : {'identity', 'covariance', 'random'} or array, default='identity'
    verbose : bool, default=False
    preprocessor : array-like, callable or None, default=None
    random_state : int, RandomState or None, default=None
    """

    def fit(self, quadruplets, weights=None):
        """Fit on quadruplets.

        Parameters
        ----------
        quadruplets : array-like of shape (n, 4, n_features) or (n, 4)
            Points, or indices into ``preprocessor``.
        weights : array-like of shape (n,) or None, default=None
            Weight of each quadruplet.

        Returns
        -------
        self
        """
        points = tuples(quadruplets, self.preprocessor, 4)
        learner = self._make_learner(n_features=points.shape[-1])
        estimator = QuadrupletsClassifier(learner, preprocessor=self.preprocessor)
        estimator.fit(quadruplets, sample_weight=weights)
        self.estimator_ = estimator
        self._store(estimator.learner_)
        self.classes_ = np.array([-1, 1])
        return self


class LSML_Supervised(_SupervisedMixin, _BaseLSML):
    """LSML from class labels; metric-learn's ``LSML_Supervised`` on :class:`linmetric.LSML`.

    Draws ``n_constraints`` quadruplets (a same-class pair, then a
    different-class pair; default ``20 * n_classes**2``). With ``weights``,
    the quadruplets are drawn here and passed with their weights to
    :meth:`linmetric.LSML.fit_quadruplets`.

    Parameters
    ----------
    tol, max_iter, prior, verbose, preprocessor, random_state
        As in :class:`LSML`.
    n_constraints : int or None, default=None
    weights : array-like of shape (n_constraints,) or None, default=None
    num_constraints : int, optional
        Former name of ``n_constraints`` (``FutureWarning``).
    """

    def __init__(
        self,
        tol=1e-3,
        max_iter=1000,
        prior="identity",
        n_constraints=None,
        weights=None,
        verbose=False,
        preprocessor=None,
        random_state=None,
        num_constraints="deprecated",
    ):
        super().__init__(
            tol=tol,
            max_iter=max_iter,
            prior=prior,
            verbose=verbose,
            preprocessor=preprocessor,
            random_state=random_state,
        )
        self.n_constraints = n_constraints
        self.weights = weights
        self.num_constraints = num_constraints

    def _make_learner(self, X=None, y=None):
        n_features = count_features(X)
        learner = super()._make_learner(n_features=n_features)
        n_constraints = n_constraints_default(
            renamed(self, "num_constraints", "n_constraints", self.n_constraints), y
        )
        return learner.set_params(n_constraints=n_constraints)

    def fit(self, X, y):
        """Fit on quadruplets drawn from class labels.

        Returns
        -------
        self
        """
        if self.weights is None:
            return super().fit(X, y)
        X = check_array(samples(X, self.preprocessor), input_name="X")
        check_classification_targets(y)
        _, y_codes = np.unique(np.asarray(y), return_inverse=True)
        learner = self._make_learner(X, y)
        rng = check_random_state(self.random_state)
        index = sample_quadruplets(y_codes, learner.n_constraints, rng)
        learner.fit_quadruplets(X[index], weights=self.weights)
        self._store(learner)
        return self
