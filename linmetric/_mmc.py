"""Mahalanobis Metric for Clustering (MMC)."""

import functools
import numbers

import numpy as np
from scipy import linalg
from scipy.linalg import lapack
from sklearn.utils import check_random_state

from ._base import SupervisedMetricLearner
from ._constraints import default_n_constraints
from ._itml import sample_label_pairs
from ._kernels.mmc import scaled_rows, squared_differences
from ._optimize import IterationLog
from ._params import ITERATION_CONSTRAINTS, Interval, validate_params
from ._psd import components_from_metric
from ._scratch import scratch
from ._threads import fit_threads
from ._validation import (
    differences_in_units,
    validate_pairs,
    validate_X,
    validate_X_y,
)

# Relative length of the first gradient step of the full form, ||step|| / ||A||.
INITIAL_RATE = 0.1
# Rounds of alternating projections onto {f(A) <= 1} and the PSD cone.
MAX_PROJECTIONS = 50
# f(A) <= 1 + FEASIBILITY_TOL ends the alternating projections.
FEASIBILITY_TOL = 1e-9
# A step (relative rate, or Newton step fraction) below this is no step.
SMALLEST_STEP = 1e-10
# Sufficient decrease of the diagonal form's line search.
ARMIJO = 1e-4
# s_k is floored at S_FLOOR times its mean over the active features.
S_FLOOR = 1e-3
# The diagonal form squares the differences before scaling them: if the
# largest absolute difference lies outside this range, some square could
# overflow or turn subnormal where the scaled one would not (NumPy's path).
SQUARE_SAFE = (2.0**-300, 2.0**300)
# The diagonal form takes each kind of pair in its own units when the sum of
# the squares of one kind is below this in the units of the largest
# difference (its Hessian scales as the square of that sum).
SEPARATE_UNITS_BELOW = 2.0**-200
# Ridge of the Newton system, relative to the Hessian's largest diagonal entry.
RIDGE = 1e-10


