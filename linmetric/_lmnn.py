"""Large Margin Nearest Neighbor (LMNN).

:class:`LMNN` orchestrates; :func:`lmnn_loss_grad` is the loss on a given
set of impostor pairs; the working set of candidate impostors lives in
``linmetric._lmnn_impostors`` and the iteration loops in
``linmetric._optimize``.
"""

import contextlib
import functools
import numbers
import warnings

import numpy as np
from sklearn.utils import check_random_state

from ._base import MetricLearner
from ._init import initialize_components, resolve_n_components
from ._kernels import (
    sort_pairs,
    sq_distances_of_pairs,
    target_neighbors,
    weighted_outer_sum,
)
from ._kernels.lmnn import (
    lmnn_outer_sum,
    push_terms,
    scale_losses,
    streamed_push_terms,
)
from ._lmnn_impostors import NARROW_CANDIDATE_SCALE, ImpostorSet
from ._lmnn_small import fit_small, note_changed_targets, small_problem
from ._optimize import IterationLog, minimize_lbfgs, minimize_subgradient
from ._params import Interval, StrOptions, validate_params
from ._threads import fit_threads, kernel_threads, limit_threads
from ._validation import validate_X_y

# Points used to estimate the best scale of the initial map.
_SCALE_SAMPLE = 500
# The most restarts of the optimizer after the final full check found
# impostors that the candidates missed.
_MAX_RESTARTS = 3


