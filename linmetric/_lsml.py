"""Least Squared-residual Metric Learning (LSML)."""

import numbers

import numpy as np
from scipy import linalg
from scipy.linalg import lapack
from sklearn.utils import check_random_state

from ._base import SupervisedMetricLearner
from ._constraints import (
    default_n_constraints,
    sample_quadruplets,
    validate_tuples,
    validate_weights,
)
from ._kernels import lsml as _lsml_kernels
from ._optimize import IterationLog, minimize_lbfgs
from ._params import ITERATION_CONSTRAINTS, Interval, StrOptions, validate_params
from ._psd import check_spd
from ._scratch import scratch
from ._threads import fit_threads
from ._validation import (
    centred_in_units,
    differences_in_units,
    validate_X,
    validate_X_y,
)
from ._whitening import floor_eigenvalues


class LSML(SupervisedMetricLearner):
    r"""Least Squared-residual Metric Learning.

    LSML [1]_ learns from relative comparisons: a quadruplet ``(a, b, c, d)``
    says that ``a`` and ``b`` are more alike than ``c`` and ``d``,
    ``d_M(a, b) < d_M(c, d)``. Each violated comparison costs the square of
    its violation, and a LogDet divergence keeps ``M`` near a prior
    ``M0``:

    .. math::

        \min_{M \succeq 0}\ \frac{1}{\sum_q w_q} \sum_q w_q\,
        H\bigl(d_M(a_q, b_q) - d_M(c_q, d_q)\bigr)
        + \lambda\, D_{ld}(M, M_0),

    with ``d_M(x, y) = sqrt((x - y)^T M (x - y))`` (distances, not squared
    distances), ``H(r) = max(r, 0)^2`` and
    ``D_ld(M, M0) = tr(M M0^-1) - log det(M M0^-1) - d``.

    **Solver.** The paper runs gradient descent on ``M`` with a projection
    onto the positive semi-definite cone. Here ``M = L^T L`` with a square
    ``L`` started at a factor of ``M0``, and L-BFGS runs on ``L``: no
    projection (an eigendecomposition per step) is needed, ``log det M =
    2 log |det L|`` keeps ``L`` invertible, and quasi-Newton steps converge
    in far fewer iterations than the paper's fixed-step descent. The loss is
    not convex in ``L`` but has the same minimisers, as ``M -> L`` is onto.
    A comparison with ``a = b`` or ``c = d`` contributes a zero subgradient
    for the zero-length side.

    Parameters
    ----------
    regularization : float, default=1.0
        ``lambda``, the weight of the LogDet prior term.
    prior : {'covariance', 'identity'} or array-like of shape (n_features, n_features), default='identity'
        ``M0``: the identity in the units of the data, ``I / s^2`` with
        ``s^2`` the mean variance of the features of the training points;
        the inverse covariance of the training points (its eigenvalues
        below ``1e-6`` times the largest raised to that floor, so constant
        features are allowed); or a symmetric positive definite array, used
        as given. With 'identity' and 'covariance' the fit is invariant to
        rescaling the data (``components_`` scales inversely); a given array
        fixes the units, and rescaling the data then changes the balance
        between the two terms. The fit is computed in units of the data's
        spread, so any finite scale works.
    n_constraints : int or None, default=None
        Quadruplets drawn from labels in ``fit``: None means
        ``20 * n_classes ** 2``. See
        ``linmetric._constraints.sample_quadruplets``.
    max_iter : int, default=1000
        The most L-BFGS iterations.
    tol : float, default=1e-5
        L-BFGS stops when the largest gradient entry is below ``tol``.
    verbose : int, default=0
        If positive, print one line per iteration.
    callback : callable or None, default=None
        Called as ``callback(components, n_iter)`` after each iteration.
    random_state : int, RandomState instance or None, default=None
        Draws the quadruplets from the labels.

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L^T L = M``, in the dtype of the training data.
    n_iter_ : int
        L-BFGS iterations done (1 if the start was already optimal).
    loss_curve_ : ndarray of shape (n_iter_,)
        The objective after each iteration.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    ITML : LogDet-regularised metric from pairs.

    Notes
    -----
    Differences from [1]_: L-BFGS on ``L`` instead of projected gradient
    descent on ``M``; the weights are normalised to sum to one, and the
    prior's weight ``lambda`` is explicit (metric-learn 0.7.0 also
    normalises the weights and uses ``lambda = 1``, with the identity as
    the default prior, as here); the identity prior is scaled to the data's
    mean variance (on standardised data it is the identity itself), so that
    the fit does not depend on the units of the data.

    References
    ----------
    .. [1] E. Y. Liu, Z. Guo, X. Zhang, V. Jojic and W. Wang, "Metric
       learning from relative comparisons by minimizing squared residual",
       ICDM 2012.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from linmetric import LSML
    >>> X, y = load_wine(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> X_train, X_test, y_train, y_test = train_test_split(
    ...     X, y, stratify=y, random_state=0)
    >>> model = make_pipeline(LSML(random_state=0), KNeighborsClassifier(3))
    >>> round(model.fit(X_train, y_train).score(X_test, y_test), 2)
    1.0

    From quadruplets of points, ``d(a, b) < d(c, d)``:

    >>> import numpy as np
    >>> quadruplets = np.stack([X[[0, 60]], X[[1, 61]], X[[0, 60]], X[[70, 140]]], axis=1)
    >>> lsml = LSML(prior="identity").fit_quadruplets(quadruplets, weights=[1.0, 2.0])
    >>> lsml.components_.shape
    (13, 13)
    """

    _parameter_constraints = {
        "regularization": [Interval(numbers.Real, 0, None, closed="neither")],
        "prior": [StrOptions({"covariance", "identity"}), "array-like"],
        "n_constraints": [Interval(numbers.Integral, 1, None, closed="left"), None],
        **ITERATION_CONSTRAINTS,
    }

    def __init__(
        self,
        regularization=1.0,
        prior="identity",
        n_constraints=None,
        max_iter=1000,
        tol=1e-5,
        verbose=0,
        callback=None,
        random_state=None,
    ):
        self.regularization = regularization
        self.prior = prior
        self.n_constraints = n_constraints
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.callback = callback
        self.random_state = random_state

    def fit(self, X, y):
        """Learn the metric from quadruplets drawn from class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels, at least two classes, one with two members.

        Returns
        -------
        self : LSML
        """
        validate_params(self)
        random_state = check_random_state(self.random_state)
        X, y_codes, classes = validate_X_y(self, X, y)
        n_constraints = default_n_constraints(self.n_constraints, classes.shape[0])
        index = sample_quadruplets(y_codes, n_constraints, random_state)
        # the differences are taken straight from the rows of X
        return self._fit(X, index, None)

    def fit_quadruplets(self, quadruplets, weights=None):
        """Learn the metric from quadruplets ``(a, b, c, d)``, ``d(a, b) < d(c, d)``.

        The prior covariance, if used, is that of all the points of all
        quadruplets.

        Parameters
        ----------
        quadruplets : array-like of shape (n_quadruplets, 4, n_features)
        weights : array-like of shape (n_quadruplets,) or None, default=None
            Non-negative weight of each comparison; None weighs all equally.

        Returns
        -------
        self : LSML
        """
        validate_params(self)
        quadruplets = validate_tuples(
            quadruplets, 4, name="quadruplets", meaning="d(a, b) < d(c, d)"
        )
        n_quadruplets, _, n_features = quadruplets.shape
        weights = validate_weights(weights, n_quadruplets)
        # The points were checked above: one row sets n_features_in_.
        validate_X(self, quadruplets[:1, 0])
        index = np.arange(4 * n_quadruplets, dtype=np.intp).reshape(-1, 4)
        return self._fit(quadruplets.reshape(-1, n_features), index, weights)

    def _fit(self, X, index, weights):
        with scratch() as empty:
            return self._fit_in(X, index, weights, empty)

    def _fit_in(self, X, index, weights, empty):
        # X: the points, also those the prior is taken from; index, shape
        # (n, 4): the rows of a, b, c and d of each quadruplet. The
        # differences a - b and c - d, side by side, are in units of
        # 2**exponent, where no product overflows. The temporary arrays
        # come from ``empty``.
        dtype = X.dtype
        diffs, exponent, lengths = _differences(X, index, empty=empty)
        if weights is None:
            weights = np.ones(diffs.shape[0])
        weights = weights / weights.sum()
        prior, prior_inverse = self._prior(X, exponent)
        if isinstance(self.prior, str) and self.prior == "identity":
            # A multiple of the identity: L M0^-1 is a scaling, not a product.
            prior_inverse = float(prior_inverse[0, 0])
        start = linalg.cholesky(prior, lower=False)  # start^T start = M0
        prior_logdet = 2.0 * np.log(np.diagonal(start)).sum()
        n_features = X.shape[1]
        regularization = self.regularization
        constant = regularization * (prior_logdet - n_features)

        # Comparisons certified satisfied are skipped (see _SatisfiedBound).
        bound = _SatisfiedBound(diffs, lengths.sum(axis=1))
        identity = np.eye(n_features)
        # Every evaluation writes into the same buffers: fresh arrays of a
        # few megabytes each time cost more in page faults than the
        # products that fill them.
        workspace = _Workspace(diffs.shape[0], n_features, empty=empty)

        def objective(components):
            rows = bound.at_risk(components)
            if rows is None:
                distance = np.empty((diffs.shape[0], 2))
                scale = components[0, 0]
                # The identity prior's start is a multiple of the identity:
                # its distances are the lengths, scaled, without a product.
                known = np.array_equal(components, scale * identity)
                if known:
                    np.multiply(lengths, abs(scale), out=distance)
                loss, gradient, n_violated = lsml_loss_grad(
                    components,
                    diffs,
                    weights,
                    prior_inverse,
                    regularization,
                    distance=distance,
                    known_distance=known,
                    workspace=workspace,
                )
                if np.isfinite(loss):  # else L is singular, the distances unset
                    bound.reset(components, distance)
            else:
                distance = workspace.distance[: rows.shape[0]]
                loss, gradient, n_violated = lsml_loss_grad(
                    components,
                    diffs,
                    weights,
                    prior_inverse,
                    regularization,
                    distance=distance,
                    workspace=workspace,
                    rows=rows,
                )
                if np.isfinite(loss):
                    bound.move(components, rows, distance)
            return loss + constant, gradient, {"n_violated": n_violated}

        def fun(flat):
            return objective(flat.reshape(n_features, n_features))

        callback = None
        if self.callback is not None:

            def callback(components, n_iter):
                # in the units of the data, as components_
                self.callback(np.ldexp(components, -exponent), n_iter)

        log = IterationLog(
            "LSML",
            verbose=self.verbose,
            callback=callback,
            columns=("n_violated",),
        )
        with fit_threads("lsml", n_features):
            result = minimize_lbfgs(
                fun,
                start,
                max_iter=self.max_iter,
                tol=self.tol,
                log=log,
                shape=(n_features, n_features),
            )
        components = np.ldexp(result.x, -exponent)
        self.components_ = np.ascontiguousarray(components, dtype=dtype)
        # A start that is already optimal still took one gradient check.
        self.n_iter_ = max(result.n_iter, 1)
        self.loss_curve_ = log.loss_curve
        return self

    def _prior(self, X, exponent):
        """``M0`` and its inverse, in units of ``2**exponent``."""
        n_features = X.shape[1]
        if isinstance(self.prior, str):
            if X.shape[0] < 2:
                return np.eye(n_features), np.eye(n_features)
            if self.prior == "identity":
                # The identity in units of the data's mean variance.
                variance = _mean_variance(X, exponent)
                variance = variance if variance > 0 else 1.0
                identity = np.eye(n_features)
                return identity / variance, identity * variance
            X_units, units = centred_in_units(X)
            covariance = np.atleast_2d(np.cov(X_units, rowvar=False))
            covariance = np.ldexp(covariance, 2 * (units - exponent))
            variances, directions = linalg.eigh(covariance)
            variances = floor_eigenvalues(np.maximum(variances, 0), 1e-6)
            prior = (directions / variances) @ directions.T
            prior_inverse = (directions * variances) @ directions.T
            return (prior + prior.T) / 2, (prior_inverse + prior_inverse.T) / 2
        prior = check_spd(self.prior, param_name="prior", n_features=n_features)
        with np.errstate(over="ignore", under="ignore"):
            prior = np.ldexp(prior, 2 * exponent)
        if not (np.all(np.isfinite(prior)) and np.all(np.diagonal(prior) > 0)):
            raise ValueError(
                "prior is out of range for the scale of the data: in units of "
                "the data's spread its entries over- or underflow float64. "
                "Rescale the data, or use prior='identity' or 'covariance'."
            )
        return prior, linalg.inv(prior)