class MMC(SupervisedMetricLearner):
    r"""Mahalanobis Metric for Clustering (Xing, Ng, Jordan and Russell).

    MMC makes dissimilar pairs far apart while keeping similar pairs close:
    with ``S`` the similar and ``D`` the dissimilar pairs and
    ``||x - x'||_A = sqrt((x - x')^T A (x - x'))``, it solves [1]_::

        max_A  g(A) = sum_{(i,j) in D} ||x_i - x_j||_A
        s.t.   f(A) = sum_{(i,j) in S} ||x_i - x_j||_A^2 <= 1,  A PSD.

    The sum of dissimilar distances (not of squared distances) keeps the
    solution from collapsing onto one direction.

    - **Full form** (``diagonal=False``), as in the paper: projected gradient
      ascent. Each iteration takes a gradient step on ``g`` orthogonal to the
      gradient of ``f``, then projects back by alternating projections onto
      the half-space ``{f(A) <= 1}`` and the PSD cone (an eigendecomposition
      of the symmetrised matrix, negative eigenvalues set to zero), at most
      50 rounds, and finally scales ``A`` by ``1 / f(A)`` if ``f(A) > 1`` so
      the iterate is exactly feasible. The step length is ``rate * ||A||_F``;
      ``rate`` starts at 0.1, halves until the step increases ``g`` and
      doubles (up to 1) after each step. ``A`` starts at
      ``I / trace(sum_S d d^T)``.
    - **Diagonal form** (``diagonal=True``): Newton's method on the paper's
      equivalent convex objective over the diagonal ``a >= 0`` of ``A``,
      ``h(a) = sum_S ||d||_a^2 - log(sum_D ||d||_a)``; variables at zero that
      the gradient pushes below zero stay fixed (projected Newton), with a
      backtracking line search in which every trial point is moved to the
      best scale along its ray (``h(c a)`` is least at ``c = 1 / (2 s.a)``
      with ``s`` the per-feature similar sums, in closed form), so every
      iterate has ``sum_S ||d||_a^2 = 1/2``.

    **Convergence.** The full form stops when an iteration changes ``A``
    by at most ``tol`` relatively in Frobenius norm; the diagonal form when
    the full (projected) Newton step would change ``a`` by at most ``tol``
    relatively (a short damped step is no sign of convergence); both when
    no step improves the objective any more (a stationary point).
    Otherwise a ``ConvergenceWarning`` is raised after ``max_iter``
    iterations.

    **Robustness.** The eigendecomposition is done on the symmetrised matrix
    and never sees NaN: squared distances that round below zero count as
    zero, and a dissimilar pair at distance zero (for instance a point paired
    with itself) adds nothing to the gradient. ``h`` is unbounded below when
    a feature separates dissimilar pairs but never differs within a similar
    pair; its per-feature similar sum is floored at ``1e-3`` times the mean,
    so such a feature gets a large, finite weight. At least one similar and
    one dissimilar pair of distinct points are required.

    **Constraints.** ``fit(X, y)`` draws ``n_constraints`` pairs from the
    labels (half similar, half dissimilar; see :class:`ITML`, which draws
    them the same way). ``fit_pairs(pairs, pair_labels)`` takes pairs of
    points labelled +1 (similar) or -1 (dissimilar); for a scikit-learn
    estimator on pairs (cross-validation, threshold), wrap the learner in
    :class:`PairsClassifier`.

    Parameters
    ----------
    diagonal : bool, default=False
        Learn a diagonal ``A`` (feature weights) by Newton's method instead of
        a full matrix by projected gradient.
    n_constraints : int or None, default=None
        Number of pairs drawn from the labels in ``fit(X, y)``; None means
        ``20 * n_classes ** 2``.
    max_iter : int, default=100
        The most iterations (gradient steps or Newton steps).
    tol : float, default=1e-3
        Tolerance on the relative change of the parameters in one iteration
        (for the diagonal form, the change of a full Newton step).
    verbose : int, default=0
        If positive, print one line per iteration.
    callback : callable or None, default=None
        Called as ``callback(components, n_iter)`` after every iteration,
        with the current ``L``.
    random_state : int, RandomState instance or None, default=None
        Draws the constraints from the labels.

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L^T L = A``, in the dtype of the training data. For the
        diagonal form, ``diag(sqrt(a))``.
    n_iter_ : int
        Number of iterations done.
    loss_curve_ : ndarray of shape (n_iter_,)
        After each iteration, ``-g(A)`` (full form) or ``h(a)`` (diagonal
        form): both decrease.
    history_ : dict of str to ndarray of shape (n_iter_,)
        Per iteration: ``'loss'``, ``'change'`` (the convergence criterion),
        ``'step'`` (the full form's rate, the diagonal form's step fraction)
        and ``'seconds'``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    ITML : Learns from the same pairs with a LogDet prior.
    PairsClassifier : MMC as a classifier of pairs.

    References
    ----------
    .. [1] E. P. Xing, A. Y. Ng, M. I. Jordan and S. Russell, "Distance metric
       learning, with application to clustering with side-information",
       NIPS 2002.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from linmetric import MMC
    >>> X, y = load_wine(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(
    ...     X, y, stratify=y, random_state=0)
    >>> model = make_pipeline(
    ...     StandardScaler(), MMC(random_state=0), KNeighborsClassifier(3))
    >>> round(model.fit(X_train, y_train).score(X_test, y_test), 2)
    0.96
    >>> mmc = MMC(diagonal=True, random_state=0).fit(X_train, y_train)
    >>> mmc.components_.shape
    (13, 13)
    """

    _parameter_constraints = {
        "diagonal": ["boolean"],
        "n_constraints": [Interval(numbers.Integral, 2, None, closed="left"), None],
        **ITERATION_CONSTRAINTS,
    }

    def __init__(
        self,
        diagonal=False,
        n_constraints=None,
        max_iter=100,
        tol=1e-3,
        verbose=0,
        callback=None,
        random_state=None,
    ):
        self.diagonal = diagonal
        self.n_constraints = n_constraints
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.callback = callback
        self.random_state = random_state

    def fit(self, X, y):
        """Learn the metric from pairs drawn from class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels, at least two classes, one of them with two members.

        Returns
        -------
        self : MMC
        """
        validate_params(self)
        random_state = check_random_state(self.random_state)
        X, y_codes, classes = validate_X_y(self, X, y)
        n_constraints = default_n_constraints(self.n_constraints, classes.shape[0])
        rows, cols, signs = sample_label_pairs(y_codes, n_constraints, random_state)
        return self._fit_pairs_of(X, rows, cols, signs)

    def fit_pairs(self, pairs, pair_labels):
        """Learn the metric from pairs of points labelled similar or dissimilar.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features)
            ``pairs[p, 0]`` and ``pairs[p, 1]`` are the two points of pair p.
        pair_labels : array-like of shape (n_pairs,)
            +1 (similar) or -1 (dissimilar) for each pair.

        Returns
        -------
        self : MMC
        """
        validate_params(self)
        if pair_labels is None:
            raise ValueError("fit_pairs needs pair_labels, +1 or -1 for each pair.")
        # The diagonal form's kernel sees every point once and finds
        # non-finite ones itself; only then are the pairs checked for them
        # (for the error message naming them).
        pairs, signs = validate_pairs(pairs, pair_labels, finite=not self.diagonal)

        def check_finite():
            validate_pairs(pairs, pair_labels)

        if self.diagonal and pairs.size and not np.isfinite(pairs[0, 0]).all():
            check_finite()
        n_pairs, _, n_features = pairs.shape
        # The points were checked above: one row sets n_features_in_ (and
        # rejects pairs with no features) at no cost, through validate_X's
        # path for ready arrays.
        validate_X(self, pairs[:1, 0])
        rows = np.arange(0, 2 * n_pairs, 2, dtype=np.intp)
        return self._fit_pairs_of(
            pairs.reshape(2 * n_pairs, n_features), rows, rows + 1, signs, check_finite
        )

    def _fit_pairs_of(self, X, rows, cols, signs, check_finite=None):
        # Pair p is (X[rows[p]], X[cols[p]]). In units of 2**exponent: the
        # metric of data at any finite scale stays representable (MMC's
        # metric scales as 1 / scale**2); the map in the units of X is
        # L / 2**exponent.
        with scratch() as empty:
            return self._fit_pairs_in(X, rows, cols, signs, check_finite, empty)

    def _fit_pairs_in(self, X, rows, cols, signs, check_finite, empty):
        # The temporary arrays of the diagonal form come from ``empty``.
        is_similar = signs > 0
        if self.diagonal:
            *data, similar_total, dissimilar_total, exponent = diagonal_data(
                X, rows, cols, is_similar, check_finite, empty=empty
            )
            totals = similar_total, dissimilar_total
        else:
            # each kind of pair in units of its own largest difference: the
            # solution depends on the similar pairs' units only (the
            # dissimilar ones scale the objective by a constant), and one
            # unit for both would square a similar pair 1e-250 times the
            # largest dissimilar one to zero
            similar, exponent = differences_in_units(
                X[rows[is_similar]], X[cols[is_similar]]
            )
            dissimilar, _ = differences_in_units(
                X[rows[~is_similar]], X[cols[~is_similar]]
            )
            data = similar, dissimilar
            totals = np.any(similar), np.any(dissimilar)
        n_similar = np.count_nonzero(is_similar)
        counts = n_similar, signs.shape[0] - n_similar
        for name, total, count in zip(
            ("similar", "dissimilar"), totals, counts, strict=True
        ):
            if not total:
                raise ValueError(
                    f"MMC needs at least one {name} pair of distinct points; got "
                    f"{count} {name} pair(s), none with distinct points."
                )
        log = IterationLog(
            "MMC",
            verbose=self.verbose,
            callback=self.callback,
            columns=("change", "step"),
        )
        solve = (
            functools.partial(_mmc_diagonal, empty=empty)
            if self.diagonal
            else _mmc_full
        )
        with fit_threads("mmc", X.shape[1]):
            metric, n_iter, converged, change = solve(
                *data,
                self.max_iter,
                self.tol,
                log,
                self.callback is not None,
            )
        log.finish(
            converged,
            None
            if converged
            else f"relative change of the metric in the last iteration "
            f"{change:.3g} > tol={self.tol}",
        )
        if self.diagonal:
            components = np.diag(np.sqrt(metric))
        else:
            components = components_from_metric(metric)
        self.components_ = np.ldexp(components, -exponent).astype(X.dtype, copy=False)
        self.n_iter_ = n_iter
        self.loss_curve_ = log.loss_curve
        self.history_ = log.history
        return self


