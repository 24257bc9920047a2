"""Information-Theoretic Metric Learning (ITML)."""

import math
import numbers
import warnings

import numpy as np
from scipy import linalg
from sklearn.datasets import make_spd_matrix
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array

from ._base import SupervisedMetricLearner
from ._kernels.bregman import bregman_sweep
from ._optimize import IterationLog, iterate
from ._params import ITERATION_CONSTRAINTS, Interval, StrOptions, validate_params
from ._psd import check_spd, components_from_metric, numerical_rank
from ._threads import fit_threads
from ._validation import (
    points_of_pairs,
    validate_pair_labels,
    validate_X,
    validate_X_y,
)

# Pairs of points sampled to set the bounds u and l (all pairs when fewer).
N_BOUND_PAIRS = 10_000
# Pairs per block when computing their squared distances (bounds the memory).
_BOUND_BLOCK = 2_048
# Memory for the difference vectors of the constraints drawn from labels.
MAX_CONSTRAINT_BYTES = 256 * 2**20
# Until the compiled sweep is loaded, sweeps of at most this many
# constraints of at most this many features run in NumPy (the same
# arithmetic, bit for bit), up to this many projections in the process in
# all. Loading the kernel costs a fresh process about a tenth of a second,
# as much as some 10,000 projections in NumPy; past that budget the kernel
# is loaded, and later fits (a cross-validation's) use it.
NUMPY_SWEEP_MAX_CONSTRAINTS = 128
NUMPY_SWEEP_MAX_FEATURES = 64
NUMPY_SWEEP_MAX_PROJECTIONS = 10_000