def _differences(X, index, *, empty=np.empty):
    """``a - b`` and ``c - d`` of each quadruplet in units of ``2**exponent``.

    Returns ``(diffs, exponent, lengths)``: ``diffs`` of shape (n, 2, d),
    float64, largest absolute entry in [0.5, 1) (as
    :func:`~linmetric._validation.differences_in_units`), and ``lengths``
    of shape (n, 2), ``||a - b||`` and ``||c - d||`` in those units.
    ``empty(shape)`` makes the array of differences.
    """
    diffs = empty((index.shape[0], 2, X.shape[1]))
    kernels = _passes(diffs.size)
    largest = kernels.quadruplet_differences(np.ascontiguousarray(X), index, diffs)
    factor = 1.0
    if not np.isfinite(largest):
        # a difference overflowed: points near the float64 limit
        diffs, exponent = differences_in_units(X[index[:, 0::2]], X[index[:, 1::2]])
    elif largest > 0:
        exponent = int(np.frexp(largest)[1])
        factor = np.ldexp(1.0, -exponent)
        if not (np.isfinite(factor) and factor > 0):
            # 2**-exponent itself out of range (subnormal differences)
            diffs = np.ldexp(diffs, -exponent)
            factor = 1.0
    else:
        exponent = 0
    lengths = np.empty((index.shape[0], 2))
    kernels.scale_differences(diffs, factor, lengths)
    return diffs, exponent, lengths