# --- full form ----------------------------------------------------------------


def dissimilar_objective(A, dissimilar_diffs):
    """``g(A) = sum_D ||d||_A`` and its gradient ``sum_D d d^T / (2 ||d||_A)``.

    Squared distances that round below zero count as zero; pairs at distance
    zero add nothing to the gradient.
    """
    sq = np.einsum("ij,ij->i", dissimilar_diffs @ A, dissimilar_diffs)
    distances = np.sqrt(np.maximum(sq, 0.0))
    positive = distances > 0
    weights = np.zeros_like(distances)
    weights[positive] = 0.5 / distances[positive]
    grad = (dissimilar_diffs * weights[:, None]).T @ dissimilar_diffs
    return float(distances.sum()), grad


def _dissimilar_value(A, dissimilar_diffs):
    sq = np.einsum("ij,ij->i", dissimilar_diffs @ A, dissimilar_diffs)
    return float(np.sqrt(np.maximum(sq, 0.0)).sum())


def project_psd(A):
    """The nearest PSD matrix in Frobenius norm: negative eigenvalues set to 0."""
    A = (A + A.T) / 2
    try:
        w, V = np.linalg.eigh(A)
    except np.linalg.LinAlgError:  # pragma: no cover - LAPACK's divide and conquer
        w, V = linalg.eigh(A, driver="ev")
    return (V * np.maximum(w, 0.0)) @ V.T