class LMNN(MetricLearner):
    """Large Margin Nearest Neighbor metric learning.

    LMNN learns a linear map ``L`` under which each point's ``n_neighbors``
    *target neighbours* (its nearest points of the same class) are close,
    while points of other classes (*impostors*) are pushed at least one unit
    of squared distance further away than the farthest target neighbour.
    With ``d(a, b) = ||L (x_a - x_b)||^2`` and ``h`` the hinge or the
    squared hinge, it minimises the paper's convex combination

    ``(1 - mu) sum_{i, j ~> i} d(i, j)
    + mu sum_{i, j ~> i, l: y_l != y_i} h(1 + d(i, j) - d(i, l))``

    where ``mu`` is ``push_weight``. The target neighbours are chosen once,
    at the start of ``fit``, by the Euclidean distance in the input space,
    and stay fixed during the optimisation. With ``n_passes > 1`` the
    optimisation is repeated: each further pass chooses the target
    neighbours again, by the distance learned so far, and resumes from the
    map reached (the multi-pass LMNN of the paper). Passes stop early when
    the target neighbours no longer change.

    Impostors are kept as an active set. A search gathers, for each point,
    the candidate impostors inside its margin enlarged by a factor 1.3; each
    evaluation of the loss then computes exact distances for the candidates
    only. From the measured change of those distances since the search,
    every evaluation estimates which points could have an impostor outside
    their candidates, and searches again for those points only (for all
    points at once, in blocks, when many are concerned). The
    estimate is a heuristic, so ``fit`` ends with an exact check at the
    returned map: a point is searched again unless a bound (on
    ``||L - L_ref||_2`` since its search and the spread of the data) proves
    that its candidates hold every impostor; all points at once, in
    blocks, when many are concerned. If the check finds an impostor the
    candidates missed, the optimisation resumes from there under a
    staleness test that is guaranteed (that same bound). A map returned
    without a ``ConvergenceWarning`` therefore has no impostor unseen by
    the final check. Distances in the loss are summed in float64; the
    searches run on float32 distances, so the final check is exact up to
    float32 rounding of distances near a margin.

    The candidates never take more than ``impostor_memory``: when they
    would, fewer are gathered per point and searched again more often, and
    when even the impostors inside the margins would, the loss visits
    every pair in blocks without storing any. The objective is the same in
    every case; only the time changes.

    The fit runs on X centred and divided by the RMS norm of its rows, and
    ``components_`` is scaled back: data in other units (pixels in 0..255
    or in [0, 1]) give the same iterations, the same impostor searches and
    the same memory, and a map scaled by the inverse factor.

    With the default squared hinge the loss is minimised by L-BFGS; it
    stops when one iteration lowers the loss by less than ``tol`` relative
    to it (SciPy's ``ftol``), a rule that does not depend on the scale of
    the data. The hinge is minimised by subgradient descent
    (``linmetric._optimize.minimize_subgradient``). A ``ConvergenceWarning`` is raised whenever the optimiser
    stops for another reason (``max_iter`` reached, line search failure),
    verbose or not.

    Parameters
    ----------
    n_neighbors : int, default=3
        Number of target neighbours per point. A point whose class has
        ``n_neighbors`` members or fewer gets all the others of its class as
        target neighbours and, in place of the missing ones, itself (at
        distance 0: no pull, and impostors must stay a unit margin away
        from it); a warning says so. Such points still count as impostors
        for the other classes.
    n_components : int, default=None
        Output dimension (rows of ``components_``); None means
        ``n_features``. Smaller values give a rectangular, dimension
        reducing map.
    init : {'auto', 'pca', 'identity', 'lda', 'random'} or ndarray of shape \
(n_components, n_features), default='auto'
        The starting map; see ``linmetric._init.initialize_components``.
        'auto' is 'lda' when ``n_components < n_classes``, else 'pca' when
        ``n_components < min(n_samples, n_features)``, else 'identity'
        (which, like 'pca' with all components, keeps Euclidean distances;
        it also works with fewer samples than features). The map is then
        multiplied by the factor that minimises the loss along it (estimated
        on 500 points drawn from ``random_state``), since the loss depends on
        the scale of the data through its unit margin.
    push_weight : float, default=0.5
        The paper's ``mu``, in (0, 1]: the weight of the impostor (push)
        term; the target-neighbour (pull) term has weight ``1 - mu``.
    loss : {'squared_hinge', 'hinge'}, default='squared_hinge'
        ``h(z) = max(0, z)**2``, smooth, minimised with L-BFGS; or
        ``h(z) = max(0, z)`` as in the paper, minimised by subgradient
        descent with the paper's step-size adaptation.
    max_iter : int, default=1000
        The most iterations (accepted steps).
    tol : float, default=1e-5
        A relative decrease of the loss per iteration: converged when one
        L-BFGS iteration lowers the loss by less than ``tol`` times its
        value (SciPy's ``ftol``) or, with ``loss='hinge'``, when the last
        five iterations lowered it by less than ``5 * tol`` times its value.
    callback : callable, default=None
        Called as ``callback(components, n_iter)`` after each iteration.
    verbose : int, default=0
        If positive, print a table of iteration, loss, active impostors and
        seconds, then the outcome.
    n_passes : int, default=1
        How many times the target neighbours are chosen: once in the input
        space, then once more under the learned map for each further pass.
        Iterations of all passes count against ``max_iter``.
    warm_start : bool, default=False
        Start from the ``components_`` of the previous fit when their shape
        fits; the target neighbours are chosen again.
    random_state : int, RandomState instance or None, default=None
        Seeds ``init='random'`` and the randomised PCA solver.
    working_memory : float, default=None
        Budget in MiB for one block of the distance computations; None
        means ``sklearn.get_config()["working_memory"]``.
    impostor_memory : float, default=None
        Budget in MiB for the candidate impostor pairs (96 bytes each, their
        per-evaluation arrays and merge copies included); None means the
        value of ``working_memory``. The peak memory of ``fit`` is about
        this plus two blocks of ``working_memory`` plus a few copies of X.
        When the candidates would not fit, ``fit`` gathers fewer per point
        (a margin enlarged by 1.02 instead of 1.3, searched again more
        often); when the impostors inside the margins alone do not fit, it
        computes the loss by visiting every pair in blocks, without storing
        them (``O(n^2)`` time per evaluation), until they fit again. The
        loss is the same either way: only time changes.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map ``L``, in the dtype of X.
    target_neighbors_ : ndarray of shape (n_samples, n_neighbors)
        Indices of the target neighbours of each training point, as chosen
        for the last pass (a point is its own target in place of missing ones).
    n_passes_ : int
        Passes run (fewer than ``n_passes`` when the target neighbours
        stopped changing or ``max_iter`` was reached).
    n_iter_ : int
        Iterations run, over all passes and restarts.
    loss_curve_ : ndarray of shape (n_iter_,)
        The loss after each iteration.
    history_ : dict of str to ndarray of shape (n_iter_,)
        Per iteration: 'loss', 'active_impostors' (impostor pairs
        ``(i, l)`` inside the margin of ``i``) and 'seconds' since the start.
    converged_ : bool
        Whether the optimiser met its stopping rule in every pass (a
        ``ConvergenceWarning`` is raised otherwise).
    n_impostor_searches_ : int
        Full impostor searches run, the final check included when it
        searched all points.
    n_streamed_evaluations_ : int
        Evaluations of the loss that visited every pair in blocks because
        the impostors did not fit ``impostor_memory``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when X has string column names.

    See Also
    --------
    linmetric.EnergyClassifier : the paper's energy-based classification rule.

    References
    ----------
    .. [1] K. Q. Weinberger and L. K. Saul, "Distance Metric Learning for
       Large Margin Nearest Neighbor Classification", Journal of Machine
       Learning Research 10 (2009), 207-244.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from linmetric import LMNN
    >>> X, y = load_iris(return_X_y=True)
    >>> lmnn = LMNN(n_neighbors=3, random_state=0).fit(X, y)
    >>> lmnn.components_.shape
    (4, 4)
    >>> bool(lmnn.converged_)
    True
    >>> knn = make_pipeline(LMNN(random_state=0), KNeighborsClassifier(3))
    >>> bool(knn.fit(X, y).score(X, y) > 0.95)
    True
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_components": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "init": [
            StrOptions({"auto", "pca", "identity", "lda", "random"}),
            "array-like",
        ],
        "push_weight": [Interval(numbers.Real, 0, 1, closed="right")],
        "loss": [StrOptions({"squared_hinge", "hinge"})],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_passes": [Interval(numbers.Integral, 1, None, closed="left")],
        "callback": [None, "callable"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "working_memory": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "impostor_memory": [None, Interval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        n_neighbors=3,
        n_components=None,
        *,
        init="auto",
        push_weight=0.5,
        loss="squared_hinge",
        max_iter=1000,
        tol=1e-5,
        n_passes=1,
        callback=None,
        verbose=0,
        warm_start=False,
        random_state=None,
        working_memory=None,
        impostor_memory=None,
    ):
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.init = init
        self.push_weight = push_weight
        self.loss = loss
        self.max_iter = max_iter
        self.tol = tol
        self.n_passes = n_passes
        self.callback = callback
        self.verbose = verbose
        self.warm_start = warm_start
        self.random_state = random_state
        self.working_memory = working_memory
        self.impostor_memory = impostor_memory

    def fit(self, X, y):
        """Learn the map from labelled data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, finite; float32 is kept.
        y : array-like of shape (n_samples,)
            Class labels; at least two classes.

        Returns
        -------
        self : LMNN
            The fitted learner.
        """
        validate_params(self)
        previous = getattr(self, "components_", None) if self.warm_start else None
        X, y_codes, _ = validate_X_y(self, X, y)
        _warn_small_classes(y_codes, self.n_neighbors)
        # Distances do not change under a shift of X; centring keeps their
        # expansion ||a||^2 + ||b||^2 - 2 a.b in the searches accurate.
        X = X - X.mean(axis=0, dtype=np.float64).astype(X.dtype)
        # The loss has a unit margin and L-BFGS a unit first step, so a map
        # in the inverse units of X would make the path (its trial maps, and
        # with them the impostor candidates and the memory) depend on those
        # units. The fit runs on X of unit RMS norm; components_ is scaled
        # back at the end.
        data_scale = _normalize_in_place(X)
        n_components = resolve_n_components(self.n_components, X.shape[1])
        shape = (n_components, X.shape[1])
        random_state = check_random_state(self.random_state)
        log = IterationLog(
            "LMNN",
            verbose=self.verbose,
            callback=_scaled_callback(self.callback, data_scale),
            columns=("active_impostors",),
        )
        if small_problem(*X.shape, self.working_memory, self.impostor_memory):
            # all pairs in NumPy: no compiled kernel to load (linmetric._lmnn_small)
            args = (X, y_codes, previous, shape, random_state, data_scale, log)
            return fit_small(self, *args)
        with fit_threads("lmnn", X.shape[0]):
            targets = _choose_targets(X, y_codes, self.n_neighbors, self.working_memory)
            if previous is not None and previous.shape == shape:
                components = np.asarray(previous, dtype=np.float64) * data_scale
            else:
                components = self._start(
                    X, y_codes, targets, shape, random_state, data_scale
                )
            impostors = ImpostorSet(
                y_codes,
                np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64)),
                self.working_memory,
                self.impostor_memory,
            )
            if self.loss == "hinge":
                minimize = functools.partial(minimize_subgradient, tol=self.tol)
            else:
                minimize = functools.partial(minimize_lbfgs, tol=0.0, ftol=self.tol)
            components, targets, n_passes, converged, message = self._passes(
                X, y_codes, targets, components, impostors, log, minimize
            )
        log.finish(converged, message)
        return self._set_fitted(
            X,
            components / data_scale,
            targets,
            n_passes,
            log,
            converged,
            impostors.n_searches,
            impostors.n_streamed,
        )

    def _set_fitted(
        self, X, components, targets, n_passes, log, converged, n_searches, n_streamed
    ):
        # The fitted attributes, shared by the compiled and the NumPy path
        # (linmetric._lmnn_small); components in the units of X.
        self.components_ = np.ascontiguousarray(components, dtype=X.dtype)
        self.target_neighbors_ = targets
        self.n_passes_ = n_passes
        self.n_iter_ = log.n_iter
        self.loss_curve_ = log.loss_curve
        self.history_ = log.history
        self.converged_ = converged
        self.n_impostor_searches_ = n_searches
        self.n_streamed_evaluations_ = n_streamed
        return self

    def _start(self, X, y, targets, shape, random_state, data_scale):
        components = initialize_components(
            self.init, X, y, n_components=shape[0], random_state=random_state
        ).astype(np.float64)
        if not isinstance(self.init, str):
            # a given map acts on X in its own units; X was divided by its scale
            components *= data_scale
        # Start at the scale the loss prefers along the initial map; the
        # optimiser would otherwise spend its first iterations rescaling.
        return components * _best_scale(
            X,
            y,
            components,
            targets,
            mu=float(self.push_weight),
            squared=self.loss == "squared_hinge",
            random_state=random_state,
            working_memory=self.working_memory,
        )

    def _passes(self, X, y, targets, components, impostors, log, minimize):
        """Minimise pass by pass, choosing the target neighbours anew each time.

        ``minimize`` is the driver's function for the loss. Returns the map,
        the last targets, the passes run, and whether every pass converged
        (and the first reason why not).
        """
        shape = components.shape
        converged, message = True, None
        for n_pass in range(1, self.n_passes + 1):
            impostors.reset(guaranteed=False)
            objective = _working_set_objective(
                X, targets, impostors, mu=float(self.push_weight), loss=self.loss
            )
            components, pass_converged, pass_message = _minimize_checked(
                minimize,
                objective,
                components,
                X,
                targets,
                impostors,
                max_iter=self.max_iter,
                log=log,
                shape=shape,
            )
            if not pass_converged and converged:
                converged, message = False, pass_message
            if n_pass == self.n_passes or log.n_iter >= self.max_iter:
                break
            new_targets = _choose_targets(
                _transform(X, components), y, self.n_neighbors, self.working_memory
            )
            if note_changed_targets(log, n_pass, new_targets, targets) == 0:
                break
            targets = new_targets
        return components, targets, n_pass, converged, message

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


def lmnn_loss_grad(L, X, targets, impostor_pairs, *, push_weight, loss):
    """The LMNN loss and its gradient over given impostor pairs.

    ``(1 - mu) sum_ij d(i, j) + mu sum_ijl h(1 + d(i, j) - d(i, l))`` with
    ``d(a, b) = ||L (x_a - x_b)||^2``, ``j`` over the target neighbours of
    ``i`` and ``l`` over the impostor pairs ``(i, l)`` given.

    Parameters
    ----------
    L : ndarray of shape (n_components, n_features)
        The linear map.
    X : ndarray of shape (n_samples, n_features), float32 or float64
        Training data.
    targets : ndarray of shape (n_samples, n_neighbors), int
        Target neighbours of each point.
    impostor_pairs : ndarray of shape (n_pairs, 2), int
        The pairs ``(i, l)`` that may violate the margin of ``i`` (points of
        other classes); pairs outside the margin add nothing.
    push_weight : float
        The paper's ``mu``.
    loss : {'squared_hinge', 'hinge'}
        ``h(z) = max(0, z)**2`` or ``max(0, z)``; for the hinge, the
        gradient is a subgradient.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_components, n_features), float64

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._lmnn import lmnn_loss_grad
    >>> # classes [0, 0, 1, 1]; point 2 is an impostor of point 0:
    >>> # 0.5 * (1 + 1 + 6.25 + 6.25) + 0.5 * (1 + 1 - 0.25) = 8.125
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 0.0], [3.0, 0.0]])
    >>> targets = np.array([[1], [0], [3], [2]])
    >>> loss, grad = lmnn_loss_grad(np.eye(2), X, targets, [[0, 2]],
    ...                             push_weight=0.5, loss="hinge")
    >>> float(loss)
    8.125
    """
    L = np.asarray(L, dtype=np.float64)
    X = np.ascontiguousarray(X)
    targets = np.ascontiguousarray(targets, dtype=np.intp)
    pairs = np.asarray(impostor_pairs, dtype=np.intp).reshape(-1, 2)
    n_samples = X.shape[0]
    if targets.ndim != 2 or targets.shape[0] != n_samples:
        raise ValueError(
            f"targets must have shape (n_samples, n_neighbors) = ({n_samples}, k), "
            f"got {targets.shape}."
        )
    if targets.size and (targets.min() < 0 or targets.max() >= n_samples):
        raise ValueError(f"targets must index rows of X (0 to {n_samples - 1}).")
    if pairs.size and (pairs.min() < 0 or pairs.max() >= n_samples):
        raise ValueError(f"impostor_pairs must index rows of X (0 to {n_samples - 1}).")
    rows, cols = sort_pairs(pairs[:, 0], pairs[:, 1], n_samples)
    indptr = np.zeros(n_samples + 1, dtype=np.intp)
    np.cumsum(np.bincount(rows, minlength=n_samples), out=indptr[1:])
    Z = _transform(X, L)
    value, grad, _ = _loss_grad(
        X,
        L,
        targets,
        _target_sq(Z, targets),
        indptr,
        rows,
        cols,
        sq_distances_of_pairs(Z, rows, cols, dtype=np.float64, check_indices=False),
        mu=float(push_weight),
        squared=loss == "squared_hinge",
    )
    return value, grad


def _normalize_in_place(X):
    """Divide X by the RMS norm of its rows; return that norm (1 for zeros)."""
    largest = float(np.max(np.abs(X))) if X.size else 0.0
    if not largest > 0.0:
        return 1.0
    X /= X.dtype.type(largest)  # first, so that squares cannot overflow
    rms = float(np.sqrt(np.einsum("ij,ij->", X, X, dtype=np.float64) / X.shape[0]))
    X /= X.dtype.type(rms)
    return largest * rms


def _scaled_callback(callback, data_scale):
    """The user's callback, handed maps in the units of the input."""
    if callback is None:
        return None

    def scaled(components, n_iter):
        return callback(components / data_scale, n_iter)

    return scaled


