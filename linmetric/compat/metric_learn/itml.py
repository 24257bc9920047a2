"""ITML and ITML_Supervised with metric-learn's parameters, on :class:`linmetric.ITML`."""

from ... import ITML as _LinmetricITML
from .base_metric import (
    MahalanobisMixin,
    _PairsClassifierMixin,
    _SupervisedMixin,
    renamed,
    samples,
    with_pairs_drawn,
)

__all__ = ["ITML", "ITML_Supervised"]


class _BaseITML(MahalanobisMixin):
    """What ITML and ITML_Supervised share: the parameters of the update."""

    def __init__(
        self,
        gamma=1.0,
        max_iter=1000,
        tol=1e-3,
        prior="identity",
        verbose=False,
        preprocessor=None,
        random_state=None,
        convergence_threshold="deprecated",
    ):
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.prior = prior
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state
        self.convergence_threshold = convergence_threshold

    def _make_learner(self, X=None, y=None, bounds=None):
        return _LinmetricITML(
            gamma=self.gamma,
            bounds=bounds,
            prior=self.prior,
            max_iter=self.max_iter,
            tol=renamed(self, "convergence_threshold", "tol", self.tol),
            verbose=self.verbose,
            random_state=self.random_state,
        )


class ITML(_BaseITML, _PairsClassifierMixin):
    """Information Theoretic Metric Learning from labelled pairs.

    metric-learn's ``ITML`` on :class:`linmetric.ITML` (its ``fit_pairs``)
    through :class:`linmetric.PairsClassifier`.

    **Bounds.** ITML's constraints are on squared learned distances. Without
    ``bounds``, metric-learn 0.7.0 took them as percentiles of *unsquared*
    distances and compared them with squared ones, so they were far too
    tight in any scale but one. Here the default bounds are the 5th and
    95th percentiles of *squared* distances between the points of the
    pairs (linmetric's rule), and a given ``bounds`` is read as squared
    distances, which is how metric-learn's update used it. ``bounds_``
    holds the values used.

    Parameters
    ----------
    gamma : float, default=1.0
        Slack weight; larger enforces the bounds more strictly.
    max_iter : int, default=1000
        Sweeps over the constraints.
    tol : float, default=1e-3
        Convergence tolerance of linmetric's ITML.
    prior : {'identity', 'covariance', 'random'} or array, default='identity'
        The prior metric.
    verbose : bool, default=False
    preprocessor : array-like, callable or None, default=None
        Turns index pairs into points.
    random_state : int, RandomState or None, default=None
        Seeds a random prior.
    convergence_threshold : float, optional
        Former name of ``tol`` (``FutureWarning``).

    Attributes
    ----------
    components_, bounds_, n_iter_, threshold_, learner_, estimator_
        ``threshold_`` is a distance: a pair is similar when its distance is
        at most ``threshold_``.
    """

    def fit(self, pairs, y, bounds=None, calibration_params=None):
        """Fit on labelled pairs and calibrate ``threshold_`` on them.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)
            Points, or indices into ``preprocessor``.
        y : array-like of shape (n_pairs,)
            +1 similar, -1 dissimilar.
        bounds : array-like of shape (2,) or None, default=None
            Squared-distance bounds ``(u, l)``; see the class notes.
        calibration_params : dict or None, default=None
            Arguments of :meth:`calibrate_threshold` used after fitting.

        Returns
        -------
        self
        """
        learner = self._make_learner(bounds=bounds)
        return self._fit_pairs(pairs, y, calibration_params, learner)


class ITML_Supervised(_SupervisedMixin, _BaseITML):
    """ITML from class labels; metric-learn's ``ITML_Supervised`` on :class:`linmetric.ITML`.

    Draws ``n_constraints`` similar and ``n_constraints`` dissimilar pairs
    from ``y`` (default ``20 * n_classes**2`` of each, as metric-learn) and
    fits :class:`linmetric.ITML` on them. The bounds are squared distances;
    see :class:`ITML` for why this differs from metric-learn 0.7.0.

    Parameters
    ----------
    gamma, max_iter, tol, prior, verbose, preprocessor, random_state
        As in :class:`ITML`.
    n_constraints : int or None, default=None
        Similar pairs drawn (and as many dissimilar).
    num_constraints, convergence_threshold : optional
        Former names of ``n_constraints`` and ``tol`` (``FutureWarning``).
    """

    def __init__(
        self,
        gamma=1.0,
        max_iter=1000,
        tol=1e-3,
        n_constraints=None,
        prior="identity",
        verbose=False,
        preprocessor=None,
        random_state=None,
        num_constraints="deprecated",
        convergence_threshold="deprecated",
    ):
        super().__init__(
            gamma=gamma,
            max_iter=max_iter,
            tol=tol,
            prior=prior,
            verbose=verbose,
            preprocessor=preprocessor,
            random_state=random_state,
            convergence_threshold=convergence_threshold,
        )
        self.n_constraints = n_constraints
        self.num_constraints = num_constraints

    def fit(self, X, y, bounds=None):
        """Fit on pairs drawn from class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples,)
        y : array-like of shape (n_samples,)
        bounds : array-like of shape (2,) or None, default=None
            Squared-distance bounds ``(u, l)``.

        Returns
        -------
        self
        """
        X = samples(X, self.preprocessor)
        learner = self._make_learner(X, y, bounds=bounds)
        learner.fit(X, y)
        self._store(learner)
        return self

    def _make_learner(self, X=None, y=None, bounds=None):
        learner = super()._make_learner(bounds=bounds)
        n_constraints = renamed(
            self, "num_constraints", "n_constraints", self.n_constraints
        )
        return with_pairs_drawn(learner, n_constraints, y)
