"""Large Margin Nearest Neighbor (LMNN)."""

import numbers

import numpy as np
from sklearn.utils import check_random_state

from ._base import MetricLearner
from ._init import initialize_components, resolve_n_components
from ._kernels import (
    find_impostors,
    target_neighbors,
    weighted_outer_sum,
)
from ._kernels._chunking import limit_threads
from ._kernels.impostors import sort_pairs
from ._kernels.lmnn import (
    impostors_of_rows,
    lmnn_outer_sum,
    pair_sq_distances,
    push_terms,
    ratios_by_group,
    scale_losses,
)
from ._optimize import IterationLog, minimize_lbfgs
from ._params import Interval, StrOptions, validate_params
from ._validation import validate_X_y

# Candidate impostors of a point i are the points of other classes with
# d(i, l) < _CANDIDATE_SCALE * (max_j d(i, j) + 1) when they were gathered:
# a margin enlarged so that the candidates stay valid while the map moves.
_CANDIDATE_SCALE = 1.3
# How far distances may have shrunk since a point's candidates were
# gathered is estimated by this low quantile of the measured ratios
# d_now / d_then over its candidate and target pairs.
_SHRINK_QUANTILE = 1e-2
_RATIO_SAMPLE = 50_000
_MIN_GROUP_SAMPLE = 200
# When more than this fraction of the points needs new candidates, one full
# search replaces the per-point searches.
_FULL_SEARCH_FRACTION = 0.3
# Beyond this many maps of reference (one per partial search), a full
# search starts afresh.
_MAX_REFERENCES = 30
# Points used to estimate the best scale of the initial map.
_SCALE_SAMPLE = 500
# Up to this many samples every kernel call and product is small, and handing
# work to other threads (kernels' or BLAS's) costs more than it saves.
_SERIAL_MAX_SAMPLES = 5000
# The most restarts of the optimizer after the final full check found
# impostors that the candidates missed.
_MAX_RESTARTS = 3