def _mean_variance(X, exponent):
    """The mean variance of the features of X, in squared units of ``2**exponent``."""
    with np.errstate(over="ignore", under="ignore"):
        mean_variance = _passes(X.size).mean_variance
        variance = np.ldexp(mean_variance(np.ascontiguousarray(X)), -2 * exponent)
    if 0 < variance < np.inf and np.isfinite(variance):
        return variance
    # Data near the ends of the float64 range: compute in its own units.
    X_units, units = centred_in_units(X)
    variance = np.var(X_units, axis=0, dtype=np.float64, ddof=1).mean()
    with np.errstate(over="ignore", under="ignore"):
        return np.ldexp(variance, 2 * (units - exponent))


# Comparisons mapped by one product: the block's gathered differences and
# their images (512 KiB each with 64 features) stay in cache between the
# product and the pass that reads them, and a fit touches no more fresh
# memory than one block's.
BLOCK = 512


class _Workspace:
    """Buffers for up to ``n_quadruplets`` comparisons, reused by every evaluation."""

    def __init__(self, n_quadruplets, n_features, *, empty=np.empty):
        block = min(n_quadruplets, BLOCK)
        self.diffs = empty((block, 2, n_features))
        self.weights = empty((block,))
        self.mapped = empty((2 * block, n_features))
        self.distance = empty((n_quadruplets, 2))
        self.near = empty((n_quadruplets, n_features))
        self.far = empty((n_quadruplets, n_features))


