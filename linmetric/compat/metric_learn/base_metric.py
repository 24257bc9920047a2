"""metric-learn's base classes, as adapters over a fitted linmetric learner.

Every compatibility learner fits a linmetric learner (stored as ``learner_``)
and answers the metric methods from it: ``components_``, ``transform``,
``get_mahalanobis_matrix``, ``get_metric``, ``pair_distance`` and
``pair_score``. The tuple learners (pairs, triplets, quadruplets) fit through
linmetric's tuple estimators (stored as ``estimator_``).

Inputs follow metric-learn's conventions: with a ``preprocessor`` (a sample
matrix or a function of indices), samples may be given as a 1-D array of
indices and tuples as an integer array of shape ``(n_tuples, tuple_size)``.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.metrics import roc_auc_score
from sklearn.utils.validation import check_array, check_is_fitted

from ..._tuples import tuple_input_tags

__all__ = [
    "BaseMetricLearner",
    "MahalanobisMixin",
    "MetricTransformer",
]

_STRATEGIES = ("accuracy", "f_beta", "max_tpr", "max_tnr")


class BaseMetricLearner(BaseEstimator):
    """Base class of the compatibility learners.

    Parameters
    ----------
    preprocessor : array-like, callable or None, default=None
        Where indices point: a sample matrix, or a function mapping a 1-D
        array of indices to the 2-D array of their points.
    """

    def __init__(self, preprocessor=None):
        self.preprocessor = preprocessor

    def score_pairs(self, pairs):
        """Learned distances of pairs (deprecated; use :meth:`pair_distance`).

        Emits a ``FutureWarning``, as metric-learn 0.7.0 did.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)

        Returns
        -------
        distances : ndarray of shape (n_pairs,)
        """
        warnings.warn(
            "score_pairs is deprecated: use pair_distance for distances or "
            "pair_score for similarity scores (negated distances).",
            FutureWarning,
            stacklevel=2,
        )
        return self.pair_distance(pairs)

    def pair_score(self, pairs):
        """Similarity scores of pairs: the negated learned distances.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)
            Points, or indices into ``preprocessor``.

        Returns
        -------
        scores : ndarray of shape (n_pairs,)
        """
        return -self.pair_distance(pairs)

    def pair_distance(self, pairs):
        """Learned distances of pairs; see :class:`MahalanobisMixin`."""
        raise NotImplementedError

    def get_metric(self):
        """The learned distance as a callable; see :class:`MahalanobisMixin`."""
        raise NotImplementedError


class MetricTransformer:
    """Learners that map samples into the learned space."""

    def transform(self, X):
        """Map samples into the learned space; see :class:`MahalanobisMixin`."""
        raise NotImplementedError


class MahalanobisMixin(
    ClassNamePrefixFeaturesOutMixin, BaseMetricLearner, MetricTransformer
):
    """The metric methods, answered by the fitted linmetric learner ``learner_``.

    Subclasses build the linmetric learner in ``_make_learner`` and call
    ``_store(learner)`` once it is fitted.
    """

    def _store(self, learner):
        """Keep the fitted linmetric learner and expose what it learned."""
        self.learner_ = learner
        self.components_ = learner.components_
        self.n_features_in_ = learner.n_features_in_
        if hasattr(learner, "feature_names_in_"):
            self.feature_names_in_ = learner.feature_names_in_
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        for name in ("n_iter_", "bounds_"):
            if hasattr(learner, name):
                setattr(self, name, getattr(learner, name))
        self.preprocessor_ = self.preprocessor

    def transform(self, X):
        """Map samples into the learned space, ``X @ components_.T``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples,)
            Points, or indices into ``preprocessor``.

        Returns
        -------
        X_embedded : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self, "learner_")
        return self.learner_.transform(samples(X, self.preprocessor_))

    def pair_distance(self, pairs):
        """Learned distances ``||L x - L x'||`` of pairs.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)
            Points, or indices into ``preprocessor``.

        Returns
        -------
        distances : ndarray of shape (n_pairs,)
        """
        check_is_fitted(self, "learner_")
        return self.learner_.pair_distance(tuples(pairs, self.preprocessor_, 2))

    def get_metric(self):
        """The learned distance as a callable ``metric(u, v, squared=False)``.

        It works as ``metric=`` in scikit-learn's neighbour estimators and in
        :func:`scipy.spatial.distance.cdist`, and holds a copy of
        ``components_``: refitting does not change it.

        Returns
        -------
        metric : callable
        """
        check_is_fitted(self, "learner_")
        return MahalanobisMetric(np.array(self.components_, dtype=float))

    def get_mahalanobis_matrix(self):
        """The matrix ``M = L^T L`` of the learned distance.

        Returns
        -------
        M : ndarray of shape (n_features, n_features)
        """
        check_is_fitted(self, "learner_")
        return self.learner_.get_mahalanobis_matrix()

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            learner_tags = self._make_learner().__sklearn_tags__()
        tags.transformer_tags = learner_tags.transformer_tags
        tags.target_tags = learner_tags.target_tags
        tags.input_tags.allow_nan = False
        return tags


