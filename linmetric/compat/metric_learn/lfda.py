"""LFDA with metric-learn's parameters, on :class:`linmetric.LFDA`."""

import warnings

from ... import LFDA as _LinmetricLFDA
from .base_metric import MahalanobisMixin, _SupervisedMixin, count_features

__all__ = ["LFDA"]


class LFDA(_SupervisedMixin, MahalanobisMixin):
    """Local Fisher Discriminant Analysis; metric-learn's ``LFDA`` on :class:`linmetric.LFDA`.

    ``k`` is the neighbour of the local scaling. As in metric-learn, None
    means ``min(7, n_features - 1)`` (at least 1) and a ``k`` of
    ``n_features`` or more is cut to ``n_features - 1`` with a warning;
    linmetric further cuts it to each class's size minus one.

    Parameters
    ----------
    n_components : int or None, default=None
    k : int or None, default=None
    embedding_type : {'weighted', 'orthonormalized', 'plain'}, default='weighted'
        linmetric's ``embedding``.
    preprocessor : array-like, callable or None, default=None
    """

    def __init__(
        self, n_components=None, k=None, embedding_type="weighted", preprocessor=None
    ):
        self.n_components = n_components
        self.k = k
        self.embedding_type = embedding_type
        self.preprocessor = preprocessor

    def _make_learner(self, X=None, y=None):
        k = self.k
        n_features = count_features(X)
        if n_features is not None:
            if k is None:
                k = max(1, min(7, n_features - 1))
            elif isinstance(k, int) and k >= n_features > 1:
                warnings.warn(
                    f"k={k} is not below n_features={n_features}; using "
                    f"k={n_features - 1} as metric-learn did.",
                    UserWarning,
                    stacklevel=3,
                )
                k = n_features - 1
        return _LinmetricLFDA(
            n_components=self.n_components,
            k=7 if k is None else k,
            embedding=self.embedding_type,
        )
