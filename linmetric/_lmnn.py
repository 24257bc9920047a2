"""Large Margin Nearest Neighbor (LMNN)."""

import numbers

import numpy as np
from sklearn.utils import check_random_state

from ._base import MetricLearner
from ._init import initialize_components, resolve_n_components
from ._kernels import (
    find_impostors,
    sq_distances_of_pairs,
    target_neighbors,
    weighted_outer_sum,
)
from ._kernels.lmnn import push_terms
from ._optimize import IterationLog, minimize_lbfgs
from ._params import Interval, StrOptions, validate_params
from ._validation import validate_X_y

# Candidate impostors are gathered for a map L_ref with a margin enlarged so
# that they contain every impostor of any map L = A L_ref with
# ||A - I||_2 <= _SAFE_MOVE (see _ImpostorSet). Larger values mean fewer
# full searches but more candidates to re-check at every evaluation.
_SAFE_MOVE = 0.1
# When the bound above does not apply (L_ref without full column rank),
# the full search is also repeated after this many evaluations.
_REFRESH_EVERY = 10
# The most restarts of the optimizer after the final full check found
# impostors that the candidates missed.
_MAX_RESTARTS = 3


class _ImpostorSet:
    """Candidate impostor pairs, refreshed when the map has moved too far.

    A full search at the map ``L_ref`` keeps every differently labelled
    pair ``(i, l)`` with

        d_ref(i, l) < ((1 + e)^2 max_j d_ref(i, j) + 1) / (1 - e)^2,

    ``e = _SAFE_MOVE``. For any map ``L = A L_ref`` with ``||A - I||_2 <= e``,
    distances change by factors within ``[(1 - e)^2, (1 + e)^2]``, so every
    pair inside the margin under ``L`` (``d(i, l) < max_j d(i, j) + 1``) is
    among the candidates: the loss and gradient computed from the
    candidates are exact. ``||A - I||_2 = ||(L - L_ref) L_ref^+||_2`` is
    measured at every evaluation and a new full search starts when it
    exceeds ``e``. The argument needs ``L_ref`` to have full column rank;
    otherwise the search is also repeated every ``_REFRESH_EVERY``
    evaluations, and the final check in :meth:`LMNN.fit` catches the rest.
    """

    def __init__(self, y, working_memory):
        self.y = y
        self.working_memory = working_memory
        self.n_searches = 0
        self.reference = None

    def movement(self, L):
        """``||(L - L_ref) L_ref^+||_2``, or inf before the first search."""
        if self.reference is None:
            return np.inf
        return float(np.linalg.norm((L - self.reference) @ self.pinv, ord=2))

    def needs_search(self, L):
        if self.movement(L) > _SAFE_MOVE:
            return True
        return not self.full_rank and self.evaluations >= _REFRESH_EVERY

    def search(self, L, Z, target_sq, *, enlarge=True):
        """Full search at ``L`` (``Z = X L^T``); returns sorted (rows, cols)."""
        farthest = target_sq.max(axis=1)
        if enlarge:
            grow, shrink = (1 + _SAFE_MOVE) ** 2, (1 - _SAFE_MOVE) ** 2
            radii = (grow * farthest + 1.0) / shrink
        else:
            radii = farthest + 1.0
        # The search only selects pairs (its set is exact whatever the
        # dtype); float32 halves the cost of its GEMMs.
        rows, cols, _ = find_impostors(
            Z.astype(np.float32, copy=False),
            self.y,
            radii,
            working_memory=self.working_memory,
        )
        self.n_searches += 1
        return rows, cols

    def refresh(self, L, Z, target_sq):
        rows, cols = self.search(L, Z, target_sq)
        n_samples = Z.shape[0]
        self.rows, self.cols = rows, cols
        self.indptr = np.zeros(n_samples + 1, dtype=np.intp)
        np.cumsum(np.bincount(rows, minlength=n_samples), out=self.indptr[1:])
        self.reference = L.copy()
        self.pinv = np.linalg.pinv(L)
        self.full_rank = np.linalg.matrix_rank(L) == L.shape[1]
        self.evaluations = 0

    def contains(self, rows, cols, n_samples):
        """Whether every pair ``(rows[p], cols[p])`` is a candidate."""
        codes = self.rows * n_samples + self.cols  # sorted: rows, cols sorted
        query = rows * n_samples + cols
        where = np.searchsorted(codes, query)
        where = np.minimum(where, codes.shape[0] - 1)
        return codes.shape[0] > 0 and bool(np.all(codes[where] == query))


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
        self.impostors = _ImpostorSet(y, working_memory)

    def transform(self, L):
        return self.X @ L.T.astype(self.X.dtype, copy=False)

    def target_sq(self, Z):
        return (
            sq_distances_of_pairs(Z, self.target_rows, self.target_cols)
            .reshape(self.n_samples, -1)
            .astype(np.float64, copy=False)
        )

    def __call__(self, x):
        L = np.asarray(x, dtype=np.float64).reshape(self.shape)
        Z = self.transform(L)
        target_sq = self.target_sq(Z)
        impostors = self.impostors
        if impostors.reference is None or impostors.needs_search(L):
            impostors.refresh(L, Z, target_sq)
        impostors.evaluations += 1
        push, pair_weights, target_weights, n_active, _ = push_terms(
            Z,
            impostors.indptr,
            impostors.cols,
            target_sq,
            mu=self.mu,
            squared=self.squared,
        )
        loss = (1.0 - self.mu) * float(target_sq.sum()) + self.mu * push
        # C = (1 - mu) sum_ij C_ij + mu sum_active h' (C_ij - C_il): one
        # sparse outer-product sum over the target pairs (pull and push
        # weights together) and the active impostor pairs.
        active = pair_weights != 0.0
        C = weighted_outer_sum(
            self.X,
            np.concatenate([self.target_rows, impostors.rows[active]]),
            np.concatenate([self.target_cols, impostors.cols[active]]),
            np.concatenate(
                [(1.0 - self.mu) + target_weights.ravel(), pair_weights[active]]
            ),
        )
        grad = 2.0 * L @ C
        return loss, grad.ravel(), {"active_impostors": n_active}

    def missed_impostors(self, L):
        """Whether ``L`` has impostors outside the current candidates."""
        Z = self.transform(L)
        target_sq = self.target_sq(Z)
        rows, cols = self.impostors.search(L, Z, target_sq, enlarge=False)
        if rows.shape[0] == 0:
            return False
        return not self.impostors.contains(rows, cols, self.n_samples)


