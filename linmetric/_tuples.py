"""Estimators on tuples: learn a metric from pairs, triplets or quadruplets.

Each class wraps a metric learner that implements the tuple protocol
(``fit_pairs``, ``fit_triplets`` or ``fit_quadruplets``) and makes it a
scikit-learn estimator whose samples are tuples, so that ``cross_val_score``
and ``GridSearchCV`` split, fit and score tuples as they do samples.
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_array, check_is_fitted

from ._params import Interval, InvalidParameterError, StrOptions, validate_params
from ._validation import DENSE_FLOATS, check_points, validate_pair_labels

_CALIBRATION_STRATEGIES = ("accuracy", "f_beta", "max_tpr", "max_tnr")


def tuple_input_tags(tags):
    """``tags`` of an estimator whose samples are tuples.

    Samples are (n, k, n_features) points or (n, k) indices. scikit-learn's
    estimator checks feed 2-D samples only and skip estimators that do not
    take them.
    """
    tags.input_tags.two_d_array = False
    tags.input_tags.three_d_array = True
    return tags


class _TupleEstimator(BaseEstimator):
    """What the three tuple estimators share: the learner, tuple input, metric API.

    Subclasses set ``_tuple_size``, ``_fit_method`` and ``_tuple_name``.
    """

    _tuple_size = 0
    _fit_method = ""
    _tuple_name = ""

    def _check_learner(self):
        learner = self.learner
        if not isinstance(learner, BaseEstimator) or not callable(
            getattr(learner, self._fit_method, None)
        ):
            raise InvalidParameterError(
                f"The 'learner' parameter of {type(self).__name__} must be a "
                f"metric learner with a {self._fit_method} method; got "
                f"{learner!r}."
            )

    def _fit_learner(self, tuples, *args, **kwargs):
        validate_params(self)
        self._check_learner()
        points = self._points(tuples)
        learner = clone(self.learner)
        getattr(learner, self._fit_method)(points, *args, **kwargs)
        self.learner_ = learner
        return points

    def _points(self, tuples, size=None, name=None):
        """The tuples as points, shape ``(n_tuples, size, n_features)``.

        Tuples are either points already (a 3-D array) or, with a
        ``preprocessor``, integer indices of shape ``(n_tuples, size)``.
        ``size`` and ``name`` default to the estimator's own tuples.
        """
        size = self._tuple_size if size is None else size
        name = self._tuple_name if name is None else name
        shape = f"(n_{name}, {size}, n_features)"
        if not hasattr(tuples, "__array__") and not isinstance(tuples, (list, tuple)):
            raise TypeError(
                f"{name} must be an array of shape {shape} or of indices "
                f"(n_{name}, {size}); got {type(tuples).__name__}."
            )
        array = np.asarray(tuples)
        if array.ndim == 2 and array.shape[1] == size:
            points = self._points_from_indices(array, name)
        elif array.ndim == 3 and array.shape[1] == size:
            points = check_points(array, name)
        else:
            raise ValueError(
                f"{name} must have shape {shape} (points), or ({'n_' + name}, "
                f"{size}) (indices into the preprocessor); got shape "
                f"{array.shape}."
            )
        n_features = getattr(getattr(self, "learner_", None), "n_features_in_", None)
        if n_features is not None and points.shape[2] != n_features:
            raise ValueError(
                f"{name} have {points.shape[2]} features, but the estimator "
                f"was fitted with {n_features} features."
            )
        return points

    def _points_from_indices(self, indices, name):
        preprocessor = self.preprocessor
        if preprocessor is None:
            raise ValueError(
                f"{name} of shape {indices.shape} are indices, but no "
                "preprocessor was given: pass preprocessor=X (the sample "
                f"matrix the indices point into), or {name} of points of shape "
                f"(n_{name}, {indices.shape[1]}, n_features)."
            )
        if not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(
                f"{name} given as indices must hold integers; got dtype "
                f"{indices.dtype}."
            )
        if indices.size == 0:
            raise ValueError(f"{name} are empty; at least one is required.")
        flat = indices.ravel()
        if callable(preprocessor):
            points = check_array(
                preprocessor(flat), input_name="preprocessor output", **DENSE_FLOATS
            )
            if points.shape[0] != flat.shape[0]:
                raise ValueError(
                    f"preprocessor must map {flat.shape[0]} indices to "
                    f"{flat.shape[0]} points; it returned {points.shape[0]}."
                )
        else:
            samples = check_array(
                preprocessor, input_name="preprocessor", **DENSE_FLOATS
            )
            n_samples = samples.shape[0]
            if flat.min() < 0 or flat.max() >= n_samples:
                raise ValueError(
                    f"{name} must index rows of the preprocessor, in [0, "
                    f"{n_samples - 1}]; got values from {flat.min()} to "
                    f"{flat.max()}."
                )
            points = samples[flat]
        return points.reshape(*indices.shape, points.shape[1])

    def _distances(self, points, first, second):
        check_is_fitted(self)
        return self.learner_.pair_distance(points[:, [first, second]])

    # --- the learned metric, from the fitted learner ---------------------------

    @property
    def components_(self):
        """The learned map ``L`` of the fitted learner, ``learner_.components_``."""
        check_is_fitted(self)
        return self.learner_.components_

    def transform(self, X):
        """Map samples into the learned space; see the learner's ``transform``."""
        check_is_fitted(self)
        return self.learner_.transform(X)

    def get_mahalanobis_matrix(self):
        """The matrix ``M = L^T L`` of the learned distance."""
        check_is_fitted(self)
        return self.learner_.get_mahalanobis_matrix()

    def get_metric(self):
        """The learned distance as a callable ``metric(u, v)``."""
        check_is_fitted(self)
        return self.learner_.get_metric()

    def pair_distance(self, pairs):
        """Learned distances of pairs, given as points or as indices."""
        check_is_fitted(self)
        return self.learner_.pair_distance(self._points(pairs, 2, "pairs"))

    def pair_score(self, pairs):
        """Negated learned distances of pairs, given as points or as indices."""
        return -self.pair_distance(pairs)

    def __sklearn_tags__(self):
        return tuple_input_tags(super().__sklearn_tags__())