def project_constraints(A, sigma, sigma_sq):
    """Alternating projections onto ``{<A, sigma> <= 1}`` and the PSD cone.

    Ends exactly feasible: if ``<A, sigma> > 1`` after the last round, ``A``
    is scaled by ``1 / <A, sigma>``.
    """
    for _ in range(MAX_PROJECTIONS):
        excess = np.vdot(A, sigma) - 1.0
        if excess > 0:
            A = A - (excess / sigma_sq) * sigma
        A = project_psd(A)
        if np.vdot(A, sigma) <= 1.0 + FEASIBILITY_TOL:
            break
    value = np.vdot(A, sigma)
    if value > 1.0:
        A = A / value
    return A


def _mmc_full(similar, dissimilar, max_iter, tol, log, want_components):
    sigma = similar.T @ similar  # f(A) = <A, sigma>
    sigma_sq = np.vdot(sigma, sigma)
    A = np.eye(sigma.shape[0]) / np.trace(sigma)
    g = _dissimilar_value(A, dissimilar)
    rate = INITIAL_RATE
    change = np.inf
    for n_iter in range(1, max_iter + 1):
        _, grad = dissimilar_objective(A, dissimilar)
        grad -= (np.vdot(grad, sigma) / sigma_sq) * sigma  # orthogonal to grad f
        grad_norm = np.linalg.norm(grad)
        if grad_norm == 0:
            return A, n_iter - 1, True, 0.0
        A_norm = np.linalg.norm(A)
        while True:
            trial = project_constraints(
                A + (rate * A_norm / grad_norm) * grad, sigma, sigma_sq
            )
            g_trial = _dissimilar_value(trial, dissimilar)
            if g_trial > g:
                break
            rate /= 2.0
            if rate < SMALLEST_STEP:  # no step increases g: stationary
                trial, g_trial = A, g
                break
        change = np.linalg.norm(trial - A) / A_norm
        A, g = trial, g_trial
        log.record(
            n_iter,
            -g,
            components_from_metric(A) if want_components else None,
            change=change,
            step=rate,
        )
        if change <= tol:
            return A, n_iter, True, change
        rate = min(2.0 * rate, 1.0)
    return A, max_iter, False, change


