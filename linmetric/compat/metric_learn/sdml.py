"""SDML and SDML_Supervised with metric-learn's parameters, on :class:`linmetric.SDML`."""

from sklearn.datasets import make_spd_matrix
from sklearn.utils import check_random_state

from ... import SDML as _LinmetricSDML
from .base_metric import (
    MahalanobisMixin,
    _PairsClassifierMixin,
    _SupervisedMixin,
    count_features,
    renamed,
    tuples,
    with_pairs_drawn,
)

__all__ = ["SDML", "SDML_Supervised"]


def resolve_prior(prior, n_features, random_state):
    """metric-learn's ``prior='random'``: a random SPD matrix; others pass through.

    Before the data is known (``n_features`` None: only the tags are asked
    for) ``'random'`` stands in as ``'identity'``.
    """
    if isinstance(prior, str) and prior == "random":
        if n_features is None:
            return "identity"
        return make_spd_matrix(
            n_features, random_state=check_random_state(random_state)
        )
    return prior


class _BaseSDML(MahalanobisMixin):
    """What SDML and SDML_Supervised share."""

    def __init__(
        self,
        balance_param=0.5,
        sparsity_param=0.01,
        prior="identity",
        verbose=False,
        preprocessor=None,
        random_state=None,
    ):
        self.balance_param = balance_param
        self.sparsity_param = sparsity_param
        self.prior = prior
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state

    def _make_learner(self, X=None, y=None, n_features=None):
        prior = resolve_prior(self.prior, n_features, self.random_state)
        return _LinmetricSDML(
            balance_param=self.balance_param,
            sparsity_param=self.sparsity_param,
            prior=prior,
            verbose=self.verbose,
            random_state=self.random_state,
        )


_SDML_NOTES = """
    linmetric's SDML solves the same graphical-lasso problem (Qi et al., 2009)
    and keeps the matrix it inverts positive definite by flooring its
    eigenvalues, where metric-learn 0.7.0 failed or warned on a matrix that
    was not. ``prior`` defaults to ``'identity'`` and ``balance_param`` to
    0.5, as in metric-learn (linmetric's own ``balance_param`` defaults to
    ``'auto'``); ``'random'`` draws a random SPD prior from ``random_state``.
"""


class SDML(_BaseSDML, _PairsClassifierMixin):
    __doc__ = (
        """Sparse Determinant Metric Learning from labelled pairs; metric-learn's ``SDML``.

    Fits :class:`linmetric.SDML` through :class:`linmetric.PairsClassifier`;
    ``threshold_`` is a distance.
"""
        + _SDML_NOTES
        + """
    Parameters
    ----------
    balance_param : float, default=0.5
    sparsity_param : float, default=0.01
    prior : {'identity', 'covariance', 'random'} or array, default='identity'
    verbose : bool, default=False
    preprocessor : array-like, callable or None, default=None
    random_state : int, RandomState or None, default=None
    """
    )

    def fit(self, pairs, y, calibration_params=None):
        """Fit on labelled pairs and calibrate ``threshold_`` on them.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)
        y : array-like of shape (n_pairs,)
            +1 or -1.
        calibration_params : dict or None, default=None

        Returns
        -------
        self
        """
        points = tuples(pairs, self.preprocessor, 2)
        n_features = points.shape[-1] if points.ndim == 3 else None
        learner = self._make_learner(n_features=n_features)
        return self._fit_pairs(pairs, y, calibration_params, learner)


class SDML_Supervised(_SupervisedMixin, _BaseSDML):
    __doc__ = (
        """SDML from class labels; metric-learn's ``SDML_Supervised`` on :class:`linmetric.SDML`.

    Draws ``n_constraints`` similar and ``n_constraints`` dissimilar pairs
    (default ``20 * n_classes**2`` of each).
"""
        + _SDML_NOTES
        + """
    Parameters
    ----------
    balance_param, sparsity_param, prior, verbose, preprocessor, random_state
        As in :class:`SDML`.
    n_constraints : int or None, default=None
    num_constraints : int, optional
        Former name of ``n_constraints`` (``FutureWarning``).
    """
    )

    def __init__(
        self,
        balance_param=0.5,
        sparsity_param=0.01,
        prior="identity",
        n_constraints=None,
        verbose=False,
        preprocessor=None,
        random_state=None,
        num_constraints="deprecated",
    ):
        super().__init__(
            balance_param=balance_param,
            sparsity_param=sparsity_param,
            prior=prior,
            verbose=verbose,
            preprocessor=preprocessor,
            random_state=random_state,
        )
        self.n_constraints = n_constraints
        self.num_constraints = num_constraints

    def _make_learner(self, X=None, y=None):
        n_features = count_features(X)
        learner = super()._make_learner(n_features=n_features)
        n_constraints = renamed(
            self, "num_constraints", "n_constraints", self.n_constraints
        )
        return with_pairs_drawn(learner, n_constraints, y)