class PairsClassifier(ClassifierMixin, _TupleEstimator):
    r"""Classify pairs as similar (+1) or dissimilar (-1) with a learned metric.

    Fits ``learner`` (cloned, stored as ``learner_``) on labelled pairs with
    its ``fit_pairs``, then predicts a pair similar when its score, the
    negated learned distance, is at least a threshold::

        decision_function(pair) = -d(x, x'),    predict = +1 if >= threshold_.

    The samples of this estimator are pairs, so :func:`~sklearn.model_selection.cross_val_score`
    and :class:`~sklearn.model_selection.GridSearchCV` split, fit and score
    pairs (``score`` is the accuracy); grid over the learner's parameters as
    ``learner__<name>``. Pairs are given either as points, shape
    ``(n_pairs, 2, n_features)``, or as integer indices, shape
    ``(n_pairs, 2)``, into the rows of ``preprocessor``.

    **Threshold.** With ``threshold='auto'`` (default), ``fit`` sets
    ``threshold_`` to the most accurate threshold on the training pairs; a
    float fixes it; None leaves it unset until :meth:`calibrate_threshold` is
    called on held-out pairs (``predict`` and ``score`` raise until then).
    Calibration scans every cut between consecutive distinct scores (plus
    "all similar" and "all dissimilar", at ``-inf`` and ``inf``) and keeps the
    best by the chosen strategy; the threshold is the midpoint of the cut.

    **Degenerate pairs** (a point paired with itself) are accepted: their
    distance is 0, the highest possible score, so they are predicted similar
    at any finite threshold. In fitting they carry no information; MMC and
    ITML leave them out of their updates.

    Parameters
    ----------
    learner : estimator
        A metric learner with a ``fit_pairs(pairs, pair_labels)`` method,
        such as :class:`ITML` or :class:`MMC`.
    preprocessor : array-like of shape (n_samples, n_features), callable or None, default=None
        Where index pairs point: a sample matrix, or a function that maps a
        1-D array of indices to the 2-D array of their points. None: pairs
        are points. A lambda cannot be pickled; use a module-level function.
    threshold : 'auto', float or None, default='auto'
        Threshold on ``decision_function``; see above.

    Attributes
    ----------
    learner_ : estimator
        The fitted clone of ``learner``.
    threshold_ : float or None
        Pairs with ``decision_function >= threshold_`` are predicted similar.
    classes_ : ndarray of shape (2,)
        ``[-1, 1]``.
    components_ : ndarray of shape (n_components, n_features)
        ``learner_.components_``.

    See Also
    --------
    TripletsClassifier, QuadrupletsClassifier

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import cross_val_score
    >>> from linmetric import MMC, PairsClassifier
    >>> from linmetric._itml import sample_label_pairs
    >>> X, y = load_iris(return_X_y=True)
    >>> rows, cols, labels = sample_label_pairs(y, 200, np.random.RandomState(0))
    >>> pairs = np.stack([rows, cols], axis=1)  # indices into X
    >>> model = PairsClassifier(MMC(), preprocessor=X)
    >>> scores = cross_val_score(model, pairs, labels, cv=3)
    >>> bool(scores.mean() > 0.8)
    True
    >>> model.fit(pairs, labels).predict(pairs[:3]).tolist() == labels[:3].tolist()
    True
    """

    _tuple_size = 2
    _fit_method = "fit_pairs"
    _tuple_name = "pairs"

    _parameter_constraints = {
        "learner": [object],
        "preprocessor": ["array-like", "callable", None],
        "threshold": [StrOptions({"auto"}), numbers.Real, None],
    }

    def __init__(self, learner, *, preprocessor=None, threshold="auto"):
        self.learner = learner
        self.preprocessor = preprocessor
        self.threshold = threshold

    def fit(self, pairs, y):
        """Fit the learner on labelled pairs and set the threshold.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)
            Pairs of points, or of indices into ``preprocessor``.
        y : array-like of shape (n_pairs,)
            +1 (similar) or -1 (dissimilar).

        Returns
        -------
        self : PairsClassifier
        """
        if y is None:
            raise ValueError("PairsClassifier.fit needs y: +1 or -1 for each pair.")
        n_pairs = np.shape(pairs)[0] if np.ndim(pairs) else 0
        labels = validate_pair_labels(y, n_pairs)
        self.threshold_ = None
        points = self._fit_learner(pairs, labels)
        self.classes_ = np.array([-1, 1])
        if isinstance(self.threshold, str):
            self._calibrate(points, labels, "accuracy", None, 1.0)
        elif self.threshold is not None:
            self.threshold_ = float(self.threshold)
        return self

    def decision_function(self, pairs):
        """Similarity scores of pairs: the negated learned distances.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)

        Returns
        -------
        scores : ndarray of shape (n_pairs,)
        """
        check_is_fitted(self)
        return -self._distances(self._points(pairs), 0, 1)

    def predict(self, pairs):
        """+1 (similar) where ``decision_function >= threshold_``, else -1.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)

        Returns
        -------
        y_pred : ndarray of shape (n_pairs,)
        """
        check_is_fitted(self)
        if self.threshold_ is None:
            raise ValueError(
                "PairsClassifier has no threshold: it was fitted with "
                "threshold=None. Call calibrate_threshold(pairs, y) on "
                "held-out pairs, or set threshold='auto' or a float."
            )
        scores = self.decision_function(pairs)
        return np.where(scores >= self.threshold_, 1, -1)

    def calibrate_threshold(
        self, pairs, y, *, strategy="accuracy", min_rate=None, beta=1.0
    ):
        """Choose ``threshold_`` on held-out pairs.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)
            Pairs, with both labels present.
        y : array-like of shape (n_pairs,)
            +1 (similar) or -1 (dissimilar).
        strategy : {'accuracy', 'f_beta', 'max_tpr', 'max_tnr'}, default='accuracy'
            What the threshold maximises: the accuracy; the F-beta score of
            the similar class; the true-positive rate subject to a
            true-negative rate of at least ``min_rate``; the true-negative
            rate subject to a true-positive rate of at least ``min_rate``.
            Ties go to the highest threshold.
        min_rate : float in [0, 1] or None, default=None
            The least rate allowed by 'max_tpr' and 'max_tnr' (required there,
            ignored otherwise).
        beta : float, default=1.0
            Weight of recall against precision for 'f_beta' (positive).

        Returns
        -------
        self : PairsClassifier
        """
        check_is_fitted(self)
        if strategy not in _CALIBRATION_STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(map(repr, _CALIBRATION_STRATEGIES))}; "
                f"got {strategy!r}."
            )
        if strategy in ("max_tpr", "max_tnr"):
            if not Interval(numbers.Real, 0, 1, closed="both").accepts(min_rate):
                raise ValueError(
                    f"strategy={strategy!r} needs min_rate, a float in [0, 1]; "
                    f"got {min_rate!r}."
                )
        if strategy == "f_beta" and not Interval(
            numbers.Real, 0, None, closed="neither"
        ).accepts(beta):
            raise ValueError(f"beta must be a positive float; got {beta!r}.")
        points = self._points(pairs)
        labels = validate_pair_labels(y, points.shape[0])
        self._calibrate(points, labels, strategy, min_rate, beta)
        return self

    def _calibrate(self, points, labels, strategy, min_rate, beta):
        if not (np.any(labels > 0) and np.any(labels < 0)):
            raise ValueError(
                "Calibrating the threshold needs both similar (+1) and "
                f"dissimilar (-1) pairs; got only {int(labels[0]):+d}."
            )
        scores = -self._distances(points, 0, 1)
        self.threshold_ = best_threshold(scores, labels, strategy, min_rate, beta)

    def score(self, pairs, y, sample_weight=None):
        """Accuracy of ``predict`` on labelled pairs.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2)
        y : array-like of shape (n_pairs,)
            +1 or -1.
        sample_weight : array-like of shape (n_pairs,), optional

        Returns
        -------
        score : float
        """
        y = validate_pair_labels(y, np.shape(pairs)[0])
        return super().score(pairs, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


def best_threshold(scores, labels, strategy, min_rate=None, beta=1.0):
    """The threshold on ``scores`` that is best by ``strategy``.

    Predicting +1 where ``score >= threshold``, every distinct cut is tried:
    thresholds between consecutive distinct scores (midpoints), ``inf`` (all
    -1) and ``-inf`` (all +1). Ties go to the highest threshold.

    Returns
    -------
    threshold : float
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    positive = labels[order] > 0
    n_positive = positive.sum()
    n_negative = positive.shape[0] - n_positive
    # Cut k predicts +1 for the k highest scores; only cuts between distinct
    # scores (and the two ends) are possible.
    true_pos = np.concatenate(([0], np.cumsum(positive)))
    false_pos = np.concatenate(([0], np.cumsum(~positive)))
    n = sorted_scores.shape[0]
    k = np.arange(n + 1)
    possible = np.ones(n + 1, dtype=bool)
    possible[1:n] = sorted_scores[:-1] > sorted_scores[1:]
    tpr = true_pos / n_positive
    tnr = (n_negative - false_pos) / n_negative
    if strategy == "accuracy":
        value = (true_pos + n_negative - false_pos) / n
    elif strategy == "f_beta":
        b2 = beta * beta
        denominator = (1 + b2) * true_pos + b2 * (n_positive - true_pos) + false_pos
        value = np.divide(
            (1 + b2) * true_pos,
            denominator,
            out=np.zeros(n + 1),
            where=denominator > 0,
        )
    elif strategy == "max_tpr":
        value = np.where(tnr >= min_rate, tpr, -1.0)
    else:  # max_tnr
        value = np.where(tpr >= min_rate, tnr, -1.0)
    value = np.where(possible, value, -np.inf)
    best = int(k[np.argmax(value)])
    if best == 0:
        return np.inf
    if best == n:
        return -np.inf
    return float((sorted_scores[best - 1] + sorted_scores[best]) / 2)


class _OrderedTupleEstimator(_TupleEstimator):
    """Triplets and quadruplets: a tuple is satisfied when its first pair is closer."""

    _parameter_constraints = {
        "learner": [object],
        "preprocessor": ["array-like", "callable", None],
    }

    def __init__(self, learner, *, preprocessor=None):
        self.learner = learner
        self.preprocessor = preprocessor

    def predict(self, tuples):
        """+1 where the tuple's constraint holds under the learned metric, else -1.

        Ties (``decision_function == 0``) are not satisfied.

        Returns
        -------
        y_pred : ndarray of shape (n_tuples,)
        """
        return np.where(self.decision_function(tuples) > 0, 1, -1)

    def score(self, tuples, y=None, sample_weight=None):
        """The (weighted) fraction of tuples whose constraint holds.

        Parameters
        ----------
        tuples : array-like
            As in :meth:`fit`.
        y : None
            Ignored; tuples carry their meaning in their order.
        sample_weight : array-like of shape (n_tuples,), optional

        Returns
        -------
        score : float
        """
        satisfied = self.predict(tuples) > 0
        return float(np.average(satisfied, weights=sample_weight))


class TripletsClassifier(_OrderedTupleEstimator):
    r"""Learn a metric from triplets "a is closer to b than to c", and test them.

    Fits ``learner`` (cloned, stored as ``learner_``) with its
    ``fit_triplets``. A triplet ``(a, b, c)`` is satisfied when
    ``d(a, b) < d(a, c)``::

        decision_function(a, b, c) = d(a, c) - d(a, b),   predict = +1 if > 0.

    ``score`` is the fraction of triplets satisfied, so
    :func:`~sklearn.model_selection.cross_val_score` and
    :class:`~sklearn.model_selection.GridSearchCV` work on triplets without
    labels (pass no ``y``). Triplets are points, shape
    ``(n_triplets, 3, n_features)``, or integer indices, shape
    ``(n_triplets, 3)``, into ``preprocessor``. A triplet with ``b == c`` is
    never satisfied (its decision value is 0).

    Parameters
    ----------
    learner : estimator
        A metric learner with a ``fit_triplets(triplets)`` method.
    preprocessor : array-like of shape (n_samples, n_features), callable or None, default=None
        Where index triplets point; see :class:`PairsClassifier`.

    Attributes
    ----------
    learner_ : estimator
        The fitted clone of ``learner``.
    components_ : ndarray of shape (n_components, n_features)
        ``learner_.components_``.

    See Also
    --------
    PairsClassifier, QuadrupletsClassifier
    """

    _tuple_size = 3
    _fit_method = "fit_triplets"
    _tuple_name = "triplets"

    def fit(self, triplets, y=None):
        """Fit the learner on triplets.

        Parameters
        ----------
        triplets : array-like of shape (n_triplets, 3, n_features) or (n_triplets, 3)
            Points, or indices into ``preprocessor``; ``(a, b, c)`` means
            ``d(a, b) < d(a, c)``.
        y : None
            Ignored.

        Returns
        -------
        self : TripletsClassifier
        """
        self._fit_learner(triplets)
        return self

    def decision_function(self, triplets):
        """``d(a, c) - d(a, b)``: positive when the triplet is satisfied.

        Parameters
        ----------
        triplets : array-like of shape (n_triplets, 3, n_features) or (n_triplets, 3)

        Returns
        -------
        scores : ndarray of shape (n_triplets,)
        """
        check_is_fitted(self)
        points = self._points(triplets)
        return self._distances(points, 0, 2) - self._distances(points, 0, 1)


class QuadrupletsClassifier(_OrderedTupleEstimator):
    r"""Learn a metric from quadruplets "d(a, b) < d(c, d)", and test them.

    Fits ``learner`` (cloned, stored as ``learner_``) with its
    ``fit_quadruplets``, passing ``sample_weight`` as its ``weights``. A
    quadruplet ``(a, b, c, d)`` is satisfied when ``d(a, b) < d(c, d)``::

        decision_function(a, b, c, d) = d(c, d) - d(a, b),  predict = +1 if > 0.

    ``score`` is the (weighted) fraction satisfied. Quadruplets are points,
    shape ``(n_quadruplets, 4, n_features)``, or integer indices, shape
    ``(n_quadruplets, 4)``, into ``preprocessor``.

    Parameters
    ----------
    learner : estimator
        A metric learner with a ``fit_quadruplets(quadruplets, weights=None)``
        method.
    preprocessor : array-like of shape (n_samples, n_features), callable or None, default=None
        Where index quadruplets point; see :class:`PairsClassifier`.

    Attributes
    ----------
    learner_ : estimator
        The fitted clone of ``learner``.
    components_ : ndarray of shape (n_components, n_features)
        ``learner_.components_``.

    See Also
    --------
    PairsClassifier, TripletsClassifier
    """

    _tuple_size = 4
    _fit_method = "fit_quadruplets"
    _tuple_name = "quadruplets"

    def fit(self, quadruplets, y=None, sample_weight=None):
        """Fit the learner on quadruplets.

        Parameters
        ----------
        quadruplets : array-like of shape (n_quadruplets, 4, n_features) or (n_quadruplets, 4)
            Points, or indices into ``preprocessor``; ``(a, b, c, d)`` means
            ``d(a, b) < d(c, d)``.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_quadruplets,), optional
            Weight of each quadruplet, passed to the learner as ``weights``.

        Returns
        -------
        self : QuadrupletsClassifier
        """
        if sample_weight is not None:
            sample_weight = check_array(
                sample_weight,
                ensure_2d=False,
                dtype=np.float64,
                input_name="sample_weight",
            )
            n = np.shape(quadruplets)[0]
            if sample_weight.shape != (n,) or np.any(sample_weight < 0):
                raise ValueError(
                    f"sample_weight must hold {n} non-negative weights, one per "
                    f"quadruplet; got shape {sample_weight.shape}."
                )
        self._fit_learner(quadruplets, weights=sample_weight)
        return self

    def decision_function(self, quadruplets):
        """``d(c, d) - d(a, b)``: positive when the quadruplet is satisfied.

        Parameters
        ----------
        quadruplets : array-like of shape (n_quadruplets, 4, n_features) or (n_quadruplets, 4)

        Returns
        -------
        scores : ndarray of shape (n_quadruplets,)
        """
        check_is_fitted(self)
        points = self._points(quadruplets)
        return self._distances(points, 2, 3) - self._distances(points, 0, 1)