# --- diagonal form --------------------------------------------------------------


def diagonal_data(X, rows, cols, similar, check_finite=None, *, empty=np.empty):
    """The data of the diagonal form from the pairs ``(X[rows[p]], X[cols[p]])``.

    What :func:`diagonal_problem` returns for the differences in units of
    ``2**exponent`` (:func:`~linmetric._validation.differences_in_units`),
    and ``exponent``: one pass of a kernel over the points, without forming
    the differences, then the squares scaled by ``2**(-2 * exponent)``
    (exact). Data whose differences are too large or too small to square
    safely takes NumPy's path. ``check_finite``, if given, is called when
    some square is not finite: it raises if some point is not (the caller
    skipped that check), else the squares overflowed. ``empty(shape)``
    makes the array of squared differences.
    """
    n_features = X.shape[1]
    s = np.empty(n_features)
    dissimilar_sums = np.empty(n_features)
    squared_t = empty((n_features, rows.shape[0] - np.count_nonzero(similar)))
    largest = squared_differences(X, rows, cols, similar, s, dissimilar_sums, squared_t)
    finite = np.isfinite(s.sum() + dissimilar_sums.sum())
    if not finite and check_finite is not None:
        check_finite()
    if finite and SQUARE_SAFE[0] <= largest <= SQUARE_SAFE[1]:
        exponent = int(np.frexp(largest)[1])
        scale = np.ldexp(1.0, -2 * exponent)
        s *= scale
        dissimilar_sums *= scale
        squared_t *= scale
        problem = _floored(s, dissimilar_sums, squared_t)
        if min(problem[-2:]) > SEPARATE_UNITS_BELOW:
            return (*problem, exponent)
        # (a kind of pair whose squares are tiny or zero beside the other's:
        # maybe identical points, maybe differences too small to square in
        # these units, whose Newton system would underflow)
    # Each kind of pair in units of its own largest difference: the minimiser
    # depends on the similar pairs' units only (those of the dissimilar ones
    # add a constant to h).
    similar_diffs, exponent = differences_in_units(X[rows[similar]], X[cols[similar]])
    dissimilar_diffs, _ = differences_in_units(X[rows[~similar]], X[cols[~similar]])
    diffs = np.concatenate([similar_diffs, dissimilar_diffs])
    kinds = np.arange(diffs.shape[0]) < similar_diffs.shape[0]
    return (*diagonal_problem(diffs, kinds), exponent)


def _floored(s, dissimilar_sums, squared_t):
    active = (s > 0) | (dissimilar_sums > 0)
    if active.any():
        floor = S_FLOOR * s[active].mean()
        s = np.where(active, np.maximum(s, floor), 0.0)
    return s, active, squared_t, s.sum(), dissimilar_sums.sum()


def diagonal_problem(diffs, similar):
    """The data of the diagonal form: ``s``, the active features, ``d_p^2`` on ``D``.

    ``diffs`` (overwritten with its squares) holds the differences of all
    pairs, ``similar`` marks the similar ones. ``s_k = sum_S d_k^2`` is
    floored at ``S_FLOOR`` times its mean over the active features (those in
    which some pair differs).

    Returns
    -------
    s : ndarray of shape (n_features,)
        Zero on the inactive features.
    active : ndarray of bool of shape (n_features,)
    squared_dissimilar_t : ndarray of shape (n_features, n_dissimilar)
        The squared differences of the dissimilar pairs, one row per
        feature (C-contiguous: the rows of the free features are gathered
        cheaply).
    similar_total, dissimilar_total : float
        ``sum_S ||d||^2`` and ``sum_D ||d||^2`` (zero when no pair of that
        kind has distinct points).
    """
    squared = np.square(diffs, out=diffs)
    # One pass over the squares for both per-feature sums.
    weights = np.zeros((2, similar.shape[0]))
    weights[0, similar] = 1.0
    weights[1] = 1.0 - weights[0]
    s, dissimilar_sums = weights @ squared
    return _floored(s, dissimilar_sums, np.ascontiguousarray(squared.T[:, ~similar]))