def _transform(X, L):
    return X @ L.T.astype(X.dtype, copy=False)


def _target_sq(Z, targets):
    n_samples, n_neighbors = targets.shape
    rows = np.repeat(np.arange(n_samples, dtype=np.intp), n_neighbors)
    target_sq = sq_distances_of_pairs(
        Z, rows, targets.ravel(), dtype=np.float64, check_indices=False
    )
    return target_sq.reshape(n_samples, n_neighbors)


def _loss_grad(X, L, targets, target_sq, indptr, rows, cols, pair_sq, *, mu, squared):
    """The loss, gradient and active pairs from the distances (impostor
    pairs sorted by row, ``indptr`` their row offsets)."""
    push, pair_weights, target_weights, n_active = push_terms(
        indptr, pair_sq, target_sq, mu=mu, squared=squared
    )
    loss = (1.0 - mu) * float(target_sq.sum()) + mu * push
    # C = (1 - mu) sum_ij C_ij + mu sum_active h' (C_ij - C_il): one sparse
    # outer-product sum over the target pairs (pull and push weights
    # together) and the active impostor pairs.
    target_weights += 1.0 - mu
    C = lmnn_outer_sum(X, targets, target_weights, indptr, cols, pair_weights)
    return loss, 2.0 * L @ C, n_active


