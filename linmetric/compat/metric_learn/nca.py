"""NCA with metric-learn's parameters, on :class:`linmetric.NCA`."""

from ... import NCA as _LinmetricNCA
from .base_metric import _SupervisedMapLearner

__all__ = ["NCA"]


class NCA(_SupervisedMapLearner):
    """Neighborhood Components Analysis; metric-learn's ``NCA`` on :class:`linmetric.NCA`.

    ``tol=None`` (metric-learn's default) uses linmetric's default tolerance
    (1e-5 on the L-BFGS projected gradient); a float is passed on.

    Parameters
    ----------
    init : {'auto', 'pca', 'lda', 'identity', 'random'} or array, default='auto'
    n_components : int or None, default=None
    max_iter : int, default=100
    tol : float or None, default=None
    verbose : bool, default=False
    preprocessor : array-like, callable or None, default=None
    random_state : int, RandomState or None, default=None
    """

    _linmetric_class = _LinmetricNCA

    def __init__(
        self,
        init="auto",
        n_components=None,
        max_iter=100,
        tol=None,
        verbose=False,
        preprocessor=None,
        random_state=None,
    ):
        self.init = init
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state