def similar_sums(similar_diffs, dissimilar_diffs):
    """``s_k = sum_S d_k^2`` floored on the active features, and those features.

    A feature is active when some pair differs in it. The floor is
    ``S_FLOOR`` times the mean of ``s`` over the active features.
    """
    diffs = np.concatenate([similar_diffs, dissimilar_diffs])
    similar = np.arange(diffs.shape[0]) < similar_diffs.shape[0]
    s, active, _, _, _ = diagonal_problem(diffs, similar)
    return s, active


def diagonal_objective(a, s, squared_diffs, *, hessian=True, free=None):
    """The diagonal form's ``h(a) = s . a - log(sum_D ||d||_a)``, gradient, Hessian.

    With ``q_p = sqrt(sum_k a_k d_pk^2)``, ``Q = sum_p q_p`` and
    ``G_k = sum_p d_pk^2 / (2 q_p)``: ``grad = s - G / Q`` and
    ``hess = (sum_p d_p^2 d_p^2^T / (4 q_p^3)) / Q + G G^T / Q^2``. Pairs with
    ``q_p = 0`` are left out of the derivatives.

    Parameters
    ----------
    a : ndarray of shape (n_features,)
        Diagonal of ``A``, non-negative.
    s : ndarray of shape (n_features,)
        Per-feature sums of squared similar differences.
    squared_diffs : ndarray of shape (n_dissimilar, n_features)
        Squared differences ``d_pk^2`` of the dissimilar pairs.
    hessian : bool, default=True
        Whether to compute the Hessian (else None).
    free : ndarray of bool of shape (n_features,), callable or None, default=None
        If given, the Hessian of these features only (the block that a
        projected Newton step solves with), ``(n_free, n_free)``; a callable
        is called with the gradient and returns them.

    Returns
    -------
    value : float
        ``inf`` when every dissimilar distance is zero.
    grad : ndarray of shape (n_features,)
    hess : ndarray of shape (n_features, n_features) or None
    """
    q = np.sqrt(np.maximum(squared_diffs @ a, 0.0))
    Q = q.sum()
    if not Q > 0:
        n_features = a.shape[0]
        return np.inf, np.zeros(n_features), np.zeros((n_features, n_features))
    grad, hess = _diagonal_derivatives(s, squared_diffs.T, q, Q, hessian, free)
    return float(s @ a - np.log(Q)), grad, hess


def _diagonal_derivatives(s, squared_t, q, Q, hessian, free):
    """Gradient and (free block of the) Hessian of ``h``, given ``q`` and ``Q``.

    ``squared_t`` holds the squared dissimilar differences, one row per
    feature.
    """
    grad, G, q, squared_t = _diagonal_gradient(s, squared_t, q, Q)
    hess = None
    if hessian:
        if callable(free):
            free = free(grad)
        rows = np.arange(s.shape[0]) if free is None else np.flatnonzero(free)
        hess = _diagonal_hessian(squared_t, q, Q, G, rows)
    return grad, hess


def _diagonal_gradient(s, squared_t, q, Q):
    """``grad``, ``G``, and ``q`` and ``squared_t`` without the pairs at ``q = 0``."""
    if not (q > 0).all():
        positive = q > 0
        q = q[positive]
        squared_t = squared_t[:, positive]
    G = squared_t @ (0.5 / q)
    return s - G / Q, G, q, squared_t