def _streamed_loss_grad(X, L, Z, targets, target_sq, impostors, *, mu, squared):
    """The loss over all pairs, visited in blocks (no pair stored)."""
    push, C_push, target_weights, n_active, n_candidates = streamed_push_terms(
        X,
        Z,
        impostors.y,
        target_sq,
        mu=mu,
        squared=squared,
        candidate_scale=NARROW_CANDIDATE_SCALE,
        working_memory=impostors.working_memory,
    )
    impostors.record_stream(n_candidates)
    loss = (1.0 - mu) * float(target_sq.sum()) + mu * push
    n_samples, n_neighbors = targets.shape
    C = weighted_outer_sum(
        X,
        np.repeat(np.arange(n_samples, dtype=np.intp), n_neighbors),
        targets.ravel(),
        (target_weights + (1.0 - mu)).ravel(),
    )
    return loss, 2.0 * L @ (C + C_push), n_active


def _working_set_objective(X, targets, impostors, *, mu, loss):
    """The loss over the candidate impostors, refreshed at every call.

    Inside a fit whose kernels run on several threads, each call lets BLAS
    use them too (see :func:`_serial_blas`).
    """
    squared = loss == "squared_hinge"
    n_threads = kernel_threads()
    if n_threads == 1:
        return functools.partial(_working_set_loss, X, targets, impostors, mu, squared)

    def fun(x):
        with limit_threads(blas=n_threads):
            return _working_set_loss(X, targets, impostors, mu, squared, x)

    return fun


