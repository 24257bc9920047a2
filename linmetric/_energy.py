"""The energy-based classification rule of LMNN."""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ._base import is_dask_array, map_row_blocks
from ._kernels import sq_distances_of_pairs
from ._kernels.energy import lmnn_energies
from ._lmnn import LMNN, _choose_targets
from ._params import Interval, validate_params
from ._validation import validate_X, validate_X_y
from ._whitening import _stable_mean


class EnergyClassifier(ClassifierMixin, BaseEstimator):
    """Classify by the energy of LMNN's loss (Weinberger and Saul, section 5).

    A test point ``t`` gets the label ``c`` under which it would add the
    least to the LMNN loss if it joined the training set. With the learned
    distance ``d(a, b) = ||L (x_a - x_b)||^2``, ``mu`` the LMNN's
    ``push_weight`` and ``h`` its loss (hinge or squared hinge), the energy
    of label ``c`` is

    ``E(t, c) = (1 - mu) sum_{j ~> t} d(t, j)
    + mu sum_{j ~> t} sum_{l: y_l != c} h(1 + d(t, j) - d(t, l))
    + mu sum_{i: y_i != c} sum_{j ~> i} h(1 + d(i, j) - d(i, t))``

    where ``j ~> t`` are the ``n_neighbors`` nearest training points of
    class ``c`` (the target neighbours ``t`` would have) and ``j ~> i`` are
    the training points' own target neighbours, chosen as in the first pass
    of :class:`~linmetric.LMNN` (nearest same-class points in the input
    space), whether the LMNN was fitted here or before, in one pass or
    several.

    Small classes follow LMNN's rule: a class with fewer than
    ``n_neighbors`` training points gives ``t`` all of them as target
    neighbours and ``t`` itself in place of each missing one (no pull, and
    the push term ``h(1 - d(t, l))`` asks other-class points to stay a unit
    margin away from ``t``); a training point of a class of ``n_neighbors``
    members or fewer has the others of its class as target neighbours and
    itself in place of the rest (see ``n_neighbors`` in
    :class:`~linmetric.LMNN`). Such a class pulls ``t`` by fewer distances
    than a larger one, so far from all the training data (where every
    distance is large) the rule prefers it.
    The first two terms are the pull and push terms of ``t`` itself; the
    third counts the training points whose margin ``t`` would invade. The
    prediction is ``argmin_c E(t, c)``.

    Parameters
    ----------
    lmnn : LMNN, default=None
        The metric. If it is already fitted it is used as it is (and must
        have been fitted on the same features); otherwise a clone of it is
        fitted on the training data in :meth:`fit`. None means ``LMNN()``.
    working_memory : float, default=None
        Budget in MiB for one block of test-to-training distances; None
        means ``sklearn.get_config()["working_memory"]``.

    Attributes
    ----------
    lmnn_ : LMNN
        The fitted metric: the given estimator if it was fitted, else the
        fitted clone.
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    embedding_ : ndarray of shape (n_samples, n_components)
        The training points mapped by ``lmnn_``.
    target_neighbors_ : ndarray of shape (n_samples, n_neighbors)
        The training points' target neighbours; a point of a class of
        ``n_neighbors`` members or fewer fills the missing slots with its
        own index.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when X has string column names.

    Notes
    -----
    ``decision_function`` returns the negated energies (higher is better);
    there is no ``predict_proba``: energies are sums of distances and
    hinge terms, not log-likelihoods, and turning them into probabilities
    would need a calibration the rule does not define.

    Prediction costs one pass over the test-to-training distances, computed
    block by block within ``working_memory``.

    References
    ----------
    .. [1] K. Q. Weinberger and L. K. Saul, "Distance Metric Learning for
       Large Margin Nearest Neighbor Classification", Journal of Machine
       Learning Research 10 (2009), 207-244, section 5.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from linmetric import LMNN, EnergyClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = EnergyClassifier(LMNN(n_neighbors=3, random_state=0)).fit(X, y)
    >>> clf.predict(X[[0, 60, 120]])
    array([0, 1, 2])
    >>> clf.decision_function(X[:2]).shape
    (2, 3)
    """

    _parameter_constraints = {
        "lmnn": [None, LMNN],
        "working_memory": [None, Interval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(self, lmnn=None, *, working_memory=None):
        self.lmnn = lmnn
        self.working_memory = working_memory

    def fit(self, X, y):
        """Fit the metric unless it is fitted, and store the training set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels; at least two classes. A class of ``n_neighbors``
            members or fewer is kept, with fewer target neighbours, and a
            warning (from :class:`~linmetric.LMNN` when it is fitted here).

        Returns
        -------
        self : EnergyClassifier
            The fitted classifier.
        """
        validate_params(self)
        lmnn = LMNN() if self.lmnn is None else self.lmnn
        prefit = _is_fitted(lmnn)
        n_neighbors = lmnn.n_neighbors
        X, y_codes, classes = validate_X_y(self, X, y)
        if prefit:
            if lmnn.n_features_in_ != X.shape[1]:
                raise ValueError(
                    f"X has {X.shape[1]} features, but the fitted lmnn expects "
                    f"{lmnn.n_features_in_} features."
                )
            small = np.count_nonzero(np.bincount(y_codes) <= n_neighbors)
            if small:
                warnings.warn(
                    f"{small} classes have n_neighbors={n_neighbors} members or "
                    "fewer; their points get fewer target neighbours (the "
                    "others of their class).",
                    UserWarning,
                    stacklevel=2,
                )
            self.lmnn_ = lmnn
        else:
            self.lmnn_ = clone(lmnn).fit(X, y_codes)
        # Distances are computed from centred points: the norms expansion
        # on data far from the origin (X + 1e10) would lose every digit.
        # (The mean in float64: float32's own sum rounds, and a constant
        # feature must be centred to exact zeros.)
        self._center = _stable_mean(X.astype(np.float64)).astype(X.dtype)
        if not prefit and self.lmnn_.n_passes_ == 1:
            targets = self.lmnn_.target_neighbors_  # chosen in the input space
        else:
            targets = _choose_targets(
                X - self._center, y_codes, n_neighbors, self.working_memory
            )
        self.classes_ = classes
        self.embedding_ = self._transform(X)
        self.target_neighbors_ = targets
        self._labels = y_codes
        rows = np.repeat(np.arange(X.shape[0], dtype=np.intp), n_neighbors)
        self._target_sq = (
            sq_distances_of_pairs(self.embedding_, rows, targets.ravel())
            .reshape(targets.shape)
            .astype(np.float64)
        )
        return self

    def _transform(self, X):
        components = self.lmnn_.components_.astype(X.dtype, copy=False)
        with np.errstate(over="ignore", invalid="ignore"):
            embedded = (X - self._center.astype(X.dtype, copy=False)) @ components.T
        return embedded

    def _energies(self, X, *, relative):
        X = validate_X(self, X, reset=False)
        energies = lmnn_energies(
            self._transform(X),
            self.embedding_,
            self._labels,
            self.classes_.shape[0],
            self._target_sq,
            mu=float(self.lmnn_.push_weight),
            squared=self.lmnn_.loss == "squared_hinge",
            working_memory=self.working_memory,
            relative=relative,
        )
        if relative and not np.all(np.isfinite(energies)):
            raise ValueError(
                "X holds points too far from the training data for their "
                "energies to be computed in float64 (the learned map takes "
                f"them to norms up to {self._largest_norm(X):.3g})."
            )
        return energies

    def _largest_norm(self, X):
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.max(np.abs(self._transform(X)), initial=0.0))

    def energies(self, X):
        """The energy ``E(t, c)`` of each point under each class label.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test points.

        Returns
        -------
        energies : ndarray of shape (n_samples, n_classes)
            Column ``c`` is the energy of label ``classes_[c]``; lower is
            better. A Dask array in gives a lazy Dask array out, computed
            block of rows by block of rows. +inf where a point is so far
            from the training data that its squared distance overflows
            float64; :meth:`decision_function` and :meth:`predict` leave
            out the label-independent term and stay finite there.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            return map_row_blocks(self.energies, X, n_columns=self.classes_.shape[0])
        return self._energies(X, relative=False)

    def decision_function(self, X):
        """Negated energies: the higher, the more likely the class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test points.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            ``-energies(X)`` up to a per-point constant, the term
            ``(1 - mu) k ||L (t - c)||^2`` that is the same for every label
            (leaving it out keeps the scores finite for far points); with
            two classes, the score of the second class against the first,
            ``E(t, c_0) - E(t, c_1)``.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            n_classes = self.classes_.shape[0]
            return map_row_blocks(
                self.decision_function,
                X,
                n_columns=None if n_classes == 2 else n_classes,
            )
        energies = self._energies(X, relative=True)
        if energies.shape[1] == 2:
            return energies[:, 0] - energies[:, 1]
        return -energies

    def predict(self, X):
        """The label of least energy for each point.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test points.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            A lazy Dask array when X is one.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            return map_row_blocks(self.predict, X)
        energies = self._energies(X, relative=True)
        return self.classes_[np.argmin(energies, axis=1)]


def _is_fitted(estimator):
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True