def _diagonal_hessian(squared_t, q, Q, G, rows, work=None):
    """The Hessian of ``h`` on the features ``rows`` (see :func:`diagonal_objective`).

    ``work``, if given, is a C-contiguous array with at least ``len(rows)``
    rows as long as those of ``squared_t``; the weighted rows are written
    to it.
    """
    # W W^T with W = d^2 diag(1 / (2 q^1.5)): one symmetric rank-k update.
    weights = 0.5 / (q * np.sqrt(q))
    if work is None:
        weighted = squared_t[rows]
        weighted *= weights
    else:
        weighted = work[: rows.shape[0]]
        scaled_rows(squared_t, rows, weights, weighted)
    hess = weighted @ weighted.T
    hess /= Q
    G = G[rows]
    hess += np.outer(G, G) / Q**2
    return hess


def _solve_positive(matrix, rhs):
    """``matrix^-1 rhs`` by Cholesky (LAPACK's posv, little call overhead).

    The Hessian of ``h`` is positive semi-definite and gets a ridge; should
    rounding leave it indefinite, an LU solve takes over.
    """
    _, solution, info = lapack.dposv(matrix, rhs)
    if info != 0:
        return np.linalg.solve(matrix, rhs)
    return solution


def _mmc_diagonal(
    s, active, squared_t, max_iter, tol, log, want_components, *, empty=np.empty
):
    a = np.where(active, 1.0 / (2.0 * s.sum()), 0.0)
    work = empty(squared_t.shape)
    q = np.sqrt(np.maximum(a @ squared_t, 0.0))
    Q = q.sum()
    h = float(s @ a - np.log(Q))
    change = np.inf
    for n_iter in range(1, max_iter + 1):
        grad, G, q_positive, squared_positive = _diagonal_gradient(s, squared_t, q, Q)
        # The Hessian of the free features only (the weights above zero or
        # pushed up by the gradient): at the solution most weights are
        # often at zero.
        free = np.flatnonzero(active & ((a > 0) | (grad < 0)))
        hess_free = _diagonal_hessian(
            squared_positive,
            q_positive,
            Q,
            G,
            free,
            work if squared_positive is squared_t else None,
        )
        hess_free.flat[:: hess_free.shape[0] + 1] += RIDGE * hess_free.diagonal().max()
        direction = np.zeros(a.shape[0])
        direction[free] = _solve_positive(hess_free, -grad[free])
        # The convergence criterion: the change a full Newton step makes.
        full_step = np.maximum(a + direction, 0.0) - a
        change = np.sqrt(full_step @ full_step) / np.sqrt(a @ a)
        # Each trial point is judged at the best scale along its ray:
        # h(c a) = c s.a - log(c) / 2 - log Q(a) is least at c = 1 / (2 s.a),
        # where h = 1/2 - log(c) / 2 - log Q(a).
        t = 1.0
        while True:
            trial = np.maximum(a + t * direction, 0.0)
            q_trial = np.sqrt(np.maximum(trial @ squared_t, 0.0))
            Q_trial = q_trial.sum()
            similar_sum = s @ trial
            h_trial = (
                float(0.5 + 0.5 * np.log(2.0 * similar_sum) - np.log(Q_trial))
                if Q_trial > 0
                else np.inf
            )
            if h_trial <= h + ARMIJO * (grad @ (trial - a)):
                break
            t /= 2.0
            if t < SMALLEST_STEP:  # no step decreases h: stationary
                trial, q_trial, Q_trial, change = a, q, Q, 0.0
                similar_sum = s @ a
                break
        c = 1.0 / (2.0 * similar_sum)
        a = trial * c
        q = q_trial * np.sqrt(c)
        Q = Q_trial * np.sqrt(c)
        h = float(0.5 - np.log(Q))
        log.record(
            n_iter,
            h,
            np.diag(np.sqrt(a)) if want_components else None,
            change=change,
            step=t,
        )
        if change <= tol:
            return a, n_iter, True, change
    return a, max_iter, False, change