def _serial_blas():
    """BLAS on one thread, for the optimiser's own vector operations.

    L-BFGS-B's updates are products of vectors of ``n_components *
    n_features`` entries: far too small for BLAS threads, whose hand-offs
    cost more than the work (a 164 x 164 map measured 5 s of CPU for 60
    iterations on two threads of a busy machine, against 0.1 s on one).
    """
    if kernel_threads() == 1:
        return contextlib.nullcontext()
    return limit_threads(blas=1)


def _working_set_loss(X, targets, impostors, mu, squared, x):
    """One evaluation of the loss over the candidate impostors."""
    L = np.asarray(x, dtype=np.float64).reshape(-1, X.shape[1])
    Z = _transform(X, L)
    target_sq = _target_sq(Z, targets)
    pair_sq = impostors.update(L, Z, target_sq)
    if pair_sq is None:  # more pairs than the budget holds
        value, grad, n_active = _streamed_loss_grad(
            X, L, Z, targets, target_sq, impostors, mu=mu, squared=squared
        )
        return value, grad.ravel(), {"active_impostors": n_active}
    value, grad, n_active = _loss_grad(
        X,
        L,
        targets,
        target_sq,
        impostors.indptr,
        impostors.rows,
        impostors.cols,
        pair_sq,
        mu=mu,
        squared=squared,
    )
    return value, grad.ravel(), {"active_impostors": n_active}


