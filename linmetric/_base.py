"""The base class every linmetric learner derives from."""

import functools

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted

from ._validation import validate_pairs, validate_X


class MetricLearner(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class of the linear metric learners.

    A learner's ``fit`` sets ``components_``, the linear map ``L`` of shape
    ``(n_components, n_features)``. Everything else follows from it:

    - ``transform(X) = X @ L.T``;
    - the Mahalanobis matrix ``M = L.T @ L``, computed on demand;
    - the learned distance ``d(x, x') = ||L x - L x'|| = sqrt((x - x')^T M (x - x'))``.

    Subclasses implement ``fit`` only. Every ``fit``, ``fit_pairs``,
    ``fit_triplets`` and ``fit_quadruplets`` a subclass defines is checked
    on return: a map with an infinite or NaN entry raises a ValueError
    instead of being kept.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _FIT_METHODS:
            method = cls.__dict__.get(name)
            if method is not None and not hasattr(method, "_checks_the_map"):
                setattr(cls, name, checking_the_map(method))

    def transform(self, X):
        """Map X into the learned space, ``X @ components_.T``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to transform.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The transformed data, float32 if X and ``components_`` are.
            A Dask array in gives a lazy Dask array out, transformed block
            of rows by block of rows.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            return map_row_blocks(
                self.transform, X, n_columns=self.components_.shape[0]
            )
        X = validate_X(self, X, reset=False)
        components = self.components_
        if components.dtype != X.dtype:
            components = components.astype(np.result_type(X, components))
        return X @ components.T

    def get_mahalanobis_matrix(self):
        """The matrix ``M = L^T L`` of the learned distance.

        Returns
        -------
        M : ndarray of shape (n_features, n_features)
            Symmetric positive semi-definite, computed in float64. It has
            the dtype of ``components_``, except where float32
            ``components_`` give an ``M`` outside float32's range (a learner
            fitted on data scaled by 1e-30 has ``L ~ 1e30`` and
            ``M ~ 1e60``; on data scaled by 1e30, ``M ~ 1e-60``): that
            ``M`` is float64, not inf or 0.
        """
        check_is_fitted(self)
        components = self.components_
        M = components.T.astype(np.float64) @ components.astype(np.float64)
        if components.dtype == np.float64 or not _fits(M, components.dtype):
            return M
        return M.astype(components.dtype)

    def pair_distance(self, pairs):
        """Learned distances between the two points of each pair.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features)
            Pairs of points.

        Returns
        -------
        distances : ndarray of shape (n_pairs,)
            ``||L x - L x'||`` for each pair ``(x, x')``.
        """
        check_is_fitted(self)
        pairs, _ = validate_pairs(pairs, n_features=self.n_features_in_)
        diff = (pairs[:, 0, :] - pairs[:, 1, :]) @ self.components_.T
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))

    def pair_score(self, pairs):
        """Similarity scores of pairs: the negated learned distances.

        Higher means more similar, as scikit-learn's scorers expect.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features)
            Pairs of points.

        Returns
        -------
        scores : ndarray of shape (n_pairs,)
        """
        return -self.pair_distance(pairs)

    def get_metric(self):
        """The learned distance as a function of two points.

        The returned callable ``metric(u, v)`` takes two 1-D arrays and
        returns a float, so it works as ``metric=`` in scikit-learn's
        neighbours estimators and in :func:`scipy.spatial.distance.cdist`.
        It holds a copy of ``components_``: refitting the learner does not
        change it.

        Returns
        -------
        metric : callable
        """
        check_is_fitted(self)
        return _LearnedMetric(self.components_.copy())

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


_FIT_METHODS = ("fit", "fit_pairs", "fit_triplets", "fit_quadruplets")


def checking_the_map(fit):
    """``fit``, then a ValueError if ``components_`` is not finite.

    :class:`MetricLearner` applies it to its subclasses' fit methods; other
    estimators with a ``components_`` (one map per class) apply it
    themselves.
    """

    @functools.wraps(fit)
    def checked(self, *args, **kwargs):
        result = fit(self, *args, **kwargs)
        components = getattr(self, "components_", None)
        if components is not None and not np.all(np.isfinite(components)):
            del self.components_
            components = np.asarray(components)
            dtype = components.dtype
            if np.any(np.isnan(components)):
                raise ValueError(
                    f"{type(self).__name__}: the fit gave a map with NaN "
                    "entries, which should not happen; please report it with "
                    "the data and parameters that caused it."
                )
            raise ValueError(
                f"{type(self).__name__}: the learned map does not fit in "
                f"{dtype}: some of its entries overflow. A map scales as the "
                "inverse of the spread of the data, which is too small here "
                f"(below about {np.finfo(dtype).tiny:.0e}, the smallest normal "
                f"{dtype}); rescale X, for example with StandardScaler."
            )
        return result

    checked._checks_the_map = True
    return checked


def is_dask_array(X):
    """Whether X is a Dask array (checked without importing Dask)."""
    return type(X).__module__.partition(".")[0] == "dask" and hasattr(X, "map_blocks")


def map_row_blocks(func, X, *, n_columns=None):
    """Apply ``func`` to each block of rows of the Dask array ``X``, lazily.

    ``func`` maps an ``(n_rows, n_features)`` ndarray to an
    ``(n_rows, n_columns)`` array, or to an ``(n_rows,)`` array when
    ``n_columns`` is None. Blocks are first joined along the features, so
    that each call sees whole rows. The output type is found by calling
    ``func`` on one row of zeros.
    """
    X = X.rechunk({1: -1})
    meta = func(np.zeros((1, X.shape[1]), dtype=X.dtype))[:0]
    if n_columns is None:
        return X.map_blocks(func, drop_axis=1, dtype=meta.dtype, meta=meta)
    return X.map_blocks(
        func, chunks=(X.chunks[0], (n_columns,)), dtype=meta.dtype, meta=meta
    )


class SupervisedMetricLearner(MetricLearner):
    """A metric learner whose ``fit(X, y)`` needs ``y``.

    ``y`` holds class labels, chunk labels (RCA) or real-valued targets
    (MLKR); learners that also fit from tuples take them through
    ``fit_pairs``, ``fit_triplets`` or ``fit_quadruplets``.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


def _fits(M, dtype):
    """Whether ``M`` keeps its largest entries as normal numbers of ``dtype``:
    the largest is finite there, and so is every entry within the dtype's
    precision of it (down to ``eps`` times the largest)."""
    info = np.finfo(dtype)
    largest = float(np.max(np.abs(M), initial=0.0))
    return largest == 0.0 or info.tiny / info.eps <= largest <= info.max


class _LearnedMetric:
    """``metric(u, v) = ||L u - L v||``; a picklable callable."""

    def __init__(self, components):
        self.components = components

    def __call__(self, u, v):
        diff = self.components @ (
            np.asarray(u, dtype=float) - np.asarray(v, dtype=float)
        )
        return float(np.sqrt(diff @ diff))

    def __repr__(self):
        return f"LearnedMetric(n_components={self.components.shape[0]})"