class _SupervisedMixin(TransformerMixin):
    """``fit(X, y)``: the linmetric learner fits on labelled samples."""

    def fit(self, X, y):
        """Fit the metric on labelled samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples,)
            Points, or indices into ``preprocessor``.
        y : array-like of shape (n_samples,)
            Labels (targets for :class:`MLKR`).

        Returns
        -------
        self
        """
        X = samples(X, self.preprocessor)
        learner = self._make_learner(X=X, y=y)
        learner.fit(X, y)
        self._store(learner)
        return self


class _SupervisedMapLearner(_SupervisedMixin, MahalanobisMixin):
    """A linmetric learner of a map from labelled samples (NCA, MLKR).

    ``tol=None`` keeps the linmetric learner's default tolerance; a float is
    passed on.
    """

    _linmetric_class = None

    def _make_learner(self, X=None, y=None):
        learner = self._linmetric_class(
            n_components=self.n_components,
            init=self.init,
            max_iter=self.max_iter,
            verbose=self.verbose,
            random_state=self.random_state,
        )
        if self.tol is not None:
            learner.set_params(tol=self.tol)
        return learner


class _PairsClassifierMixin(ClassifierMixin, BaseMetricLearner):
    """Pairs learners: fit on labelled pairs, classify pairs with a threshold.

    ``threshold_`` is a distance, as in metric-learn: a pair is predicted
    similar (+1) when its learned distance is at most ``threshold_``.
    """

    _tuple_size = 2

    def _fit_pairs(self, pairs, y, calibration_params, learner=None):
        from ... import PairsClassifier

        calibration_params = dict(calibration_params or {})
        _check_calibration(**calibration_params)
        if learner is None:
            learner = self._make_learner()
        estimator = PairsClassifier(
            learner, preprocessor=self.preprocessor, threshold="auto"
        )
        estimator.fit(pairs, y)
        self.estimator_ = estimator
        self._store(estimator.learner_)
        self.classes_ = np.array([-1, 1])
        self.threshold_ = -estimator.threshold_
        if calibration_params.get("strategy", "accuracy") != "accuracy":
            self.calibrate_threshold(pairs, y, **calibration_params)
        return self

    def predict(self, pairs):
        """+1 (similar) where the learned distance is at most ``threshold_``.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)

        Returns
        -------
        y_pred : ndarray of shape (n_pairs,)
            +1 or -1.
        """
        check_is_fitted(self, "learner_")
        if getattr(self, "threshold_", None) is None:
            raise AttributeError(
                "A threshold for this estimator has not been set: call its "
                "set_threshold or calibrate_threshold method."
            )
        return np.where(self.pair_distance(pairs) <= self.threshold_, 1, -1)

    def decision_function(self, pairs):
        """The negated learned distances: higher means more similar.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)

        Returns
        -------
        scores : ndarray of shape (n_pairs,)
        """
        return self.pair_score(pairs)

    def score(self, pairs, y):
        """ROC AUC of :meth:`decision_function` on labelled pairs, as in metric-learn.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)
        y : array-like of shape (n_pairs,)
            +1 or -1.

        Returns
        -------
        score : float
        """
        return roc_auc_score(y, self.decision_function(pairs))

    def set_threshold(self, threshold):
        """Set ``threshold_``, the largest distance of a pair predicted similar.

        Parameters
        ----------
        threshold : float

        Returns
        -------
        self
        """
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise ValueError(
                f"threshold must be a real number; got {type(threshold).__name__}."
            )
        self.threshold_ = float(threshold)
        return self

    def calibrate_threshold(
        self, pairs_valid, y_valid, strategy="accuracy", min_rate=None, beta=1.0
    ):
        """Choose ``threshold_`` on held-out labelled pairs.

        Parameters
        ----------
        pairs_valid : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)
        y_valid : array-like of shape (n_pairs,)
            +1 or -1, both present.
        strategy : {'accuracy', 'f_beta', 'max_tpr', 'max_tnr'}, default='accuracy'
            What the threshold maximises: accuracy; the F-beta score of the
            similar class; the true-positive rate with a true-negative rate of
            at least ``min_rate``; the true-negative rate with a
            true-positive rate of at least ``min_rate``.
        min_rate : float in [0, 1] or None, default=None
            Required by 'max_tpr' and 'max_tnr'.
        beta : float, default=1.0
            Weight of recall for 'f_beta'.

        Returns
        -------
        self
        """
        check_is_fitted(self, "learner_")
        _check_calibration(strategy, min_rate, beta)
        self.estimator_.calibrate_threshold(
            pairs_valid, y_valid, strategy=strategy, min_rate=min_rate, beta=beta
        )
        self.threshold_ = -self.estimator_.threshold_
        return self

    def __sklearn_tags__(self):
        return tuple_input_tags(super().__sklearn_tags__())


