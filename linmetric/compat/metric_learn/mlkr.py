"""MLKR with metric-learn's parameters, on :class:`linmetric.MLKR`."""

from ... import MLKR as _LinmetricMLKR
from .base_metric import _SupervisedMapLearner

__all__ = ["MLKR"]


class MLKR(_SupervisedMapLearner):
    """Metric Learning for Kernel Regression; metric-learn's ``MLKR`` on :class:`linmetric.MLKR`.

    ``y`` holds real-valued targets. ``tol=None`` uses linmetric's default
    tolerance (1e-6); a float is passed on.

    Parameters
    ----------
    n_components : int or None, default=None
    init : {'auto', 'pca', 'identity', 'random'} or array, default='auto'
    tol : float or None, default=None
    max_iter : int, default=1000
    verbose : bool, default=False
    preprocessor : array-like, callable or None, default=None
    random_state : int, RandomState or None, default=None
    """

    _linmetric_class = _LinmetricMLKR

    def __init__(
        self,
        n_components=None,
        init="auto",
        tol=None,
        max_iter=1000,
        verbose=False,
        preprocessor=None,
        random_state=None,
    ):
        self.n_components = n_components
        self.init = init
        self.tol = tol
        self.max_iter = max_iter
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state
