"""Covariance with metric-learn's signature, on :class:`linmetric.Covariance`."""

from sklearn.base import TransformerMixin

from ... import Covariance as _LinmetricCovariance
from .base_metric import MahalanobisMixin, samples

__all__ = ["Covariance"]


class Covariance(TransformerMixin, MahalanobisMixin):
    """The inverse-covariance metric; metric-learn's ``Covariance``.

    Fits :class:`linmetric.Covariance` (pseudo-inverse of the covariance,
    no shrinkage), the metric metric-learn's ``Covariance`` learned.

    Parameters
    ----------
    preprocessor : array-like, callable or None, default=None
        Turns a 1-D array of indices into points.
    """

    def __init__(self, preprocessor=None):
        self.preprocessor = preprocessor

    def _make_learner(self, X=None, y=None):
        return _LinmetricCovariance()

    def fit(self, X, y=None):
        """Fit the inverse covariance of X; ``y`` is ignored.

        Returns
        -------
        self
        """
        X = samples(X, self.preprocessor)
        self._store(self._make_learner().fit(X))
        return self