class _ContinuedLog:
    """An IterationLog seen by one optimizer run among several.

    Numbers iterations after those of earlier runs and holds back the
    convergence report until :meth:`LMNN.fit` knows the final outcome.
    """

    def __init__(self, log, offset):
        self.log = log
        self.offset = offset
        self.converged = None
        self.message = None

    def record(self, n_iter, loss, components=None, **extras):
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
    and stay fixed during the optimisation.

    Impostors are kept as an active set: a full search gathers the pairs
    inside an enlarged margin, and the following evaluations re-check only
    those candidates. A new full search runs whenever the map has moved
    far enough that a pair outside the candidates could have entered a
    margin (a bound on ``||(L - L_ref) L_ref^+||_2``, the relative change of
    the map since the search); when that bound does not apply (a
    rectangular map) the search is also repeated every few evaluations. A
    final full search checks the returned map: if it finds impostors the
    candidates missed, the optimisation resumes from there.

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
        distances when ``n_components == n_features``.
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
        Indices of the target neighbours of each training point.
    n_iter_ : int
        Iterations run, over all restarts.
    loss_curve_ : ndarray of shape (n_iter_,)
        The loss after each iteration.
    history_ : dict of str to ndarray of shape (n_iter_,)
        Per iteration: 'loss', 'active_impostors' (impostor pairs
        ``(i, l)`` inside the margin of ``i``) and 'seconds' since the start.
    converged_ : bool
        Whether the optimiser met its stopping rule (a
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
    >>> round(knn.fit(X, y).score(X, y), 2)
    0.98
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
        objective = _Objective(
            X,
            y_codes,
            targets,
            mu=float(self.push_weight),
            loss=self.loss,
            working_memory=self.working_memory,
            shape=shape,
        )
        log = IterationLog(
            "LMNN",
            verbose=self.verbose,
            callback=self.callback,
            columns=("active_impostors",),
        )
        n_iter = 0
        for attempt in range(_MAX_RESTARTS + 1):
            run_log = _ContinuedLog(log, n_iter)
            components, run_iter = self._minimize(
                objective, components, self.max_iter - n_iter, run_log, shape
            )
            n_iter += run_iter
            converged, message = run_log.converged, run_log.message
            # Final check: a full search at the returned map (unless the
            # last evaluation there just ran one).
            searched_here = objective.impostors.evaluations <= 1 and np.array_equal(
                objective.impostors.reference, components
            )
            if searched_here or not objective.missed_impostors(components):
                break
            objective.impostors.reference = None  # search again when resuming
            if n_iter >= self.max_iter or attempt == _MAX_RESTARTS:
                converged = False
                message = "impostors outside the candidate set remain"
                break
        log.finish(converged, None if converged else message)

        self.components_ = np.ascontiguousarray(components, dtype=X.dtype)
        self.target_neighbors_ = targets
        self.n_iter_ = n_iter
        self.loss_curve_ = log.loss_curve
        self.history_ = log.history
        self.converged_ = bool(converged)
        self.n_impostor_searches_ = objective.impostors.n_searches
        return self

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