# A comparison is skipped only when at most this fraction of all need
# computing; otherwise the evaluation is full and becomes the new reference.
# Up to this fraction, gathering the rows at risk and computing them costs
# less than computing all (digits: 1241 of 2000 rows at the third step).
AT_RISK_FRACTION = 0.7


class _SatisfiedBound:
    """Which comparisons can be violated at ``L``, from a reference ``R``.

    ``|d_L(v) - d_R(v)| <= ||(L - R) v|| <= ||L - R||_2 ||v||``, with
    ``||L - R||_2`` bounded by :func:`spectral_norm_bound`: a comparison with
    ``d_R(c, d) - d_R(a, b) > ||L - R||_2 (||a - b|| + ||c - d||)`` is
    satisfied at ``L`` too, so it adds nothing to the loss or the gradient.
    Late L-BFGS iterates move little, and most comparisons are certified
    satisfied. A relative slack of 1e-9 covers rounding.

    The margins are lower bounds, exact where last computed: after an
    evaluation of the comparisons at risk at ``L`` (:meth:`move`), ``L``
    becomes the reference, with their exact margins and, for the others,
    the margin at ``R`` less ``||L - R||_2`` times the lengths. Near the
    solution the steps are short, and only the comparisons near a tie stay
    at risk, not all those near a tie at an older, farther reference.
    """

    def __init__(self, diffs, lengths=None):
        if lengths is None:
            lengths = np.linalg.norm(diffs, axis=2).sum(axis=1)
        self.lengths = lengths
        self.reference = None
        self._shift = np.empty_like(lengths)

    def reset(self, components, distance):
        """All margins exact: ``distance`` holds every comparison's at ``components``."""
        self.reference = components.copy()
        self.margin = distance[:, 1] - distance[:, 0]
        self.slack = 1e-9 * (distance.sum(axis=1) + self.lengths)

    def at_risk(self, components):
        """Indices of the comparisons to compute, or None for all."""
        if self.reference is None:
            return None
        norm = spectral_norm_bound(components - self.reference)
        shift = np.multiply(norm, self.lengths, out=self._shift)
        rows = np.flatnonzero(self.margin <= shift + self.slack)
        if rows.shape[0] > AT_RISK_FRACTION * self.margin.shape[0]:
            return None
        return rows

    def move(self, components, rows, distance):
        """Make ``components`` the reference; ``distance`` holds those of ``rows``.

        ``components`` and ``rows`` are those of the last :meth:`at_risk`,
        whose shifts ``||L - R||_2 * lengths`` lower the other margins.
        """
        self.margin -= self._shift
        self.margin[rows] = distance[:, 1] - distance[:, 0]
        self.slack[rows] = 1e-9 * (distance.sum(axis=1) + self.lengths[rows])
        self.reference = components.copy()


