"""LMNN with metric-learn's parameters, on :class:`linmetric.LMNN`."""

from ... import LMNN as _LinmetricLMNN
from .base_metric import MahalanobisMixin, _SupervisedMixin, renamed

__all__ = ["LMNN"]


class LMNN(_SupervisedMixin, MahalanobisMixin):
    """Large Margin Nearest Neighbor; metric-learn's ``LMNN`` on :class:`linmetric.LMNN`.

    ``regularization`` is the weight of the push term against the pull term
    (linmetric's ``push_weight``, the paper's ``mu``): the objective is
    ``(1 - regularization) * pull + regularization * push`` in both.

    **Optimiser.** metric-learn 0.7.0 ran gradient descent with a step
    ``learn_rate`` (default 1e-7) adapted by hand, which on standardised data
    barely moves from the initial map within ``max_iter`` steps. linmetric's
    LMNN runs L-BFGS, which needs no step size and stops on its own
    tolerance, so ``learn_rate``, ``min_iter`` and ``convergence_tol`` are
    accepted for compatibility and **have no effect**; ``max_iter`` bounds the
    L-BFGS iterations.

    Parameters
    ----------
    init : {'auto', 'pca', 'lda', 'identity', 'random'} or array, default='auto'
    n_neighbors : int, default=3
        Target neighbours per sample.
    min_iter : int, default=50
        No effect (see above).
    max_iter : int, default=1000
    learn_rate : float, default=1e-7
        No effect (see above).
    regularization : float in (0, 1], default=0.5
        Weight of the push term (``push_weight``).
    convergence_tol : float, default=1e-3
        No effect (see above); linmetric's tolerance is used.
    verbose : bool, default=False
    preprocessor : array-like, callable or None, default=None
    n_components : int or None, default=None
    random_state : int, RandomState or None, default=None
    k : int, optional
        Former name of ``n_neighbors`` (``FutureWarning``).
    """

    def __init__(
        self,
        init="auto",
        n_neighbors=3,
        min_iter=50,
        max_iter=1000,
        learn_rate=1e-7,
        regularization=0.5,
        convergence_tol=0.001,
        verbose=False,
        preprocessor=None,
        n_components=None,
        random_state=None,
        k="deprecated",
    ):
        self.init = init
        self.n_neighbors = n_neighbors
        self.min_iter = min_iter
        self.max_iter = max_iter
        self.learn_rate = learn_rate
        self.regularization = regularization
        self.convergence_tol = convergence_tol
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.n_components = n_components
        self.random_state = random_state
        self.k = k

    def _make_learner(self, X=None, y=None):
        return _LinmetricLMNN(
            n_neighbors=renamed(self, "k", "n_neighbors", self.n_neighbors),
            n_components=self.n_components,
            init=self.init,
            push_weight=self.regularization,
            max_iter=self.max_iter,
            verbose=self.verbose,
            random_state=self.random_state,
        )