class _ImpostorSet:
    """Candidate impostor pairs, refreshed point by point when they go stale.

    A search for point ``i`` at some map keeps the pairs ``(i, l)``,
    ``y_l != y_i``, with ``d(i, l) < s r_i`` where ``r_i = max_j d(i, j) + 1``
    is its margin then and ``s = _CANDIDATE_SCALE``. Every evaluation
    computes the exact distances of all candidates and target pairs and
    measures, as a low quantile ``q`` of the ratios ``d_now / d_then``, how
    much distances have shrunk since their search. The points outside the
    candidates were at least ``s r_i`` away then, so about ``q s r_i`` now:
    point ``i`` is stale when its current margin exceeds that, and only
    stale points are searched again (all points at once, by the blocked
    full search, when many are stale). The estimate is a heuristic, so
    :meth:`LMNN.fit` ends with an exact full search that checks the result.
    """

    def __init__(self, y, working_memory, spread):
        self.y = y
        self.working_memory = working_memory
        # ||x_i - mean|| + max_l ||x_l - mean|| bounds ||x_i - x_l|| for
        # every l, which the guaranteed test needs.
        self.spread = spread + spread.max()
        self.guaranteed = False
        self.n_searches = 0
        self.n_partial_searches = 0
        self.rows = None

    def _store(self, rows, cols, pair_sq, ref_sq):
        n_samples = self.y.shape[0]
        self.rows, self.cols = rows, cols
        self.ref_sq = ref_sq
        self.indptr = np.zeros(n_samples + 1, dtype=np.intp)
        np.cumsum(np.bincount(rows, minlength=n_samples), out=self.indptr[1:])
        return pair_sq

    def search(self, Z, radii):
        """The exact set of pairs ``(i, l)`` with ``d(i, l) < radii[i]``."""
        # float32 halves the cost of the GEMMs; the set is exact regardless.
        rows, cols, _ = find_impostors(
            Z.astype(np.float32, copy=False),
            self.y,
            radii,
            working_memory=self.working_memory,
        )
        self.n_searches += 1
        return rows, cols

    def update(self, L, Z, target_sq):
        """Refresh stale candidates for the map ``L`` (``Z = X L^T``).

        Returns the exact squared distances of the candidate pairs.
        """
        margins = target_sq.max(axis=1) + 1.0
        if self.rows is None or len(self.references) > _MAX_REFERENCES:
            return self._full(L, Z, target_sq, margins)
        pair_sq = pair_sq_distances(Z, self.rows, self.cols)
        if self.guaranteed:
            stale = self._stale_guaranteed(L, margins)
        else:
            stale = self._stale_estimated(pair_sq, target_sq, margins)
        n_stale = int(np.count_nonzero(stale))
        if n_stale == 0:
            return pair_sq
        if n_stale > _FULL_SEARCH_FRACTION * margins.shape[0]:
            return self._full(L, Z, target_sq, margins)
        stale_rows = np.flatnonzero(stale)
        new_rows, new_cols = impostors_of_rows(
            Z.astype(np.float32, copy=False),
            self.y,
            stale_rows,
            _CANDIDATE_SCALE * margins,
            working_memory=self.working_memory,
        )
        self.n_partial_searches += 1
        new_sq = pair_sq_distances(Z, new_rows, new_cols)
        keep = ~stale[self.rows]
        rows, cols, pair_sq, ref_sq = sort_pairs(
            np.concatenate([self.rows[keep], new_rows]),
            np.concatenate([self.cols[keep], new_cols]),
            margins.shape[0],
            np.concatenate([pair_sq[keep], new_sq]),
            np.concatenate([self.ref_sq[keep], new_sq]),
        )
        self.ref_margins[stale_rows] = margins[stale_rows]
        self.target_ref[stale_rows] = target_sq[stale_rows]
        self.reference_of[stale_rows] = len(self.references)
        self.references.append(L.copy())
        return self._store(rows, cols, pair_sq, ref_sq)

    def _stale_estimated(self, pair_sq, target_sq, margins):
        # Distances of the points outside the candidates are assumed to have
        # shrunk no more than a low quantile of the measured ones, measured
        # separately for the points searched at each map of reference.
        stride = max(1, pair_sq.shape[0] // _RATIO_SAMPLE)
        n_groups = len(self.references)
        ratios, bounds = ratios_by_group(
            pair_sq,
            self.ref_sq,
            self.rows,
            stride,
            target_sq,
            self.target_ref,
            self.reference_of,
            n_groups,
        )
        shrink = np.ones(n_groups)
        if ratios.size:
            overall = None  # computed when a group is too small for its own
            for group in range(n_groups):
                members = ratios[bounds[group] : bounds[group + 1]]
                if members.size >= _MIN_GROUP_SAMPLE or n_groups == 1:
                    shrink[group] = np.quantile(members, _SHRINK_QUANTILE)
                else:
                    if overall is None:
                        overall = np.quantile(ratios, _SHRINK_QUANTILE)
                    shrink[group] = overall
        return margins > shrink[self.reference_of] * _CANDIDATE_SCALE * self.ref_margins

    def _stale_guaranteed(self, L, margins):
        # For l outside the candidates of i, searched at L_ref:
        # ||L v|| >= ||L_ref v|| - ||L - L_ref||_2 ||v|| with v = x_i - x_l,
        # ||L_ref v||^2 >= s r_ref_i and ||v|| <= spread_i. So l cannot be
        # inside the margin while the bound below stays above sqrt(margin).
        moves = np.array(
            [np.linalg.norm(L - reference, ord=2) for reference in self.references]
        )
        lowest = np.sqrt(_CANDIDATE_SCALE * self.ref_margins) - (
            moves[self.reference_of] * self.spread
        )
        return np.sqrt(margins) >= lowest

    def _full(self, L, Z, target_sq, margins):
        rows, cols = self.search(Z, _CANDIDATE_SCALE * margins)
        pair_sq = pair_sq_distances(Z, rows, cols)
        self.ref_margins = margins.copy()
        self.target_ref = target_sq.copy()
        self.references = [L.copy()]
        self.reference_of = np.zeros(margins.shape[0], dtype=np.intp)
        return self._store(rows, cols, pair_sq, pair_sq.copy())

    def contains(self, rows, cols):
        """Whether every pair ``(rows[p], cols[p])`` is a candidate."""
        n_samples = self.y.shape[0]
        if self.cols.shape[0] == 0:
            return rows.shape[0] == 0
        codes = self.rows * n_samples + self.cols  # sorted by (row, col)
        query = rows * n_samples + cols
        where = np.minimum(np.searchsorted(codes, query), codes.shape[0] - 1)
        return bool(np.all(codes[where] == query))


class _Objective:
    """The LMNN loss and gradient over the current candidate impostors."""

    def __init__(self, X, y, targets, *, mu, loss, working_memory, shape):
        n_samples, n_neighbors = targets.shape
        self.X = X
        self.mu = mu
        self.squared = loss == "squared_hinge"
        self.shape = shape
        self.n_samples = n_samples
        self.target_rows = np.repeat(np.arange(n_samples, dtype=np.intp), n_neighbors)
        self.target_cols = np.ascontiguousarray(targets.ravel(), dtype=np.intp)
        self.targets = self.target_cols.reshape(n_samples, n_neighbors)
        # On small float64 data one serial pass over LMNN's own arrays
        # replaces the general, threaded outer-product sum.
        self.serial_gradient = (
            X.dtype == np.float64 and n_samples <= _SERIAL_MAX_SAMPLES
        )
        spread = np.sqrt(((X - X.mean(axis=0)) ** 2).sum(axis=1, dtype=np.float64))
        self.impostors = _ImpostorSet(y, working_memory, spread)

    def transform(self, L):
        return self.X @ L.T.astype(self.X.dtype, copy=False)

    def target_sq(self, Z):
        target_sq = pair_sq_distances(Z, self.target_rows, self.target_cols)
        return target_sq.reshape(self.n_samples, -1)

    def __call__(self, x):
        L = np.asarray(x, dtype=np.float64).reshape(self.shape)
        Z = self.transform(L)
        target_sq = self.target_sq(Z)
        impostors = self.impostors
        pair_sq = impostors.update(L, Z, target_sq)
        push, pair_weights, target_weights, n_active = push_terms(
            impostors.indptr, pair_sq, target_sq, mu=self.mu, squared=self.squared
        )
        loss = (1.0 - self.mu) * float(target_sq.sum()) + self.mu * push
        # C = (1 - mu) sum_ij C_ij + mu sum_active h' (C_ij - C_il): one
        # sparse outer-product sum over the target pairs (pull and push
        # weights together) and the active impostor pairs.
        target_weights += 1.0 - self.mu
        if self.serial_gradient:
            C = lmnn_outer_sum(
                self.X,
                self.targets,
                target_weights,
                impostors.indptr,
                impostors.cols,
                pair_weights,
            )
        else:
            active = pair_weights != 0.0
            C = weighted_outer_sum(
                self.X,
                np.concatenate([self.target_rows, impostors.rows[active]]),
                np.concatenate([self.target_cols, impostors.cols[active]]),
                np.concatenate([target_weights.ravel(), pair_weights[active]]),
            )
        grad = 2.0 * L @ C
        return loss, grad.ravel(), {"active_impostors": n_active}

    def missed_impostors(self, L):
        """Whether ``L`` has impostors outside the current candidates."""
        Z = self.transform(L)
        margins = self.target_sq(Z).max(axis=1) + 1.0
        rows, cols = self.impostors.search(Z, margins)
        return not self.impostors.contains(rows, cols)


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


class _ContinuedLog:
    """An IterationLog seen by one optimizer run among several.

    Numbers iterations after those of earlier runs and holds back the
    convergence report until :meth:`LMNN.fit` knows the final outcome.
    ``rose`` tells whether the loss ever increased from one iteration to the
    next, which an exact objective never lets L-BFGS do: the candidates
    missed impostors at some evaluation, and the optimiser's stopping rule
    may have been met on the wrong losses.
    """

    def __init__(self, log, offset):
        self.log = log
        self.offset = offset
        self.converged = None
        self.message = None
        self.rose = False
        self._last = np.inf

    def record(self, n_iter, loss, components=None, **extras):
        self.rose = self.rose or loss > self._last
        self._last = loss
        self.log.record(self.offset + n_iter, loss, components, **extras)

    def finish(self, converged, message=None):
        self.converged, self.message = converged, message


def _minimize_subgradient(fun, x0, *, max_iter, tol, log, shape):
    """Subgradient descent with the paper's step-size adaptation (for 'hinge').

    The step grows by 1% after each accepted step and is halved, and the
    step rejected, whenever the loss would increase; only accepted steps
    count as iterations, so the recorded loss never increases. Converged
    when the loss decreased by less than ``tol`` (relative) over the last
    five iterations, or when no step along the subgradient lowers the loss.
    """
    x = np.asarray(x0, dtype=np.float64).ravel()
    loss, grad, _ = fun(x)
    grad_norm = np.linalg.norm(grad)
    step = 0.01 * max(np.linalg.norm(x), 1.0) / grad_norm if grad_norm > 0 else 0.0
    recent = [loss]
    n_iter = 0
    converged, message = False, f"reached max_iter={max_iter}"
    while n_iter < max_iter:
        if step * np.linalg.norm(grad) <= 1e-12 * max(np.linalg.norm(x), 1.0):
            converged, message = True, "no step along the subgradient lowers the loss"
            break
        candidate = x - step * grad
        new_loss, new_grad, new_extras = fun(candidate)
        if new_loss > loss:
            step *= 0.5
            continue
        x, loss, grad = candidate, new_loss, new_grad
        step *= 1.01
        n_iter += 1
        log.record(n_iter, loss, x.reshape(shape), **new_extras)
        recent.append(loss)
        if len(recent) > 6:
            recent.pop(0)
            if recent[0] - recent[-1] <= 5 * tol * max(abs(recent[-1]), 1.0):
                converged, message = True, "relative decrease below tol"
                break
    log.finish(converged, None if converged else message)
    return x.reshape(shape), n_iter, converged, message


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
    points at once, in blocks, when many are concerned). The estimate is a
    heuristic, so ``fit`` ends with an exact full search at the returned
    map; if it finds an impostor the candidates missed, the optimisation
    resumes from there under a staleness test that is guaranteed (from a
    bound on ``||L - L_ref||_2`` and the spread of the data). A map returned
    without a ``ConvergenceWarning`` therefore has no unseen violations.
    Distances are summed in float64; the searches run in float32 (their
    result is exact all the same).

    With the default squared hinge the loss is minimised by L-BFGS; it
    stops when one iteration lowers the loss by less than ``tol`` relative
    to it (SciPy's ``ftol``), a rule that does not depend on the scale of
    the data. A ``ConvergenceWarning`` is raised whenever the optimiser
    stops for another reason (``max_iter`` reached, line search failure),
    verbose or not.

    Parameters
    ----------
    n_neighbors : int, default=3
        Number of target neighbours per point. Every class needs at least
        ``n_neighbors + 1`` members.
    n_components : int, default=None
        Output dimension (rows of ``components_``); None means
        ``n_features``. Smaller values give a rectangular, dimension
        reducing map.
    init : {'pca', 'identity', 'lda', 'random', 'auto'} or ndarray of shape \
(n_components, n_features), default='pca'
        The starting map; see ``linmetric._init.initialize_components``.
        'pca' starts from the principal directions, which keeps Euclidean
        distances when ``n_components == n_features``. The map is then
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
        Convergence when the loss decreases by less than ``tol`` relative
        to its value in one L-BFGS iteration (SciPy's ``ftol``) or, with
        ``loss='hinge'``, by less than ``5 * tol`` over five iterations.
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
        means ``sklearn.get_config()["working_memory"]``. The candidate
        impostor pairs are stored besides it.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map ``L``, in the dtype of X.
    target_neighbors_ : ndarray of shape (n_samples, n_neighbors)
        Indices of the target neighbours of each training point, as chosen
        for the last pass.
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
        Full impostor searches run, the final check included.
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
    }

    def __init__(
        self,
        n_neighbors=3,
        n_components=None,
        *,
        init="pca",
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

    def fit(self, X, y):
        """Learn the map from labelled data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, finite; float32 is kept.
        y : array-like of shape (n_samples,)
            Class labels; at least two classes, each with more than
            ``n_neighbors`` members.

        Returns
        -------
        self : LMNN
            The fitted learner.
        """
        try:
            n_samples = len(X)
        except TypeError:  # not a sequence: validation will say so
            n_samples = 0
        n_threads = 1 if n_samples <= _SERIAL_MAX_SAMPLES else None
        with limit_threads(n_threads):
            return self._fit(X, y)

    def _fit(self, X, y):
        validate_params(self)
        previous = getattr(self, "components_", None) if self.warm_start else None
        X, y_codes, _ = validate_X_y(
            self,
            X,
            y,
            min_class_size=self.n_neighbors + 1,
            min_class_size_param=("n_neighbors", self.n_neighbors),
        )
        n_features = X.shape[1]
        n_components = resolve_n_components(self.n_components, n_features)
        shape = (n_components, n_features)
        random_state = check_random_state(self.random_state)
        if previous is not None and previous.shape == shape:
            components = np.asarray(previous, dtype=np.float64)
        else:
            components = initialize_components(
                self.init,
                X,
                y_codes,
                n_components=n_components,
                random_state=random_state,
            ).astype(np.float64)

        targets = target_neighbors(
            X, y_codes, self.n_neighbors, working_memory=self.working_memory
        )
        if previous is None or previous.shape != shape:
            # Start at the scale the loss prefers along the initial map; the
            # optimiser would otherwise spend its first iterations rescaling.
            components *= _best_scale(
                X,
                y_codes,
                components,
                targets,
                mu=float(self.push_weight),
                squared=self.loss == "squared_hinge",
                random_state=random_state,
                working_memory=self.working_memory,
            )
        log = IterationLog(
            "LMNN",
            verbose=self.verbose,
            callback=self.callback,
            columns=("active_impostors",),
        )
        n_iter, n_searches, n_passes = 0, 0, 0
        all_converged, first_message = True, None
        while True:
            objective = _Objective(
                X,
                y_codes,
                targets,
                mu=float(self.push_weight),
                loss=self.loss,
                working_memory=self.working_memory,
                shape=shape,
            )
            components, run_iter, converged, message = self._run_pass(
                objective, components, n_iter, log, shape
            )
            n_iter += run_iter
            n_passes += 1
            n_searches += objective.impostors.n_searches
            if not converged:
                all_converged = False
                first_message = first_message or message
            if n_passes == self.n_passes or n_iter >= self.max_iter:
                break
            # The next pass: target neighbours by the distance learned so far.
            new_targets = target_neighbors(
                objective.transform(components),
                y_codes,
                self.n_neighbors,
                working_memory=self.working_memory,
            )
            changed = np.any(
                np.sort(new_targets, axis=1) != np.sort(targets, axis=1), axis=1
            )
            n_changed = int(np.count_nonzero(changed))
            if self.verbose:
                print(
                    f"[LMNN] pass {n_passes + 1}: target neighbours of "
                    f"{n_changed} points changed"
                )
            if n_changed == 0:
                break
            targets = new_targets
        log.finish(all_converged, None if all_converged else first_message)

        self.components_ = np.ascontiguousarray(components, dtype=X.dtype)
        self.target_neighbors_ = targets
        self.n_passes_ = n_passes
        self.n_iter_ = n_iter
        self.loss_curve_ = log.loss_curve
        self.history_ = log.history
        self.converged_ = all_converged
        self.n_impostor_searches_ = n_searches
        return self

    def _run_pass(self, objective, components, n_iter, log, shape):
        """Minimise over one set of target neighbours, then check the result.

        Returns the map, the iterations run, whether the optimiser
        converged, and why not.
        """
        start = n_iter
        for attempt in range(_MAX_RESTARTS + 1):
            run_log = _ContinuedLog(log, n_iter)
            components, run_iter = self._minimize(
                objective, components, self.max_iter - n_iter, run_log, shape
            )
            n_iter += run_iter
            converged, message = run_log.converged, run_log.message
            # Final check: an exact full search at the returned map, and a
            # loss that never rose on the way there.
            if not run_log.rose and not objective.missed_impostors(components):
                break
            # Resume with a fresh full search and the guaranteed test, so
            # that the next run sees the exact loss throughout.
            objective.impostors.rows = None
            objective.impostors.guaranteed = True
            if n_iter >= self.max_iter or attempt == _MAX_RESTARTS:
                converged = False
                message = "impostors outside the candidate set remain"
                break
        return components, n_iter - start, converged, message

    def _minimize(self, objective, components, max_iter, log, shape):
        if self.loss == "hinge":
            components, run_iter, _, _ = _minimize_subgradient(
                objective,
                components,
                max_iter=max_iter,
                tol=self.tol,
                log=log,
                shape=shape,
            )
            return components, run_iter
        result = minimize_lbfgs(
            objective,
            components,
            max_iter=max_iter,
            tol=0.0,
            ftol=self.tol,
            log=log,
            shape=shape,
        )
        return result.x, result.n_iter

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