def spectral_norm_bound(A):
    """An upper bound of ``||A||_2`` within about 30% of it, from four small products.

    With ``B = A^T A``, ``||A||_2^16 = lambda_max(B)^8 <= ||B^8||_F``; the
    Frobenius norm of the eighth power exceeds the largest eigenvalue's
    power by at most the number of eigenvalues near the top, so the 16th
    root is close (at most ``n ** (1/16)``, 1.3 for 64 features). ``A`` is
    first divided by its largest entry, so that nothing overflows, and the
    bound is raised by 1e-6 relatively, far above the products' rounding.
    """
    largest = np.abs(A).max()
    if not largest > 0:
        return 0.0
    A = A / largest
    B = A.T @ A
    for _ in range(3):
        B = B @ B
    return largest * np.linalg.norm(B) ** (1.0 / 16.0) * (1.0 + 1e-6)


def lsml_loss_grad(
    components,
    diffs,
    weights,
    prior_inverse,
    regularization,
    distance=None,
    known_distance=False,
    workspace=None,
    rows=None,
):
    """LSML's objective in ``L`` (up to a constant) and its gradient.

    ``sum_q w_q max(d_ab - d_cd, 0)^2 + lambda (tr(L M0^-1 L^T) -
    2 log |det L|)`` with ``d_ab = ||L (a - b)||``. The gradient of a
    distance is ``L v v^T / ||L v||``; a zero-length difference contributes
    zero.

    Parameters
    ----------
    components : ndarray of shape (n_features, n_features)
        ``L``.
    diffs : ndarray of shape (n_quadruplets, 2, n_features)
        ``a - b`` and ``c - d`` of each quadruplet.
    weights : ndarray of shape (n_quadruplets,)
    prior_inverse : ndarray of shape (n_features, n_features) or float
        ``M0^-1``; a float ``c`` stands for ``c I``.
    regularization : float
        ``lambda``.
    distance : ndarray of shape (n_quadruplets, 2) or None, default=None
        If given, receives ``d_ab`` and ``d_cd`` (unset when ``L`` is
        singular).
    known_distance : bool, default=False
        ``distance`` holds ``d_ab`` and ``d_cd`` at ``L`` already: the
        product ``L v`` is skipped.
    workspace : _Workspace or None, default=None
        Buffers for the intermediate arrays, for at least as many
        comparisons as are computed; None allocates them.
    rows : ndarray of shape (n_rows,) or None, default=None
        Compute these comparisons only (``distance`` then has ``n_rows``
        rows); None computes all.

    Returns
    -------
    loss : float
        ``inf`` when ``L`` is singular.
    gradient : ndarray of shape (n_features, n_features)
    n_violated : int
        Comparisons with ``d_ab > d_cd``.
    """
    # One LU factorisation gives both log |det L| and L^-1.
    lu, pivots, info = lapack.dgetrf(components)
    logabsdet = np.log(np.abs(np.diagonal(lu))).sum() if info == 0 else np.inf
    if not np.isfinite(logabsdet):
        return np.inf, np.zeros_like(components), 0
    diffs = np.ascontiguousarray(diffs, dtype=np.float64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    n_features = diffs.shape[2]
    n_quadruplets = diffs.shape[0] if rows is None else rows.shape[0]
    if workspace is None:
        workspace = _Workspace(n_quadruplets, n_features)
    if distance is None:
        distance = np.empty((n_quadruplets, 2))
    passes = _passes(diffs.size)
    # In blocks of the workspace's size, with its buffers; the passes in
    # NumPy (small problems) sum the loss in one dot product: one block.
    buffered = passes is _lsml_kernels
    block = workspace.mapped.shape[0] // 2 if buffered else n_quadruplets
    # Only violated comparisons have a gradient, L sum_i c_i v_i v_i^T over
    # their rows, with c = +2 w r / d_ab for a - b and -2 w r / d_cd for
    # c - d (zero for a zero-length difference). The passes write the rows
    # scaled by sqrt(|c|), block after block (the loss summed in the same
    # order as in one pass); the symmetric sum is two rank-k updates (half
    # a general product; NumPy computes B^T B as one).
    near = workspace.near
    far = workspace.far
    loss, n_violated = 0.0, 0
    for start in range(0, n_quadruplets, max(block, 1)):
        stop = min(start + block, n_quadruplets)
        if rows is None:
            block_diffs, block_weights = diffs[start:stop], weights[start:stop]
        elif buffered:
            chosen = rows[start:stop]
            block_diffs = np.take(
                diffs, chosen, axis=0, out=workspace.diffs[: stop - start], mode="clip"
            )
            block_weights = np.take(
                weights, chosen, out=workspace.weights[: stop - start], mode="clip"
            )
        else:
            block_diffs, block_weights = diffs[rows], weights[rows]
        # Both differences of each quadruplet in one product: rows 2q and
        # 2q + 1 are a - b and c - d.
        if known_distance:
            mapped = np.empty((0, n_features))
        else:
            mapped = np.matmul(
                block_diffs.reshape(-1, n_features),
                components.T,
                out=workspace.mapped[: 2 * (stop - start)] if buffered else None,
            )
        loss, n_violated = passes.residuals(
            mapped, block_diffs, block_weights, distance[start:stop],
            near, far, bool(known_distance), loss, n_violated,
        )  # fmt: skip
    near = near[:n_violated]
    far = far[:n_violated]
    outer = near.T @ near - far.T @ far
    gradient = components @ outer
    if np.ndim(prior_inverse) == 0:
        prior_product = components * prior_inverse
    else:
        prior_product = components @ prior_inverse
    loss += regularization * (np.vdot(prior_product, components) - 2.0 * logabsdet)
    inverse_transpose = lapack.dgetri(lu, pivots)[0].T
    gradient += regularization * 2.0 * (prior_product - inverse_transpose)
    return loss, gradient, int(n_violated)


# Problems with at most this many difference entries (2 x n_quadruplets x
# n_features) run the passes in NumPy: there they are as fast as the
# compiled ones, and a first fit in a fresh process (iris, wine,
# breast_cancer) does not pay the compiler's one-time start-up.
NUMPY_MAX_ENTRIES = 2**15


def _passes(n_entries):
    """The module with LSML's passes for a problem of ``n_entries`` entries."""
    return _NumpyPasses if n_entries <= NUMPY_MAX_ENTRIES else _lsml_kernels


class _NumpyPasses:
    """:mod:`linmetric._kernels.lsml`'s passes in NumPy: the same results up
    to rounding (the sums are NumPy's)."""

    @staticmethod
    def quadruplet_differences(points, index, out):
        with np.errstate(over="ignore"):
            np.subtract(
                points[index[:, 0::2]],
                points[index[:, 1::2]],
                out=out,
                dtype=np.float64,
            )
        return float(np.abs(out).max()) if out.size else 0.0

    @staticmethod
    def scale_differences(diffs, factor, lengths):
        diffs *= factor
        np.sqrt(np.einsum("qsk,qsk->qs", diffs, diffs), out=lengths)

    @staticmethod
    def mean_variance(points):
        return float(np.var(points, axis=0, dtype=np.float64, ddof=1).mean())

    @staticmethod
    def residuals(mapped, diffs, weights, distance, near, far, known, loss, start):
        if not known:
            np.sqrt(np.einsum("ij,ij->i", mapped, mapped), out=distance.reshape(-1))
        residual = distance[:, 0] - distance[:, 1]
        violated = np.flatnonzero(residual > 0.0)
        r = residual[violated]
        loss += float(weights[violated] @ (r * r))
        scaled = 2.0 * weights[violated] * r
        near_far = distance[violated]
        with np.errstate(divide="ignore", invalid="ignore"):
            root = np.sqrt(np.where(near_far > 0.0, scaled[:, None] / near_far, 0.0))
        stop = start + violated.shape[0]
        np.multiply(diffs[violated, 0], root[:, :1], out=near[start:stop])
        np.multiply(diffs[violated, 1], root[:, 1:], out=far[start:stop])
        return loss, stop