class ITML(SupervisedMetricLearner):
    r"""Information-Theoretic Metric Learning.

    ITML finds the Mahalanobis matrix ``M`` closest to a prior ``M0`` in
    LogDet divergence, ``D_ld(M, M0) = tr(M M0^-1) - log det(M M0^-1) - d``,
    such that similar pairs are close and dissimilar pairs far apart::

        (x_a - x_b)^T M (x_a - x_b) <= u    for similar pairs,
        (x_a - x_b)^T M (x_a - x_b) >= l    for dissimilar pairs,

    with slack on each bound weighted by ``gamma``. It is solved by cyclic
    Bregman projections (Algorithm 1 of [1]_): each projection enforces one
    constraint by a rank-one update of ``M``, which stays symmetric positive
    definite. The updates run in a compiled loop; ``components_`` is then the
    factor ``L`` of ``M = L^T L``.

    **Constraints.** ``fit(X, y)`` draws them from class labels:
    ``n_constraints`` pairs (default ``20 c^2`` for ``c`` classes, as in the
    paper's experiments), half of them similar (two distinct samples of the
    same class, the first uniform over the samples of classes with at least
    two members) and half dissimilar (the first uniform over all samples,
    the second uniform over the samples of the other classes); drawn with
    replacement from the fit's random state and visited in a random order.
    Each sweep visits similar and dissimilar pairs interleaved in
    proportion, each kind in the order drawn or given (``fit_pairs``):
    swept in blocks of one kind, as pairs are often listed, each block undoes
    much of the other's work, and the sweeps can fail to settle (on digits,
    2,000 similar then 2,000 dissimilar pairs were not converged after 1,000
    sweeps; interleaved, they converge in under 400). When no class has two members, all pairs are dissimilar. Work and
    memory grow with the number of constraints (one ``n_features`` vector of
    float64 each, one rank-one update of ``M`` per constraint and sweep), so
    it is bounded: never more than the ``n (n - 1) / 2`` distinct pairs of
    the ``n`` samples (more draws would only repeat pairs), and never more
    than fit in 256 MiB of difference vectors (``MAX_CONSTRAINT_BYTES``; 42,799
    constraints for 784 features). A default count above the bound is
    lowered silently; an explicit ``n_constraints`` above it is lowered with
    a warning. Users with pair
    constraints instead of labels have two entry points:

    - ``fit(X, pairs=index_pairs, pair_labels=labels)``: ``index_pairs`` of
      shape ``(n_pairs, 2)`` index rows of X. This works inside a
      :class:`~sklearn.pipeline.Pipeline` through ``fit`` parameters
      (``pipe.fit(X, itml__pairs=..., itml__pair_labels=...)``; with
      scikit-learn's metadata routing enabled, request them with
      ``ITML().set_fit_request(pairs=True, pair_labels=True)`` and pass
      ``pipe.fit(X, pairs=..., pair_labels=...)``).
    - ``fit_pairs(pairs, pair_labels)``: the points themselves, shape
      ``(n_pairs, 2, n_features)``, as in :meth:`pair_distance`.

    Pair labels are +1 (similar) or -1 (dissimilar).

    **Bounds.** The constraint values are squared distances, so the bounds
    are too: unless ``bounds`` is given, ``u`` and ``l`` are the 5th and
    95th percentiles (:func:`numpy.percentile`, linear interpolation) of the
    squared prior distances ``(x_i - x_j)^T M0 (x_i - x_j)`` over pairs
    ``i != j`` of the training points (rows of X; for ``fit_pairs``, all the
    points of all pairs): all ``n (n - 1) / 2`` pairs when there are at most
    10,000, otherwise 10,000 pairs drawn uniformly with replacement. Pairs at
    distance zero (duplicate points) are left out, so ``u > 0``; if every
    pair is at distance zero, ``u = l = 1``. (metric-learn 0.7.0 takes the
    percentiles of non-squared Euclidean distances and compares them with
    squared Mahalanobis distances, so its bounds are much tighter than
    these.)

    **Convergence.** One iteration is one sweep over all constraints. The
    fit has converged when a sweep changes ``M`` by at most ``tol``
    relatively, ``||M_k - M_{k-1}||_F <= tol * ||M_{k-1}||_F``; if no
    constraint is violated, the first sweep changes nothing and ``M = M0``.
    The authors' code and metric-learn test instead the relative change of
    the dual variables, ``||lambda_k - lambda_{k-1}||_1 / (||lambda_k||_2 +
    ||lambda_{k-1}||_2)``; that quantity grows with the number of active
    constraints, so it is recorded in ``history_['dual_change']`` but not
    used to stop. A ``ConvergenceWarning`` is raised when ``max_iter`` sweeps
    did not converge.

    Parameters
    ----------
    gamma : float, default=1.0
        Weight of the slack: the trade-off between satisfying the
        constraints (large ``gamma``) and staying close to the prior (small
        ``gamma``). ``np.inf`` enforces the bounds exactly.
    n_constraints : int or None, default=None
        Number of pairs drawn from the labels in ``fit(X, y)``; None means
        ``20 * n_classes ** 2``. Either is bounded as described under
        Constraints. Not used with pair constraints.
    bounds : array-like of shape (2,) or None, default=None
        ``(u, l)``: the largest squared distance wanted for similar pairs
        and the smallest for dissimilar pairs, both positive. None computes
        them from the data as described above.
    prior : {'identity', 'covariance', 'random'} or array-like of shape (n_features, n_features), default='identity'
        The matrix ``M0``: the identity (Euclidean distance), the inverse
        covariance of the training points (Mahalanobis distance; needs an
        invertible covariance), a random SPD matrix drawn from
        ``random_state``, or a symmetric positive definite array.
    max_iter : int, default=1000
        The most sweeps over the constraints.
    tol : float, default=1e-3
        Tolerance on the relative change of ``M`` (Frobenius norm) in one
        sweep.
    verbose : int, default=0
        If positive, print one line per sweep: the objective, the relative
        changes of ``M`` and of the duals, the number of projections that
        moved ``M``, the time.
    callback : callable or None, default=None
        Called as ``callback(components, n_iter)`` after every sweep, with
        the current ``L``.
    random_state : int, RandomState instance or None, default=None
        Draws the constraints from the labels, the pairs for the bounds and
        the random prior.

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L^T L = M``, in the dtype of the training data.
    bounds_ : ndarray of shape (2,)
        The bounds ``(u, l)`` used, squared distances.
    n_iter_ : int
        Number of sweeps done.
    loss_curve_ : ndarray of shape (n_iter_,)
        The objective ``D_ld(M, M0) + gamma * sum_c D_ld(xi_c, xi0_c)`` after
        each sweep (``xi`` the slack targets, ``xi0`` their bounds; the slack
        term is left out when ``gamma`` is infinite).
    history_ : dict of str to ndarray of shape (n_iter_,)
        Per sweep: ``'loss'``, ``'metric_change'`` (the convergence
        criterion), ``'dual_change'`` (the authors' criterion),
        ``'n_updates'`` (projections that changed ``M``) and ``'seconds'``
        since the start of the fit.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    Covariance : The inverse-covariance metric (ITML's 'covariance' prior).

    References
    ----------
    .. [1] J. V. Davis, B. Kulis, P. Jain, S. Sra and I. S. Dhillon,
       "Information-theoretic metric learning", ICML 2007.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from linmetric import ITML
    >>> X, y = load_wine(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(
    ...     X, y, stratify=y, random_state=0)
    >>> euclidean = KNeighborsClassifier(3).fit(X_train, y_train)
    >>> round(euclidean.score(X_test, y_test), 2)
    0.64
    >>> model = make_pipeline(ITML(random_state=0), KNeighborsClassifier(3))
    >>> round(model.fit(X_train, y_train).score(X_test, y_test), 2)
    0.87

    Pair constraints, as index pairs into X or as pairs of points:

    >>> import numpy as np
    >>> pairs = np.array([[0, 1], [0, 50], [50, 51], [51, 100]])
    >>> itml = ITML().fit(X, pairs=pairs, pair_labels=[1, -1, 1, -1])
    >>> itml.components_.shape
    (13, 13)
    >>> itml = ITML().fit_pairs(X[pairs], [1, -1, 1, -1])
    >>> bool(itml.pair_distance(X[pairs[:1]])[0] < itml.pair_distance(X[pairs[1:2]])[0])
    True
    """

    _parameter_constraints = {
        "gamma": [Interval(numbers.Real, 0, None, closed="right")],  # inf: hard bounds
        "n_constraints": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "bounds": ["array-like", None],
        "prior": [StrOptions({"identity", "covariance", "random"}), "array-like"],
        **ITERATION_CONSTRAINTS,
    }

    def __init__(
        self,
        gamma=1.0,
        n_constraints=None,
        bounds=None,
        prior="identity",
        max_iter=1000,
        tol=1e-3,
        verbose=0,
        callback=None,
        random_state=None,
    ):
        self.gamma = gamma
        self.n_constraints = n_constraints
        self.bounds = bounds
        self.prior = prior
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.callback = callback
        self.random_state = random_state

    def fit(self, X, y=None, *, pairs=None, pair_labels=None):
        """Learn the metric from class labels, or from index pairs into X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,), optional
            Class labels, at least two classes. Give either y or ``pairs``.
        pairs : array-like of int, shape (n_pairs, 2), optional
            Pair constraints: rows of X that are similar or dissimilar.
        pair_labels : array-like of shape (n_pairs,), optional
            +1 (similar) or -1 (dissimilar) for each of ``pairs``.

        Returns
        -------
        self : ITML
        """
        validate_params(self)
        random_state = check_random_state(self.random_state)
        if pairs is None:
            if pair_labels is not None:
                raise ValueError("pair_labels were given without pairs.")
            if y is None:
                raise ValueError(
                    "ITML requires y to be passed, but the target y is None. "
                    "To learn from pair constraints, pass pairs= and "
                    "pair_labels= to fit, or use fit_pairs."
                )
            X, y_codes, classes = validate_X_y(self, X, y)
            n_constraints = bounded_n_constraints(
                self.n_constraints, classes.shape[0], X.shape[0], X.shape[1]
            )
            rows, cols, signs = sample_label_pairs(y_codes, n_constraints, random_state)
        else:
            if y is not None:
                raise ValueError(
                    "Pass either class labels y or pair constraints pairs=, not both."
                )
            X = validate_X(self, X)
            rows, cols, signs = _validate_index_pairs(pairs, pair_labels, X.shape[0])
        return self._fit_in_units(X, rows, cols, signs, random_state)

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
        self : ITML
        """
        validate_params(self)
        random_state = check_random_state(self.random_state)
        X, rows, cols, signs = points_of_pairs(self, pairs, pair_labels)
        return self._fit_in_units(X, rows, cols, signs, random_state)

    def _fit_in_units(self, X, rows, cols, signs, random_state):
        X_units, exponent = self._in_units(X)
        self._fit_constraints(X_units, rows, cols, signs, random_state)
        if exponent:
            # bounds_ in squared units of X (inf beyond the float64 range)
            with np.errstate(over="ignore", under="ignore"):
                self.bounds_ = np.ldexp(self.bounds_, 2 * exponent)
        return self

    def _in_units(self, X):
        """X divided by a power of two near its spread, where that is exact.

        With bounds taken from the data and a prior that does not depend on
        it ('identity', 'random'), the ITML problem is the same for ``X`` and
        ``X / s`` (the bounds scale with the squared distances), and dividing
        by a power of two changes no digit. Fitting in these units keeps the
        squared distances of data at scale 1e200 or 1e-200 representable.
        """
        if self.bounds is not None or not (
            isinstance(self.prior, str) and self.prior in ("identity", "random")
        ):
            return X, 0
        X64 = np.asarray(X, dtype=np.float64)
        spread = float(np.abs(X64 - X64.mean(axis=0)).max()) if X.size else 0.0
        if not 0.0 < spread < np.inf:
            return X, 0
        exponent = int(np.frexp(spread)[1])
        scaled = np.ldexp(X, -exponent).astype(X.dtype, copy=False)
        # exact only if nothing left the normal range
        if np.any((scaled != 0) & (np.abs(scaled) < np.finfo(X.dtype).tiny)):
            return X, 0
        return scaled, exponent

    def _fit_constraints(self, X, rows, cols, signs, random_state):
        X64 = np.asarray(X, dtype=np.float64)
        prior = self._prior(X64, random_state)
        if self.bounds is None:
            bounds = squared_distance_bounds(X64, prior, random_state)
        else:
            bounds = _check_bounds(self.bounds)
        self.bounds_ = bounds
        order = interleaved_order(signs)
        diffs = X64[rows[order]] - X64[cols[order]]
        signs = np.ascontiguousarray(signs[order], dtype=np.int8)
        slack = np.where(signs > 0, bounds[0], bounds[1])
        initial_slack = slack.copy()
        duals = np.zeros(signs.shape[0])
        metric = np.array(prior, dtype=np.float64, order="C")
        gamma = float(self.gamma)

        prior_inv = linalg.inv(prior)
        prior_logdet = 2.0 * np.log(np.diag(linalg.cholesky(prior))).sum()
        log = IterationLog(
            "ITML",
            verbose=self.verbose,
            callback=self.callback,
            columns=("metric_change", "dual_change", "n_updates"),
        )

        sweeper = _Sweeper(diffs)

        def sweep():
            metric_old = metric.copy()
            duals_old = duals.copy()
            n_updates = sweeper(metric, diffs, signs, slack, duals, gamma)
            if not np.all(np.isfinite(metric)):
                # a projection onto a pair far shorter than the others
                raise ValueError(
                    "ITML's metric overflowed in a Bregman projection: the "
                    "squared distances of the pairs span more orders of "
                    "magnitude than float64 holds (some pairs differ by more "
                    "than about 1e150 times what others do). Standardise the "
                    "features or remove the outlying points."
                )
            change = _norm(metric - metric_old) / _norm(metric_old)
            normsum = _norm(duals) + _norm(duals_old)
            dual_change = np.abs(duals - duals_old).sum() / normsum if normsum else 0.0
            loss, factor = itml_objective(
                metric, prior_inv, prior_logdet, slack, initial_slack, gamma
            )
            extras = {
                "metric_change": change,
                "dual_change": dual_change,
                "n_updates": int(n_updates),
            }
            message = (
                f"relative change of M in the last sweep {change:.3g} > tol={self.tol}"
            )
            shown = factor if self.callback is not None else None
            return loss, shown, extras, change <= self.tol, message

        with fit_threads("itml", X.shape[1]):
            result = iterate(sweep, max_iter=self.max_iter, log=log)
        self.components_ = _components(metric).astype(X.dtype, copy=False)
        self.n_iter_ = result.n_iter
        self.loss_curve_ = log.loss_curve
        self.history_ = log.history
        return self

    def _prior(self, X, random_state):
        n_features = X.shape[1]
        prior = self.prior
        if isinstance(prior, str):
            if prior == "identity":
                return np.eye(n_features)
            if prior == "random":
                return make_spd_matrix(n_features, random_state=random_state)
            # 'covariance': the inverse of the sample covariance.
            if X.shape[0] < 2:
                raise ValueError(
                    "prior='covariance' needs at least two training points."
                )
            covariance = np.atleast_2d(np.cov(X, rowvar=False))
            eigenvalues = linalg.eigvalsh(covariance)
            smallest = eigenvalues[0]
            if numerical_rank(eigenvalues) < n_features:
                raise ValueError(
                    "prior='covariance' needs an invertible covariance of the "
                    f"training points; its smallest eigenvalue is {smallest:.3g} "
                    "(constant or collinear features). Use prior='identity' or "
                    "pass a positive definite array."
                )
            return check_spd(linalg.inv(covariance), param_name="prior")
        return check_spd(prior, param_name="prior", n_features=n_features)


class _Sweeper:
    """One Bregman sweep per call, by the compiled kernel or in NumPy.

    :func:`numpy_bregman_sweep` repeats the kernel's floating-point
    operations in the same order, so the choice changes the time only:
    NumPy for small sweeps while the kernel is not loaded and the process
    has swept fewer than ``NUMPY_SWEEP_MAX_PROJECTIONS`` projections in
    NumPy, the kernel otherwise.
    """

    # projections swept in NumPy by this process
    n_numpy_projections = 0

    def __init__(self, diffs):
        n_constraints, n_features = diffs.shape
        self.small = (
            n_constraints <= NUMPY_SWEEP_MAX_CONSTRAINTS
            and n_features <= NUMPY_SWEEP_MAX_FEATURES
        )
        self.plan = None

    def __call__(self, metric, diffs, signs, slack, duals, gamma):
        n_numpy = _Sweeper.n_numpy_projections + diffs.shape[0]
        if (
            not self.small
            or n_numpy > NUMPY_SWEEP_MAX_PROJECTIONS
            or _compiled_sweep_loaded()
        ):
            return _compiled_sweep()(metric, diffs, signs, slack, duals, gamma)
        _Sweeper.n_numpy_projections = n_numpy
        if self.plan is None:
            self.plan = sweep_plan(diffs)
        return numpy_bregman_sweep(
            metric, diffs, signs, slack, duals, gamma, plan=self.plan
        )


def _compiled_sweep():
    """The compiled sweep (a seam for tests)."""
    return bregman_sweep


def _compiled_sweep_loaded():
    """Whether the compiled sweep has run (or was loaded) in this process."""
    return bool(bregman_sweep.signatures)


def sweep_plan(diffs):
    """Per constraint, the nonzero features of its difference vector."""
    n_features = diffs.shape[1]
    dense = np.count_nonzero(diffs, axis=1) == n_features
    return [
        None if full else np.flatnonzero(row)
        for row, full in zip(diffs, dense, strict=True)
    ]


def numpy_bregman_sweep(metric, diffs, signs, slack, duals, gamma, *, plan=None):
    """:func:`linmetric._kernels.bregman.bregman_sweep` in NumPy, bit for bit.

    The same projections (see :mod:`linmetric._kernels.bregman`) with the
    same floating-point operations in the same order: ``M v`` summed over
    the nonzero entries of ``v`` in groups of four rows, then one row at a
    time (sequential sums are cumulative sums); ``v^T M v`` summed in
    feature order; the scalar steps in Python floats (float64); the update
    ``M += (s z) z^T``. The results equal the kernel's exactly, which a
    test checks. ``plan`` is :func:`sweep_plan` of ``diffs``.

    Examples
    --------
    >>> import numpy as np
    >>> metric = np.eye(2)
    >>> diffs = np.array([[2.0, 0.0]])  # a similar pair at squared distance 4
    >>> numpy_bregman_sweep(metric, diffs, np.array([1], dtype=np.int8),
    ...                     np.array([1.0]), np.zeros(1), np.inf)  # bound u = 1
    1
    >>> np.round(metric, 12).tolist()  # now at squared distance 1
    [[0.25, 0.0], [0.0, 1.0]]
    """
    if plan is None:
        plan = sweep_plan(diffs)
    finite_gamma = gamma < np.inf
    gamma_proj = gamma / (gamma + 1.0) if finite_gamma else 1.0
    n_updates = 0
    for c, nonzero in enumerate(plan):
        v = diffs[c]
        if nonzero is None:
            terms = v[:, None] * metric  # terms[b, a] = v[b] * M[b, a]
        elif nonzero.shape[0] == 0:
            continue  # v = 0: p = 0, skipped
        else:
            terms = v[nonzero, None] * metric[nonzero]
        # w = M v: each group of four rows summed in order, then the groups
        # and the remaining rows one after the other (a reduction over the
        # leading axis adds its rows sequentially)
        n_rows = terms.shape[0]
        n_blocked = n_rows - n_rows % 4
        if n_blocked:
            grouped = np.add.reduce(
                terms[:n_blocked].reshape(n_blocked // 4, 4, -1), axis=1
            )
            w = np.add.reduce(grouped, axis=0)
        else:
            w = terms[0].copy()
            n_blocked = 1
        for row in range(n_blocked, n_rows):
            w += terms[row]
        # p = v^T w, summed in feature order
        p = float(np.cumsum(v * w)[-1])
        if not p > 0.0:
            continue
        delta = float(signs[c])
        xi = float(slack[c])
        alpha = min(float(duals[c]), delta * gamma_proj * (1.0 / p - 1.0 / xi))
        if alpha == 0.0:
            continue
        denominator = 1.0 - delta * alpha * p
        if not denominator > 0.0:
            continue
        duals[c] -= alpha
        beta = delta * alpha / denominator
        if finite_gamma:
            slack[c] = 1.0 / (1.0 / xi + delta * alpha / gamma)
        w *= math.sqrt(abs(beta))
        metric += np.multiply.outer(w if beta > 0.0 else -w, w)
        n_updates += 1
    return n_updates


def itml_objective(metric, prior_inv, prior_logdet, slack, initial_slack, gamma):
    """ITML's objective and the Cholesky factor of ``metric``.

    ``D_ld(M, M0) + gamma * sum_c (xi_c / xi0_c - log(xi_c / xi0_c) - 1)``,
    the slack term left out for ``gamma = inf``.

    Returns
    -------
    loss : float
        NaN if ``metric`` is not numerically positive definite.
    factor : ndarray of shape (n_features, n_features) or None
        Upper triangular ``U`` with ``U^T U = metric``.
    """
    try:
        lower = np.linalg.cholesky(metric)
    except np.linalg.LinAlgError:
        return np.nan, None
    logdet = 2.0 * np.log(np.diagonal(lower)).sum()
    n_features = metric.shape[0]
    loss = np.vdot(metric, prior_inv) - (logdet - prior_logdet) - n_features
    if gamma < np.inf:
        ratio = slack / initial_slack
        loss += gamma * np.sum(ratio - np.log(ratio) - 1.0)
    return float(loss), lower.T


def bounded_n_constraints(n_constraints, n_classes, n_samples, n_features):
    """The number of pairs to draw from labels, within the stated bounds.

    ``n_constraints`` (None: ``20 * n_classes ** 2``) lowered to at most the
    ``n_samples * (n_samples - 1) / 2`` distinct pairs and to at most
    ``MAX_CONSTRAINT_BYTES`` of float64 difference vectors; a warning says so
    when an explicit value is lowered.
    """
    requested = 20 * n_classes**2 if n_constraints is None else int(n_constraints)
    n_pairs = n_samples * (n_samples - 1) // 2
    by_memory = max(1, MAX_CONSTRAINT_BYTES // (8 * max(n_features, 1)))
    bounded = max(1, min(requested, n_pairs, by_memory))
    if n_constraints is not None and bounded < requested:
        reason = (
            f"the {n_pairs} distinct pairs of {n_samples} samples"
            if bounded == n_pairs
            else f"{MAX_CONSTRAINT_BYTES // 2**20} MiB of difference vectors "
            f"for {n_features} features"
        )
        warnings.warn(
            f"n_constraints={n_constraints} is more than {reason}; drawing "
            f"{bounded} constraints instead.",
            UserWarning,
            stacklevel=3,
        )
    return bounded


def _norm(x):
    """``np.linalg.norm(x)``, also where the squares of the entries overflow."""
    with np.errstate(over="ignore"):
        norm = np.linalg.norm(x)
    if np.isfinite(norm):
        return norm
    # entries beyond about 1e154: in units of the largest
    scale = np.abs(x).max()
    return scale * np.linalg.norm(x / scale) if np.isfinite(scale) else norm


def _components(metric):
    """``L`` from the learned ``M``, clipping what rounding made negative.

    The Bregman projections keep ``M`` positive definite in exact
    arithmetic; with features whose scales span many orders of magnitude,
    rounding can leave eigenvalues below zero. Those beyond
    :func:`linmetric._psd.rank_tolerance` are set to zero with a warning.
    """
    try:
        return components_from_metric(metric)
    except ValueError:
        pass
    metric = (metric + metric.T) / 2
    scale = float(np.abs(metric).max())
    w, V = linalg.eigh(metric / scale)
    warnings.warn(
        "ITML's metric is not positive semi-definite after the Bregman "
        f"projections (smallest eigenvalue {w[0] * scale:.3g}, largest "
        f"{w[-1] * scale:.3g}): they lost precision, as happens when feature "
        "scales differ by many orders of magnitude. Negative eigenvalues were "
        "set to zero; standardise the features to avoid this.",
        UserWarning,
        stacklevel=3,
    )
    w = np.clip(w, 0.0, None)
    return np.ascontiguousarray((np.sqrt(w * scale)[:, None] * V.T)[::-1])


def sample_label_pairs(y_codes, n_constraints, random_state):
    """Draw similar and dissimilar pairs of samples from class codes.

    Half of the pairs (rounded down) are similar: the first sample uniform
    over the samples whose class has at least two members, the second
    uniform over the other members of its class. The rest are dissimilar:
    the first sample uniform over all samples, the second uniform over the
    samples of other classes. Pairs are drawn with replacement and returned
    in a random order. If no class has two members, all pairs are
    dissimilar.

    Parameters
    ----------
    y_codes : ndarray of shape (n_samples,), int
        Class codes in ``0 .. n_classes - 1``, at least two classes.
    n_constraints : int
        Number of pairs.
    random_state : numpy.random.RandomState

    Returns
    -------
    rows, cols : ndarray of shape (n_constraints,), intp
        The two samples of each pair, always distinct.
    signs : ndarray of shape (n_constraints,), int8
        +1 similar, -1 dissimilar.
    """
    y_codes = np.asarray(y_codes, dtype=np.intp)
    n_samples = y_codes.shape[0]
    counts = np.bincount(y_codes)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    order = np.argsort(y_codes, kind="stable")  # samples grouped by class
    rank = np.empty(n_samples, dtype=np.intp)  # position within the class
    rank[order] = np.arange(n_samples) - starts[y_codes[order]]

    eligible = np.flatnonzero(counts[y_codes] >= 2)
    n_similar = n_constraints // 2 if eligible.size else 0
    n_dissimilar = n_constraints - n_similar

    first = eligible[random_state.randint(eligible.size or 1, size=n_similar)]
    classes = y_codes[first]
    offset = _uniform_below(counts[classes] - 1, random_state)
    offset += offset >= rank[first]  # skip the first sample itself
    similar = order[starts[classes] + offset]

    first_d = random_state.randint(n_samples, size=n_dissimilar)
    classes_d = y_codes[first_d]
    offset_d = _uniform_below(n_samples - counts[classes_d], random_state)
    # Skip the block of the first sample's class in the class-sorted order.
    offset_d += np.where(offset_d >= starts[classes_d], counts[classes_d], 0)
    dissimilar = order[offset_d]

    rows = np.concatenate((first, first_d)).astype(np.intp)
    cols = np.concatenate((similar, dissimilar)).astype(np.intp)
    signs = np.concatenate(
        (np.ones(n_similar, dtype=np.int8), -np.ones(n_dissimilar, dtype=np.int8))
    )
    shuffle = random_state.permutation(n_constraints)
    return rows[shuffle], cols[shuffle], signs[shuffle]


def interleaved_order(signs):
    """The sweep order: similar and dissimilar pairs interleaved in proportion.

    The ``k``-th of the ``n`` pairs of one sign sits at ``(k + 1/2) / n`` of
    the sweep, so each kind keeps its order and the two are evenly mixed
    (ties: similar first).

    >>> interleaved_order(np.array([1, 1, 1, 1, -1, -1])).tolist()
    [0, 4, 1, 2, 5, 3]
    """
    position = np.zeros(signs.shape[0])
    for sign in (1, -1):
        members = np.flatnonzero(signs == sign)
        position[members] = (np.arange(members.shape[0]) + 0.5) / max(
            members.shape[0], 1
        )
    return np.argsort(position, kind="stable")


def _uniform_below(highs, random_state):
    """One integer uniform in ``[0, high)`` for each entry of ``highs``."""
    draws = np.floor(random_state.random_sample(highs.shape[0]) * highs)
    return np.minimum(draws.astype(np.intp), highs - 1)


def squared_distance_bounds(X, prior, random_state):
    """The bounds ``(u, l)``: 5th and 95th percentiles of squared prior distances.

    Over pairs ``i != j`` of rows of X: all pairs when there are at most
    ``N_BOUND_PAIRS``, otherwise that many drawn uniformly with replacement.
    Pairs at distance zero are left out; if all are, ``(1, 1)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64
    prior : ndarray of shape (n_features, n_features)
        The symmetric positive definite ``M0``.
    random_state : numpy.random.RandomState

    Returns
    -------
    bounds : ndarray of shape (2,), float64
    """
    n_samples = X.shape[0]
    n_all = n_samples * (n_samples - 1) // 2
    if n_all <= N_BOUND_PAIRS:
        rows, cols = np.triu_indices(n_samples, k=1)
    else:
        rows = random_state.randint(n_samples, size=N_BOUND_PAIRS)
        cols = random_state.randint(n_samples - 1, size=N_BOUND_PAIRS)
        cols += cols >= rows
    sq_distances = np.empty(rows.shape[0])
    # The default prior needs no product with M0.
    identity = np.array_equal(prior, np.eye(prior.shape[0]))
    for start in range(0, rows.shape[0], _BOUND_BLOCK):
        stop = start + _BOUND_BLOCK
        diffs = X[rows[start:stop]] - X[cols[start:stop]]
        weighted = diffs if identity else diffs @ prior
        sq_distances[start:stop] = np.einsum("ij,ij->i", weighted, diffs)
    sq_distances = sq_distances[sq_distances > 0]
    if sq_distances.size == 0:
        return np.ones(2)
    return np.percentile(sq_distances, [5.0, 95.0])


def _check_bounds(bounds):
    bounds = check_array(
        bounds, ensure_2d=False, dtype=np.float64, input_name="bounds"
    ).ravel()
    if bounds.shape != (2,) or not np.all(bounds > 0):
        raise ValueError(
            "bounds must be two positive squared distances (u, l); got "
            f"{bounds.tolist()!r}."
        )
    return bounds


def _validate_index_pairs(pairs, pair_labels, n_samples):
    """Check index pairs into X and their +1/-1 labels."""
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0:
        raise ValueError(
            "pairs must be index pairs into X of shape (n_pairs, 2) with "
            f"n_pairs >= 1; got shape {pairs.shape}. For pairs of points "
            "shaped (n_pairs, 2, n_features), use fit_pairs."
        )
    if not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(
            f"pairs must hold integer row indices of X; got dtype {pairs.dtype}."
        )
    if pairs.min() < 0 or pairs.max() >= n_samples:
        raise ValueError(
            f"pairs must index rows of X, in [0, {n_samples - 1}]; got values "
            f"from {pairs.min()} to {pairs.max()}."
        )
    if pair_labels is None:
        raise ValueError("pairs need pair_labels, +1 or -1 for each pair.")
    pair_labels = validate_pair_labels(pair_labels, pairs.shape[0])
    rows = pairs[:, 0].astype(np.intp)
    cols = pairs[:, 1].astype(np.intp)
    return rows, cols, pair_labels
