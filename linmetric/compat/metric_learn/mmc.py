"""MMC and MMC_Supervised with metric-learn's parameters, on :class:`linmetric.MMC`."""

from ... import MMC as _LinmetricMMC
from .base_metric import (
    MahalanobisMixin,
    _PairsClassifierMixin,
    _SupervisedMixin,
    renamed,
    with_pairs_drawn,
)

__all__ = ["MMC", "MMC_Supervised"]


class _BaseMMC(MahalanobisMixin):
    """What MMC and MMC_Supervised share."""

    def __init__(
        self,
        max_iter=100,
        max_proj=10000,
        tol=1e-3,
        init="identity",
        diagonal=False,
        diagonal_c=1.0,
        verbose=False,
        preprocessor=None,
        random_state=None,
        convergence_threshold="deprecated",
    ):
        self.max_iter = max_iter
        self.max_proj = max_proj
        self.tol = tol
        self.init = init
        self.diagonal = diagonal
        self.diagonal_c = diagonal_c
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state
        self.convergence_threshold = convergence_threshold

    def _make_learner(self, X=None, y=None):
        return _LinmetricMMC(
            diagonal=self.diagonal,
            max_iter=self.max_iter,
            tol=renamed(self, "convergence_threshold", "tol", self.tol),
            verbose=self.verbose,
            random_state=self.random_state,
        )


_MMC_NOTES = """
    linmetric's MMC solves the same problem (Xing et al., 2002) with its own
    projected-gradient and Newton steps, so ``max_proj`` (metric-learn's
    inner projection count), ``init`` (the start; linmetric starts from a
    scaled identity) and ``diagonal_c`` (the weight of the dissimilarity
    term in metric-learn's diagonal solver) are accepted for compatibility
    and have no effect.
"""


class MMC(_BaseMMC, _PairsClassifierMixin):
    __doc__ = (
        """Mahalanobis Metric for Clustering from labelled pairs; metric-learn's ``MMC``.

    Fits :class:`linmetric.MMC` through :class:`linmetric.PairsClassifier`;
    ``threshold_`` is a distance (similar when the distance is at most it).
"""
        + _MMC_NOTES
        + """
    Parameters
    ----------
    max_iter : int, default=100
    max_proj : int, default=10000
        No effect.
    tol : float, default=1e-3
    init : str or array, default='identity'
        No effect.
    diagonal : bool, default=False
        Learn a diagonal metric.
    diagonal_c : float, default=1.0
        No effect.
    verbose : bool, default=False
    preprocessor : array-like, callable or None, default=None
    random_state : int, RandomState or None, default=None
    convergence_threshold : float, optional
        Former name of ``tol`` (``FutureWarning``).
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
            Arguments of :meth:`calibrate_threshold`.

        Returns
        -------
        self
        """
        return self._fit_pairs(pairs, y, calibration_params)


class MMC_Supervised(_SupervisedMixin, _BaseMMC):
    __doc__ = (
        """MMC from class labels; metric-learn's ``MMC_Supervised`` on :class:`linmetric.MMC`.

    Draws ``n_constraints`` similar and ``n_constraints`` dissimilar pairs
    (default ``20 * n_classes**2`` of each).
"""
        + _MMC_NOTES
        + """
    Parameters
    ----------
    max_iter, max_proj, tol, init, diagonal, diagonal_c, verbose, preprocessor, random_state
        As in :class:`MMC` (``tol`` defaults to 1e-6 here, as in metric-learn).
    n_constraints : int or None, default=None
    num_constraints, convergence_threshold : optional
        Former names of ``n_constraints`` and ``tol`` (``FutureWarning``).
    """
    )

    def __init__(
        self,
        max_iter=100,
        max_proj=10000,
        tol=1e-6,
        n_constraints=None,
        init="identity",
        diagonal=False,
        diagonal_c=1.0,
        verbose=False,
        preprocessor=None,
        random_state=None,
        num_constraints="deprecated",
        convergence_threshold="deprecated",
    ):
        super().__init__(
            max_iter=max_iter,
            max_proj=max_proj,
            tol=tol,
            init=init,
            diagonal=diagonal,
            diagonal_c=diagonal_c,
            verbose=verbose,
            preprocessor=preprocessor,
            random_state=random_state,
            convergence_threshold=convergence_threshold,
        )
        self.n_constraints = n_constraints
        self.num_constraints = num_constraints

    def _make_learner(self, X=None, y=None):
        learner = super()._make_learner()
        n_constraints = renamed(
            self, "num_constraints", "n_constraints", self.n_constraints
        )
        return with_pairs_drawn(learner, n_constraints, y)
