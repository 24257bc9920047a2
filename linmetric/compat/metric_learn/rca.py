"""RCA and RCA_Supervised with metric-learn's parameters, on :class:`linmetric.RCA`."""

from sklearn.base import TransformerMixin

from ... import RCA as _LinmetricRCA
from .base_metric import MahalanobisMixin, renamed, samples

__all__ = ["RCA", "RCA_Supervised"]


class RCA(TransformerMixin, MahalanobisMixin):
    """Relevant Components Analysis from chunklets; metric-learn's ``RCA``.

    ``fit(X, chunks)`` takes a chunklet id per sample (-1: in no chunklet)
    and fits :meth:`linmetric.RCA.fit_chunklets`. A singular within-chunklet
    covariance is restricted to its range with a warning (metric-learn
    returned NaN or failed).

    Parameters
    ----------
    n_components : int or None, default=None
    preprocessor : array-like, callable or None, default=None
    """

    def __init__(self, n_components=None, preprocessor=None):
        self.n_components = n_components
        self.preprocessor = preprocessor

    def _make_learner(self, X=None, y=None):
        return _LinmetricRCA(n_components=self.n_components)

    def fit(self, X, chunks):
        """Fit on chunklets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples,)
        chunks : array-like of shape (n_samples,)
            Chunklet id of each sample, -1 for none.

        Returns
        -------
        self
        """
        X = samples(X, self.preprocessor)
        self._store(self._make_learner().fit_chunklets(X, chunks))
        return self


class RCA_Supervised(RCA):
    """RCA on chunklets drawn from class labels; metric-learn's ``RCA_Supervised``.

    Draws ``n_chunks`` disjoint chunklets of ``chunk_size`` same-class points
    (a ``ValueError`` if the classes cannot supply them, as in metric-learn)
    and fits :class:`linmetric.RCA`.

    Parameters
    ----------
    n_components : int or None, default=None
    n_chunks : int, default=100
    chunk_size : int, default=2
    preprocessor : array-like, callable or None, default=None
    random_state : int, RandomState or None, default=None
    num_chunks : int, optional
        Former name of ``n_chunks`` (``FutureWarning``).
    """

    def __init__(
        self,
        n_components=None,
        n_chunks=100,
        chunk_size=2,
        preprocessor=None,
        random_state=None,
        num_chunks="deprecated",
    ):
        self.n_components = n_components
        self.n_chunks = n_chunks
        self.chunk_size = chunk_size
        self.preprocessor = preprocessor
        self.random_state = random_state
        self.num_chunks = num_chunks

    def _make_learner(self, X=None, y=None):
        return _LinmetricRCA(
            n_components=self.n_components,
            n_chunks=renamed(self, "num_chunks", "n_chunks", self.n_chunks),
            chunk_size=self.chunk_size,
            random_state=self.random_state,
        )

    def fit(self, X, y):
        """Fit on chunklets drawn from class labels.

        Returns
        -------
        self
        """
        X = samples(X, self.preprocessor)
        self._store(self._make_learner().fit(X, y))
        return self
