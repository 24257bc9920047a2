"""Multi-metric Large Margin Nearest Neighbor: one metric per class."""

import functools
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils.validation import check_is_fitted

from ._base import checking_the_map
from ._init import initialize_components, resolve_n_components
from ._kernels import (
    rows_per_chunk,
    sort_pairs,
    sq_distances_of_pairs,
    weighted_outer_sum,
)
from ._kernels._chunking import get_working_memory
from ._kernels.lmnn import push_terms
from ._kernels.mm_lmnn import (
    bipartite_push_terms,
    impostors_in_class_metric,
    mm_energies,
)
from ._lmnn import (
    LMNN,
    _best_scale,
    _choose_targets,
    _normalize_in_place,
    _scaled_callback,
    _warn_small_classes,
)
from ._optimize import IterationLog, minimize_lbfgs, minimize_subgradient
from ._params import Interval, StrOptions, validate_params
from ._threads import fit_threads
from ._validation import validate_X, validate_X_y


class MultiMetricLMNN(ClassifierMixin, BaseEstimator):
    """Multi-metric LMNN: one linear map per class, and its kNN classifier.

    Weinberger and Saul's multiple-metrics LMNN learns one map ``L_c`` per
    class, jointly. The distance *to* a point is measured in the metric of
    that point's class, ``d(a, b) = ||L_{y_b} (x_a - x_b)||^2``, and the
    loss keeps the form of :class:`~linmetric.LMNN`'s:

    ``(1 - mu) sum_{i, j ~> i} d(i, j)
    + mu sum_{i, j ~> i, l: y_l != y_i} h(1 + d(i, j) - d(i, l))``

    where ``j ~> i`` are the ``n_neighbors`` target neighbours of ``i``
    (nearest points of its class in the input space, so ``d(i, j)`` is
    measured in the metric of ``i``'s own class) and ``d(i, l)`` in the
    metric of the impostor's class. All maps are optimised together by
    L-BFGS (squared hinge) or subgradient descent (hinge), from the map of
    a single-metric :class:`~linmetric.LMNN` by default.

    A test point ``t`` is classified with the same distances, by one of
    two rules (``rule``). The kNN rule: the distance to training point
    ``j`` is ``||L_{y_j} (t - x_j)||``, and the ``n_neighbors`` nearest
    vote; ``predict_proba`` returns the vote fractions. The energy rule
    (the paper's section 5, carried over to several metrics): ``t`` gets
    the label ``c`` under which it would add the least to the loss if it
    joined the training set, measured in the metric each distance would
    have, :meth:`energies`. There is no
    ``transform``: no single map takes the data to a space where Euclidean
    distances are the learned ones.

    The loss is computed over candidate impostors: the pairs ``(i, l)``
    within 1.3 times ``i``'s margin under the metric of ``l``'s class, found
    by an exact search in every class metric (``O(n^2 n_components)`` time,
    blocks of ``working_memory``). The candidates stay fixed while L-BFGS
    runs; when it stops, an exact search looks for impostors they lack, and
    if there are any they are gathered again and the optimisation goes on.
    So at convergence the loss is the loss over all pairs (a fit stopped
    by ``max_iter`` skips the check). The
    candidates take at most ``impostor_memory``; when they would take more,
    fewer are gathered (1.02 times the margins) and, failing that, every
    evaluation visits all pairs in blocks (exact, ``O(n^2)`` time): the
    objective never changes, only the time.

    Parameters
    ----------
    n_neighbors : int, default=3
        Target neighbours per point, and neighbours that vote in
        :meth:`predict` (or a test point's target neighbours in the
        energy rule). A point whose class has ``n_neighbors`` members or
        fewer gets the others of its class (and itself in place of the
        missing ones); a warning says so.
    n_components : int, default=None
        Rows of each class map; None means ``n_features``.
    init : {'lmnn', 'auto', 'pca', 'identity', 'lda', 'random'} or ndarray \
of shape (n_classes, n_components, n_features), default='lmnn'
        The starting maps: 'lmnn' gives every class the map of an
        :class:`~linmetric.LMNN` fitted with the same parameters; the other
        strings give every class the map of
        ``linmetric._init.initialize_components``, scaled as in LMNN; an
        array gives one map per class (in the order of ``classes_``).
    push_weight : float, default=0.5
        The paper's ``mu``, in (0, 1].
    loss : {'squared_hinge', 'hinge'}, default='squared_hinge'
        ``h(z) = max(0, z)**2`` (L-BFGS) or ``max(0, z)`` (subgradient).
    max_iter : int, default=1000
        The most iterations of the joint optimisation (the LMNN start runs
        to its own convergence). The maps overfit soon after the start: a
        small value (about 10) is early stopping, often better on test data
        than convergence.
    tol : float, default=1e-5
        Converged when one iteration lowers the loss by less than ``tol``
        times its value.
    callback : callable, default=None
        Called as ``callback(components, n_iter)`` after each iteration,
        ``components`` of the shape of ``components_``.
    verbose : int, default=0
        If positive, print a table of iteration, loss, active impostors and
        seconds.
    random_state : int, RandomState instance or None, default=None
        Seeds the start (the LMNN of ``init='lmnn'``, the scale search,
        random maps).
    working_memory : float, default=None
        Budget in MiB for one block of distances; None means
        ``sklearn.get_config()["working_memory"]``.
    impostor_memory : float, default=None
        Budget in MiB for the candidate impostor pairs (96 bytes each);
        None means the value of ``working_memory``.
    rule : {'knn', 'energy'}, default='knn'
        How :meth:`predict` and ``score`` classify: 'knn' votes among
        the ``n_neighbors`` nearest training points; 'energy' picks the
        label of least :meth:`energies` (no ``predict_proba`` then). It
        does not change the fit.

    Attributes
    ----------
    components_ : ndarray of shape (n_classes, n_components, n_features)
        The map ``L_c`` of each class, in the order of ``classes_``, in the
        dtype of X.
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    target_neighbors_ : ndarray of shape (n_samples, n_neighbors)
        Indices of the target neighbours of each training point.
    embedding_ : ndarray of shape (n_samples, n_components)
        Each training point mapped by its own class map, ``L_{y_j} x_j``.
    n_iter_ : int
        Iterations of the joint optimisation (the starting LMNN's not
        included).
    loss_curve_ : ndarray of shape (n_iter_,)
        The loss after each iteration.
    history_ : dict of str to ndarray of shape (n_iter_,)
        Per iteration: 'loss', 'active_impostors' and 'seconds'.
    converged_ : bool
        Whether the optimiser met its stopping rule.
    n_impostor_searches_ : int
        Exact searches of all class metrics (gathering and checking).
    n_streamed_evaluations_ : int
        Evaluations that visited all pairs because the candidates did not
        fit ``impostor_memory``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when X has string column names.

    See Also
    --------
    linmetric.LMNN : one metric for all classes.

    References
    ----------
    .. [1] K. Q. Weinberger and L. K. Saul, "Distance Metric Learning for
       Large Margin Nearest Neighbor Classification", Journal of Machine
       Learning Research 10 (2009), 207-244, section 6.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from linmetric import MultiMetricLMNN
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MultiMetricLMNN(n_neighbors=3, random_state=0).fit(X, y)
    >>> clf.components_.shape
    (3, 4, 4)
    >>> clf.predict(X[[0, 60, 120]])
    array([0, 1, 2])
    >>> bool(clf.score(X, y) > 0.95)
    True
    >>> clf.set_params(rule="energy").predict(X[[0, 60, 120]])
    array([0, 1, 2])
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_components": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "init": [
            StrOptions({"lmnn", "auto", "pca", "identity", "lda", "random"}),
            "array-like",
        ],
        "push_weight": [Interval(numbers.Real, 0, 1, closed="right")],
        "loss": [StrOptions({"squared_hinge", "hinge"})],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "callback": [None, "callable"],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "working_memory": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "impostor_memory": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "rule": [StrOptions({"knn", "energy"})],
    }

    def __init__(
        self,
        n_neighbors=3,
        n_components=None,
        *,
        init="lmnn",
        push_weight=0.5,
        loss="squared_hinge",
        max_iter=1000,
        tol=1e-5,
        callback=None,
        verbose=0,
        random_state=None,
        working_memory=None,
        impostor_memory=None,
        rule="knn",
    ):
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.init = init
        self.push_weight = push_weight
        self.loss = loss
        self.max_iter = max_iter
        self.tol = tol
        self.callback = callback
        self.verbose = verbose
        self.random_state = random_state
        self.working_memory = working_memory
        self.impostor_memory = impostor_memory
        self.rule = rule

    @checking_the_map
    def fit(self, X, y):
        """Learn one map per class from labelled data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, finite; float32 is kept.
        y : array-like of shape (n_samples,)
            Class labels; at least two classes.

        Returns
        -------
        self : MultiMetricLMNN
            The fitted classifier.
        """
        validate_params(self)
        X, y_codes, classes = validate_X_y(self, X, y)
        _warn_small_classes(y_codes, self.n_neighbors)
        X_input = X
        center = X.mean(axis=0, dtype=np.float64).astype(X.dtype)
        # centred and of unit RMS norm, as in LMNN: the path does not depend
        # on the units of X
        X = X - center
        data_scale = _normalize_in_place(X)
        n_components = resolve_n_components(self.n_components, X.shape[1])
        shape = (classes.shape[0], n_components, X.shape[1])
        random_state = check_random_state(self.random_state)
        log = IterationLog(
            "MultiMetricLMNN",
            verbose=self.verbose,
            callback=_scaled_callback(self.callback, data_scale),
            columns=("active_impostors",),
        )
        with fit_threads("lmnn", X.shape[0]):
            targets = _choose_targets(X, y_codes, self.n_neighbors, self.working_memory)
            components = self._start(X, y_codes, targets, shape, random_state)
            if not isinstance(self.init, str):
                components = components * data_scale
            if self.loss == "hinge":
                minimize = functools.partial(minimize_subgradient, tol=self.tol)
            else:
                minimize = functools.partial(minimize_lbfgs, tol=0.0, ftol=self.tol)
            candidates = _ClassImpostors(
                X,
                y_codes,
                targets,
                shape[0],
                self.working_memory,
                self.impostor_memory,
            )
            components, converged, message = self._minimize(
                X, y_codes, targets, components, candidates, log, minimize
            )
        log.finish(converged, message)

        self.components_ = np.ascontiguousarray(components / data_scale, dtype=X.dtype)
        self.classes_ = classes
        self.target_neighbors_ = targets
        self._center = center
        self._labels = y_codes
        self._train = X_input - center  # for the energy rule
        self.embedding_ = _own_class_embedding(self._train, y_codes, self.components_)
        self.n_iter_ = log.n_iter
        self.loss_curve_ = log.loss_curve
        self.history_ = log.history
        self.converged_ = converged
        self.n_impostor_searches_ = candidates.n_searches
        self.n_streamed_evaluations_ = self._n_streamed
        return self

    def _minimize(self, X, y, targets, components, candidates, log, minimize):
        """Minimise over candidate impostors, checked by exact searches.

        Each round gathers the candidates at the current maps and minimises
        the loss over them (a fixed function, so the optimiser sees one
        objective), then searches every class metric for a pair inside its
        margin that the candidates lack; the fit ends when there is none,
        so the loss at the returned maps is the loss over all pairs. When
        even the narrow candidates exceed the budget, the round evaluates
        every pair in blocks instead. Returns the maps, whether the last
        round converged, and why not.
        """
        shape = components.shape
        mu = float(self.push_weight)
        self._n_streamed = 0
        while True:
            margins = _margins(X, y, targets, components)
            if candidates.gather(components, margins):
                objective = functools.partial(
                    _candidate_objective,
                    X=X,
                    candidates=candidates,
                    shape=shape,
                    mu=mu,
                    loss=self.loss,
                )
            else:
                log.note("candidate impostors exceed the budget: all pairs streamed")
                objective = functools.partial(
                    _objective,
                    X=X,
                    y=y,
                    targets=targets,
                    shape=shape,
                    mu=mu,
                    loss=self.loss,
                    working_memory=self.working_memory,
                )
                objective = _counted(objective, self)
            result = minimize(
                objective,
                components,
                max_iter=max(1, self.max_iter - log.n_iter),
                log=log,
                shape=shape,
                finish=False,
            )
            components = result.x
            if candidates.rows is None:  # streamed: exact already
                break
            if log.n_iter >= self.max_iter:  # stopped early: no check
                return components, False, result.message
            margins = _margins(X, y, targets, components)
            if not candidates.missed(components, margins):
                break
            if candidates.n_searches >= MAX_SEARCHES:
                return components, False, "impostors outside the candidate set remain"
            log.note("impostors outside the candidates: searching again")
        return (
            components,
            result.converged,
            None if result.converged else result.message,
        )

    def _start(self, X, y, targets, shape, random_state):
        n_classes, n_components, _ = shape
        if not isinstance(self.init, str):
            init = np.asarray(self.init, dtype=np.float64)
            if init.shape != shape:
                raise ValueError(
                    f"init must have shape (n_classes, n_components, n_features) = "
                    f"{shape}, got {init.shape}."
                )
            return init.copy()
        if self.init == "lmnn":
            with warnings.catch_warnings():
                # the start need not converge: the joint optimisation goes on
                warnings.simplefilter("ignore", category=UserWarning)
                lmnn = LMNN(
                    n_neighbors=self.n_neighbors,
                    n_components=n_components,
                    push_weight=self.push_weight,
                    loss=self.loss,
                    tol=self.tol,
                    random_state=random_state,
                    working_memory=self.working_memory,
                ).fit(X, y)
            start = lmnn.components_.astype(np.float64)
        else:
            start = initialize_components(
                self.init, X, y, n_components=n_components, random_state=random_state
            ).astype(np.float64)
            start *= _best_scale(
                X,
                y,
                start,
                targets,
                mu=float(self.push_weight),
                squared=self.loss == "squared_hinge",
                random_state=random_state,
                working_memory=self.working_memory,
            )
        return np.repeat(start[None], n_classes, axis=0)

    def kneighbors(self, X):
        """The ``n_neighbors`` nearest training points in their class metrics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query points.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_neighbors)
            ``||L_{y_j} (x - x_j)||``, increasing (ties by index).
        indices : ndarray of shape (n_samples, n_neighbors)
            Indices of the training points.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False) - self._center
        return _nearest_in_class_metrics(
            X,
            self.embedding_,
            self._labels,
            self.components_,
            min(self.n_neighbors, self._labels.shape[0]),
            self.working_memory,
        )

    def energies(self, X):
        """The energy ``E(t, c)`` of each point under each class label.

        With ``d_c(a, b) = ||L_c (x_a - x_b)||^2``, ``mu`` the
        ``push_weight``, ``h`` the ``loss`` and ``j ~> t`` the
        ``n_neighbors`` nearest class-``c`` training points under ``d_c``
        (the target neighbours ``t`` would have with label ``c``):

        ``E(t, c) = (1 - mu) sum_{j ~> t} d_c(t, j)
        + mu sum_{j ~> t} sum_{l: y_l != c} h(1 + d_c(t, j) - d_{y_l}(t, l))
        + mu sum_{i: y_i != c} sum_{j ~> i} h(1 + d_{y_i}(i, j) - d_c(i, t))``

        each distance in the metric of the class of the point it goes to,
        as in the loss: ``t``'s impostors ``l`` in their own class metric,
        and ``t`` as an impostor of training point ``i`` in the metric of
        its hypothesised class. ``j ~> i`` are ``target_neighbors_``.
        Small classes as in :class:`~linmetric.EnergyClassifier`: a class
        of fewer than ``n_neighbors`` training points gives ``t`` all of
        them and ``t`` itself (at distance 0) in place of each missing
        one. Test points are taken in blocks of ``working_memory``, each
        holding its distances to every training point in every class
        metric.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test points.

        Returns
        -------
        energies : ndarray of shape (n_samples, n_classes)
            Column ``c`` is the energy of label ``classes_[c]``; lower is
            better. Float64; +inf where a squared distance overflows.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False)
        components = self.components_
        labels = self._labels
        train = self._train
        targets = self.target_neighbors_
        # from components_ itself (not embedding_), as the kernel uses it
        embedding = _own_class_embedding(train, labels, components)
        rows = np.repeat(np.arange(train.shape[0], dtype=np.intp), targets.shape[1])
        target_sq = sq_distances_of_pairs(
            embedding, rows, targets.ravel(), dtype=np.float64
        ).reshape(targets.shape)
        with np.errstate(over="ignore", invalid="ignore"):
            X = X - self._center.astype(X.dtype, copy=False)
        return mm_energies(
            X,
            train,
            labels,
            components,
            target_sq,
            mu=float(self.push_weight),
            squared=self.loss == "squared_hinge",
            working_memory=self.working_memory,
        )

    def _knn_rule(self):
        return self.rule == "knn"

    @available_if(_knn_rule)
    def predict_proba(self, X):
        """The fraction of the ``n_neighbors`` nearest in each class.

        Only with ``rule='knn'``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query points.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        _, indices = self.kneighbors(X)
        labels = self._labels[indices]
        n_classes = self.classes_.shape[0]
        votes = np.zeros((labels.shape[0], n_classes))
        for column in labels.T:
            votes[np.arange(labels.shape[0]), column] += 1.0
        return votes / labels.shape[1]

    def predict(self, X):
        """The label given by ``rule``.

        'knn': the majority label of the ``n_neighbors`` nearest (ties:
        lowest); 'energy': the label of least :meth:`energies` (ties:
        lowest).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query points.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        validate_params(self)
        if self.rule == "energy":
            energies = self.energies(X)
            if not np.all(np.isfinite(energies)):
                raise ValueError(
                    "X holds points too far from the training data for their "
                    "energies to be computed in float64."
                )
            return self.classes_[np.argmin(energies, axis=1)]
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


def mm_lmnn_loss_grad(
    components, X, y, targets, *, push_weight, loss, working_memory=None
):
    """The multi-metric LMNN loss and its gradient, over all pairs.

    ``(1 - mu) sum_ij d(i, j) + mu sum_ijl h(1 + d(i, j) - d(i, l))`` with
    ``d(a, b) = ||L_{y_b} (x_a - x_b)||^2``, ``j`` over the target
    neighbours of ``i`` and ``l`` over the points of other classes, every
    pair visited in blocks (:func:`~linmetric._kernels.mm_lmnn.bipartite_push_terms`).

    Parameters
    ----------
    components : ndarray of shape (n_classes, n_components, n_features)
        The map of each class code.
    X : ndarray of shape (n_samples, n_features), float32 or float64
    y : ndarray of shape (n_samples,), int
        Class codes ``0..n_classes-1``.
    targets : ndarray of shape (n_samples, n_neighbors), int
        Target neighbours of each point (of its own class).
    push_weight : float
        The paper's ``mu``.
    loss : {'squared_hinge', 'hinge'}
    working_memory : float or None
        Budget in MiB for one block of distances.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_classes, n_components, n_features), float64
    n_active : int
        Impostor pairs ``(i, l)`` inside the margin of ``i``.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._mm_lmnn import mm_lmnn_loss_grad
    >>> X = np.array([[0.0], [1.0], [0.5], [3.0]])
    >>> y = np.array([0, 0, 1, 1])
    >>> targets = np.array([[1], [0], [3], [2]])
    >>> # class 1's metric doubles distances: d(0, 2) = 2 * 0.25
    >>> loss, grad, n_active = mm_lmnn_loss_grad(
    ...     np.array([[[1.0]], [[2.0**0.5]]]), X, y, targets,
    ...     push_weight=0.5, loss="hinge")
    >>> round(float(loss), 9), n_active
    (35.25, 6)
    """
    L = np.asarray(components, dtype=np.float64)
    X = np.ascontiguousarray(X)
    y = np.ascontiguousarray(y, dtype=np.intp)
    targets = np.ascontiguousarray(targets, dtype=np.intp)
    mu = float(push_weight)
    squared = loss == "squared_hinge"
    n_neighbors = targets.shape[1]
    n_classes = L.shape[0]
    members = [np.flatnonzero(y == c) for c in range(n_classes)]
    # d(i, j) to the target neighbours, in the metric of i's own class
    target_sq = np.empty(targets.shape, dtype=np.float64)
    for c in range(n_classes):
        rows = members[c]
        Z = X[rows] @ L[c].T.astype(X.dtype)
        Z_targets = X[targets[rows].ravel()] @ L[c].T.astype(X.dtype)
        diff = np.repeat(Z, n_neighbors, axis=0).astype(np.float64) - Z_targets
        target_sq[rows] = np.einsum("ij,ij->i", diff, diff).reshape(-1, n_neighbors)
    target_weights = np.zeros(targets.shape, dtype=np.float64)
    gram = np.empty((n_classes, X.shape[1], X.shape[1]))
    push, n_active = 0.0, 0
    for c in range(n_classes):
        # the impostor pairs measured in class c's metric: (i, l), l in c
        others = np.flatnonzero(y != c)
        Z = X @ L[c].T.astype(X.dtype)
        class_push, gram[c], weights, class_active = bipartite_push_terms(
            X[others],
            Z[others],
            X[members[c]],
            Z[members[c]],
            target_sq[others],
            mu=mu,
            squared=squared,
            working_memory=working_memory,
        )
        push += class_push
        n_active += class_active
        target_weights[others] += weights
    for c in range(n_classes):
        rows = members[c]
        gram[c] += weighted_outer_sum(
            X,
            np.repeat(rows, n_neighbors),
            targets[rows].ravel(),
            (target_weights[rows] + (1.0 - mu)).ravel(),
        )
    value = (1.0 - mu) * float(target_sq.sum()) + mu * push
    return value, 2.0 * np.einsum("cpf,cfg->cpg", L, gram), n_active


def _objective(x, *, X, y, targets, shape, mu, loss, working_memory):
    value, grad, n_active = mm_lmnn_loss_grad(
        np.asarray(x).reshape(shape),
        X,
        y,
        targets,
        push_weight=mu,
        loss=loss,
        working_memory=working_memory,
    )
    return value, grad.ravel(), {"active_impostors": n_active}


def _counted(objective, estimator):
    def counted(x):
        estimator._n_streamed += 1
        return objective(x)

    return counted


def _own_class_embedding(X, y, components):
    """``L_{y_j} x_j`` for every training point ``j``."""
    embedding = np.empty((X.shape[0], components.shape[1]), dtype=X.dtype)
    for c in range(components.shape[0]):
        rows = y == c
        embedding[rows] = X[rows] @ components[c].T
    return embedding


def _nearest_in_class_metrics(X, embedding, y, components, n_neighbors, working_memory):
    """The nearest training points, each at ``||L_{y_j} x - L_{y_j} x_j||``."""
    n_train = embedding.shape[0]
    n_classes = components.shape[0]
    members = [np.flatnonzero(y == c) for c in range(n_classes)]
    norms = np.einsum("ij,ij->i", embedding, embedding, dtype=np.float64)
    # one block of query rows: a row of distances to every training point,
    # in float64, plus the candidates
    n_rows = rows_per_chunk(16 * n_train, working_memory, max_rows=X.shape[0])
    distances = np.empty((X.shape[0], n_neighbors))
    indices = np.empty((X.shape[0], n_neighbors), dtype=np.intp)
    for start in range(0, X.shape[0], n_rows):
        stop = min(start + n_rows, X.shape[0])
        block = np.empty((stop - start, n_train))
        for c in range(n_classes):
            Z = (X[start:stop] @ components[c].T).astype(np.float64)
            cols = members[c]
            products = Z @ embedding[cols].T.astype(np.float64)
            block[:, cols] = (
                np.einsum("ij,ij->i", Z, Z)[:, None]
                + norms[cols][None, :]
                - 2 * products
            )
        np.maximum(block, 0.0, out=block)
        # k smallest per row, ties by index (a stable sort of the candidates)
        candidates = np.argpartition(block, n_neighbors - 1, axis=1)[:, :n_neighbors]
        bound = np.take_along_axis(block, candidates, axis=1).max(axis=1)
        for r in range(stop - start):
            inside = np.flatnonzero(block[r] <= bound[r])
            order = np.lexsort((inside, block[r, inside]))[:n_neighbors]
            indices[start + r] = inside[order]
            distances[start + r] = block[r, inside[order]]
    return np.sqrt(distances), indices


# Candidate impostors of a point i are gathered at CANDIDATE_SCALE times its
# margin (max_j d(i, j) + 1), so that they stay enough while the maps move,
# or at NARROW_CANDIDATE_SCALE when those do not fit the memory budget.
CANDIDATE_SCALE = 1.3
NARROW_CANDIDATE_SCALE = 1.02
# Bytes counted per candidate pair: its row and column, its position in its
# class's lists, local indices, distance and weight, and the copies made
# while the pairs are sorted.
BYTES_PER_PAIR = 96
# The most searches of one fit; after them the last working set stands.
MAX_SEARCHES = 20


class _ClassImpostors:
    """Candidate impostor pairs ``(i, l)`` under the metric of ``l``'s class.

    A search is exact: for each class ``c`` it compares every point outside
    ``c`` with every point of ``c`` under ``L_c``, so a pair inside its
    radius in its own class metric is always found. The pairs are kept
    sorted by row (for the push pass) and, per class of the column, as
    indices into the class's *local* points: the points of the class and
    the rows of its pairs, the only points whose image under ``L_c`` an
    evaluation needs.
    """

    def __init__(self, X, y, targets, n_classes, working_memory, memory):
        self.X, self.y, self.targets = X, y, targets
        self.n_classes = n_classes
        self.working_memory = working_memory
        budget = get_working_memory(working_memory if memory is None else memory)
        self.max_pairs = int(budget * 2**20 // BYTES_PER_PAIR)
        self.members = [np.flatnonzero(y == c) for c in range(n_classes)]
        self.n_searches = 0
        self.rows = None

    def search(self, components, radii):
        """All pairs inside ``radii`` (None when over the budget)."""
        self.n_searches += 1
        rows, cols, left = [], [], self.max_pairs
        for c in range(self.n_classes):
            Z = (self.X @ components[c].T.astype(self.X.dtype)).astype(np.float32)
            found = impostors_in_class_metric(
                Z,
                self.y == c,
                radii,
                working_memory=self.working_memory,
                max_pairs=left,
            )
            if found is None:
                return None
            rows.append(found[0])
            cols.append(found[1])
            left -= found[0].shape[0]
        return np.concatenate(rows), np.concatenate(cols)

    def gather(self, components, margins):
        """Replace the candidates by a search at the enlarged margins;
        False when even the narrow ones exceed the budget."""
        self.rows = None  # one set in memory at a time
        for scale in (CANDIDATE_SCALE, NARROW_CANDIDATE_SCALE):
            found = self.search(components, scale * margins)
            if found is not None:
                self._store(*found)
                return True
        return False

    def missed(self, components, margins):
        """Whether some pair inside ``margins`` is not a candidate."""
        found = self.search(components, margins)
        if found is None:
            return True
        n_samples = self.y.shape[0]
        codes = self.rows * n_samples + self.cols  # sorted
        query = found[0] * n_samples + found[1]
        if codes.shape[0] == 0:
            return query.shape[0] > 0
        where = np.minimum(np.searchsorted(codes, query), codes.shape[0] - 1)
        return not bool(np.all(codes[where] == query))

    def _store(self, rows, cols):
        n_samples = self.y.shape[0]
        self.rows, self.cols = sort_pairs(rows, cols, n_samples)
        self.indptr = np.zeros(n_samples + 1, dtype=np.intp)
        np.cumsum(np.bincount(self.rows, minlength=n_samples), out=self.indptr[1:])
        col_class = self.y[self.cols]
        n_neighbors = self.targets.shape[1]
        self.by_class = []
        for c in range(self.n_classes):
            positions = np.flatnonzero(col_class == c)
            local = np.union1d(self.members[c], self.rows[positions])
            own = np.searchsorted(local, self.members[c])
            self.by_class.append(
                (
                    positions,
                    local,
                    np.repeat(own, n_neighbors),
                    np.searchsorted(local, self.targets[self.members[c]].ravel()),
                    np.searchsorted(local, self.rows[positions]),
                    np.searchsorted(local, self.cols[positions]),
                )
            )


def candidate_loss_grad(components, X, candidates, *, push_weight, loss):
    """The multi-metric loss and gradient over the candidate impostors.

    Equal to :func:`mm_lmnn_loss_grad` whenever every pair inside its
    row's margin is a candidate (pairs outside contribute nothing). Per
    class ``c`` only the class's local points are mapped by ``L_c``; the
    gradient share of ``L_c`` is one weighted outer-product sum over its
    target pairs and its active impostor pairs.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_classes, n_components, n_features), float64
    n_active : int
    """
    L = np.asarray(components, dtype=np.float64)
    mu = float(push_weight)
    targets = candidates.targets
    members = candidates.members
    target_sq = np.empty(targets.shape, dtype=np.float64)
    pair_sq = np.empty(candidates.rows.shape[0], dtype=np.float64)
    local_X = []
    for c, (positions, local, own, own_targets, rows, cols) in enumerate(
        candidates.by_class
    ):
        X_local = X[local]
        Z = X_local @ L[c].T.astype(X.dtype)
        target_sq[members[c]] = sq_distances_of_pairs(
            Z, own, own_targets, dtype=np.float64, check_indices=False
        ).reshape(-1, targets.shape[1])
        pair_sq[positions] = sq_distances_of_pairs(
            Z, rows, cols, dtype=np.float64, check_indices=False
        )
        local_X.append(X_local)
    push, pair_weights, target_weights, n_active = push_terms(
        candidates.indptr, pair_sq, target_sq, mu=mu, squared=loss == "squared_hinge"
    )
    target_weights += 1.0 - mu
    grad = np.empty_like(L)
    for c, (positions, _, own, own_targets, rows, cols) in enumerate(
        candidates.by_class
    ):
        weights = pair_weights[positions]
        active = weights != 0.0
        C = weighted_outer_sum(
            local_X[c],
            np.concatenate([own, rows[active]]),
            np.concatenate([own_targets, cols[active]]),
            np.concatenate([target_weights[members[c]].ravel(), weights[active]]),
            working_memory=candidates.working_memory,
        )
        grad[c] = 2.0 * L[c] @ C
    value = (1.0 - mu) * float(target_sq.sum()) + mu * push
    return value, grad, n_active


def _candidate_objective(x, *, X, candidates, shape, mu, loss):
    value, grad, n_active = candidate_loss_grad(
        np.asarray(x).reshape(shape), X, candidates, push_weight=mu, loss=loss
    )
    return value, grad.ravel(), {"active_impostors": n_active}


def _margins(X, y, targets, components):
    """``max_j d(i, j) + 1`` of every point, in its own class metric."""
    target_sq = np.empty(targets.shape, dtype=np.float64)
    for c in range(components.shape[0]):
        rows = np.flatnonzero(y == c)  # targets are of the same class
        Z = X[rows] @ components[c].T.astype(X.dtype)
        target_sq[rows] = sq_distances_of_pairs(
            Z,
            np.repeat(np.arange(rows.shape[0]), targets.shape[1]),
            np.searchsorted(rows, targets[rows].ravel()),
            dtype=np.float64,
            check_indices=False,
        ).reshape(-1, targets.shape[1])
    return target_sq.max(axis=1) + 1.0