def _minimize_checked(
    minimize, objective, components, X, targets, impostors, *, max_iter, log, shape
):
    """Minimise, then check the result with an exact full impostor search.

    A loss that rose on the way, or impostors at the returned map that the
    candidates missed, mean the candidates were stale at some evaluation:
    the run resumes from there with a fresh search and the guaranteed
    staleness test. Returns the map, whether it converged, and why not.
    """
    for attempt in range(_MAX_RESTARTS + 1):
        with _serial_blas():
            result = minimize(
                objective,
                components,
                max_iter=max_iter - log.n_iter,
                log=log,
                shape=shape,
                finish=False,
            )
        components = result.x
        Z = _transform(X, components)
        margins = _target_sq(Z, targets).max(axis=1) + 1.0
        # searched: only the points whose candidates no bound proves complete
        if not result.loss_rose and not impostors.missed(Z, margins, components):
            return components, result.converged, result.message
        impostors.reset(guaranteed=True)
        if log.n_iter >= max_iter or attempt == _MAX_RESTARTS:
            break
    return components, False, "impostors outside the candidate set remain"


def _warn_small_classes(y_codes, n_neighbors):
    """Warn that classes of ``n_neighbors`` members or fewer get fewer targets."""
    sizes = np.bincount(y_codes)
    if np.any(sizes <= n_neighbors):
        warnings.warn(
            f"{int(np.count_nonzero(sizes <= n_neighbors))} classes have "
            f"n_neighbors={n_neighbors} members or fewer; their points "
            "get fewer target neighbours (the others of their class).",
            UserWarning,
            stacklevel=3,
        )