class _OrderedTuplesMixin(ClassifierMixin, BaseMetricLearner):
    """Triplets and quadruplets: a tuple holds when its first pair is closer."""

    def _fit_tuples(self, estimator_class, tuples_, **fit_params):
        estimator = estimator_class(
            self._make_learner(), preprocessor=self.preprocessor
        ).fit(tuples_, **fit_params)
        self.estimator_ = estimator
        self._store(estimator.learner_)
        self.classes_ = np.array([-1, 1])
        return self

    def decision_function(self, tuples_):
        """Distance of the second pair minus that of the first; positive when it holds.

        Parameters
        ----------
        tuples_ : array-like of shape (n_tuples, tuple_size, n_features) or (n_tuples, tuple_size)

        Returns
        -------
        scores : ndarray of shape (n_tuples,)
        """
        check_is_fitted(self, "learner_")
        return self.estimator_.decision_function(tuples_)

    def score(self, tuples_):
        """Fraction of tuples predicted in the right order (a tie counts half).

        Returns
        -------
        score : float
        """
        return float(np.mean(self.predict(tuples_)) / 2 + 0.5)

    def __sklearn_tags__(self):
        return tuple_input_tags(super().__sklearn_tags__())


class _TripletsClassifierMixin(_OrderedTuplesMixin):
    """Triplets learners: ``(a, b, c)`` means ``d(a, b) < d(a, c)``."""

    _tuple_size = 3

    def predict(self, triplets):
        """+1 where ``d(a, b) < d(a, c)``, else -1.

        Parameters
        ----------
        triplets : array-like of shape (n_triplets, 3, n_features) or (n_triplets, 3)

        Returns
        -------
        y_pred : ndarray of shape (n_triplets,)
        """
        return np.where(self.decision_function(triplets) > 0, 1, -1)

    def decision_function(self, triplets):
        """``d(a, c) - d(a, b)``: positive when the triplet holds."""
        return super().decision_function(triplets)

    def score(self, triplets):
        """Fraction of triplets predicted in the right order."""
        return super().score(triplets)


class _QuadrupletsClassifierMixin(_OrderedTuplesMixin):
    """Quadruplets learners: ``(a, b, c, d)`` means ``d(a, b) < d(c, d)``."""

    _tuple_size = 4

    def predict(self, quadruplets):
        """The sign of :meth:`decision_function`: +1 holds, -1 not, 0 a tie.

        Parameters
        ----------
        quadruplets : array-like of shape (n_quadruplets, 4, n_features) or (n_quadruplets, 4)

        Returns
        -------
        y_pred : ndarray of shape (n_quadruplets,)
        """
        return np.sign(self.decision_function(quadruplets))

    def decision_function(self, quadruplets):
        """``d(c, d) - d(a, b)``: positive when the quadruplet holds."""
        return super().decision_function(quadruplets)

    def score(self, quadruplets):
        """Fraction of quadruplets predicted in the right order (a tie counts half)."""
        return super().score(quadruplets)


class MahalanobisMetric:
    """``metric(u, v, squared=False) = ||L u - L v||``, picklable."""

    def __init__(self, components):
        self.components = components

    def __call__(self, u, v, squared=False):
        diff = self.components @ (
            np.asarray(u, dtype=float).ravel() - np.asarray(v, dtype=float).ravel()
        )
        distance = float(diff @ diff)
        return distance if squared else float(np.sqrt(distance))

    def __repr__(self):
        return f"MahalanobisMetric(n_components={self.components.shape[0]})"