def _choose_targets(X, y, n_neighbors, working_memory):
    """The target neighbours; a point of a class of ``n_neighbors`` members or
    fewer gets the others of its class, and itself in place of the rest."""
    sizes = np.bincount(y)
    if np.all(sizes[sizes > 0] > n_neighbors):
        return target_neighbors(X, y, n_neighbors, working_memory=working_memory)
    n_samples = X.shape[0]
    targets = np.repeat(np.arange(n_samples, dtype=np.intp)[:, None], n_neighbors, 1)
    large = np.flatnonzero(sizes[y] > n_neighbors)
    if large.size:
        found = target_neighbors(
            np.ascontiguousarray(X[large]),
            y[large],
            n_neighbors,
            working_memory=working_memory,
        )
        targets[large] = large[found]
    for label in np.flatnonzero((sizes > 1) & (sizes <= n_neighbors)):
        members = np.flatnonzero(y == label)
        for position, i in enumerate(members):
            others = np.delete(members, position)
            targets[i, : others.shape[0]] = others
    return targets


def _best_scale(
    X, y, components, targets, *, mu, squared, random_state, working_memory
):
    """The factor ``c`` for which ``c L`` has the lowest loss, estimated.

    The loss is a sum over points, so it is estimated on up to
    ``_SCALE_SAMPLE`` points drawn from ``random_state``: their distances to
    every point give their exact share of the loss of ``c L`` for any ``c``.
    With ``t = c^2`` every distance scales by ``t``, and a triplet is active
    when ``d(i, l) < d(i, j) + 1 / t``; sorted distances and their cumulative
    sums give each share on a grid of ``t`` at once.
    """
    n_samples = X.shape[0]
    sample = np.sort(
        random_state.choice(n_samples, min(n_samples, _SCALE_SAMPLE), replace=False)
    )
    Z = X @ components.T.astype(X.dtype, copy=False)
    scales = np.logspace(-6, 2, 161)  # candidate values of t = c^2
    loss = scale_losses(
        Z,
        y,
        targets,
        sample,
        scales,
        mu=mu,
        squared=squared,
        working_memory=working_memory,
    )
    return float(np.sqrt(scales[np.argmin(loss)]))