# --- inputs ---------------------------------------------------------------


def samples(X, preprocessor):
    """X as points: a 1-D integer X with a preprocessor is a list of indices."""
    if preprocessor is None or not hasattr(X, "__len__"):
        return X
    array = np.asarray(X)
    if array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
        return _lookup(array, preprocessor)
    return X


def tuples(data, preprocessor, size):
    """Tuples as points: an integer ``(n, size)`` array with a preprocessor is indices."""
    array = np.asarray(data)
    if (
        preprocessor is not None
        and array.ndim == 2
        and array.shape[1] == size
        and np.issubdtype(array.dtype, np.integer)
    ):
        points = _lookup(array.ravel(), preprocessor)
        return points.reshape(*array.shape, points.shape[1])
    if array.ndim == 2 and array.shape[1] == size and preprocessor is None:
        raise ValueError(
            f"tuples of shape {array.shape} look like indices, but no "
            "preprocessor was given: pass preprocessor=X to the learner, or "
            f"tuples of points of shape (n_tuples, {size}, n_features)."
        )
    return array


def _lookup(indices, preprocessor):
    if callable(preprocessor):
        return check_array(preprocessor(indices), input_name="preprocessor output")
    points = check_array(preprocessor, input_name="preprocessor")
    if indices.size and (indices.min() < 0 or indices.max() >= points.shape[0]):
        raise ValueError(
            f"indices must be rows of the preprocessor, in [0, "
            f"{points.shape[0] - 1}]; got values from {indices.min()} to "
            f"{indices.max()}."
        )
    return points[indices]


def _check_calibration(strategy="accuracy", min_rate=None, beta=1.0):
    """Reject calibration parameters before any fitting, as metric-learn did."""
    if strategy not in _STRATEGIES:
        raise ValueError(
            f"strategy must be one of {', '.join(map(repr, _STRATEGIES))}; "
            f"got {strategy!r}."
        )
    if strategy in ("max_tpr", "max_tnr") and not (
        isinstance(min_rate, numbers.Real) and 0 <= min_rate <= 1
    ):
        raise ValueError(
            f"min_rate must be a number in [0, 1] for strategy={strategy!r}; "
            f"got {min_rate!r}."
        )
    if strategy == "f_beta" and not isinstance(beta, numbers.Real):
        raise ValueError(f"beta must be a real number; got {beta!r}.")


def renamed(estimator, old, new, value):
    """The value of a parameter metric-learn renamed, warning if the old name is set.

    ``old`` holds the string ``'deprecated'`` unless the user set it; then it
    wins over ``new`` and a ``FutureWarning`` says so, as in metric-learn.
    """
    return renamed_argument(
        type(estimator).__name__, old, getattr(estimator, old), new, value
    )


def renamed_argument(owner, old, old_value, new, value):
    """``renamed`` for a method argument: ``old_value`` wins, with a warning, if set."""
    if isinstance(old_value, str) and old_value == "deprecated":
        return value
    warnings.warn(
        f"The parameter {old!r} of {owner} was renamed {new!r}; {old!r} will "
        f"be removed. Use {new}={old_value!r}.",
        FutureWarning,
        stacklevel=4,
    )
    return old_value


def count_features(X):
    """The number of columns of a 2-D X, or None."""
    shape = np.shape(np.asarray(X)) if X is not None else ()
    return shape[1] if len(shape) == 2 else None


def n_constraints_default(n_constraints, y):
    """metric-learn's default number of constraints: ``20 * n_classes**2``."""
    if n_constraints is not None or y is None:
        return n_constraints
    return 20 * np.unique(np.asarray(y)).shape[0] ** 2


def with_pairs_drawn(learner, n_constraints, y):
    """``learner`` set to draw metric-learn's number of pairs from labels.

    metric-learn draws ``n_constraints`` similar and as many dissimilar
    pairs (``n_constraints_default`` when None); a linmetric pairs learner
    counts them together. Without ``n_constraints`` or ``y`` the learner's
    own default stays.
    """
    n_constraints = n_constraints_default(n_constraints, y)
    if n_constraints is not None:
        learner.set_params(n_constraints=2 * n_constraints)
    return learner
