"""Sparse Compositional Metric Learning (SCML), global form."""

import functools
import numbers
import warnings

import numpy as np
from scipy import linalg
from scipy.linalg import lapack
from sklearn.utils import check_random_state

from ._base import SupervisedMetricLearner
from ._constraints import sample_triplets, validate_tuples
from ._kernels._chunking import run_on_row_ranges
from ._kernels.scml import (
    class_sums,
    feature_rows,
    group_sorted_rows,
    permute_columns,
    rda_steps,
)
from ._optimize import IterationLog
from ._params import Interval, StrOptions, validate_params
from ._scratch import scratch
from ._threads import limit_threads
from ._validation import centred_in_units, validate_X, validate_X_y

# Shrinkage of the local within-class scatter: this fraction of its mean
# eigenvalue is added to the diagonal (chosen on digits, for pair AUC).
_LDA_RIDGE = 0.3
# Points per class in each LDA neighbourhood.
_REGION_PER_CLASS = 30
# RDA keeps the feature rows of the first triplets, up to this many entries
# (64 MiB, scratch rows included); the rows of the others are computed at
# each draw (on digits at 4000 bases, a table of all 2000 triplets made the
# fit 15% faster than one of half of them).
TABLE_ENTRIES = 2**23
# Once at most this fraction of the weights is non-zero (at the end of a
# window), the kept rows' columns are reordered, once: the non-zero elements
# and those within PACK_MARGIN typical steps of the threshold first (see
# _packed_order). On digits at 1280 bases 27% are non-zero after the first
# window; the reordering costs 1 ms and saves 0.6 ms in each later window
# (at 5120 bases 5 ms and 1.8 ms). With a margin of 30 steps, about one
# weight per window becomes non-zero outside the first columns.
PACK_SUPPORT = 0.3
PACK_MARGIN = 30.0


class SCML(SupervisedMetricLearner):
    r"""Sparse Compositional Metric Learning (global form).

    SCML [1]_ builds the metric from a dictionary of rank-one elements
    ``b_i b_i^T`` (unit vectors ``b_i``, the *basis*):
    ``M = sum_i w_i b_i b_i^T`` with ``w >= 0``, and learns sparse weights
    from triplets ``(a, b, c)``, "a is closer to b than to c", with a
    margin of one:

    .. math::

        \min_{w \ge 0}\ \frac{1}{T} \sum_{t=1}^{T}
        \bigl[1 + d_w(a_t, b_t) - d_w(a_t, c_t)\bigr]_+ + \beta \|w\|_1,
        \qquad d_w(x, y) = \sum_i w_i \bigl(b_i^\top (x - y)\bigr)^2 .

    The objective is linear in ``w`` inside each hinge, so each step is
    cheap: the projections ``b_i^T x`` of every point are computed once.

    **Solver.** Stochastic regularised dual averaging (RDA) with per-weight
    AdaGrad step sizes, as in the paper's experiments: at step ``t`` a
    mini-batch of triplets gives a subgradient ``g_t`` and, with ``gbar``
    the average of ``g_1 .. g_t`` and ``H_i = delta + (sum_s g_{s,i}^2)^{1/2}``,
    ``w_i = gamma t / H_i max(0, -gbar_i - beta)``. Batches are drawn from
    the fit's random state. Every ``output_iter`` steps the mean batch
    objective of the window is recorded; the fit has converged when it
    improved by less than ``tol`` relatively on the previous window. When
    the triplets are few enough to be drawn twice or more on average, the
    feature rows of the triplets (at most ``2**23`` numbers, 64 MiB) are
    computed once, before the first step, rather than at each draw; once
    the weights are sparse, the columns of the kept rows are reordered so
    that the likely non-zero ones come first (the result does not depend on
    the order). That pass and the projections of the points onto the basis
    are split over numba's threads (``NUMBA_NUM_THREADS``) when each part
    holds at least about half a millisecond of work; the steps themselves
    are sequential.

    **Basis.** ``'lda'`` (needs labels, the paper's discriminative basis):
    ``n_regions = ceil(n_basis / (n_classes - 1))`` centres are drawn from
    the training points; for each, LDA of its ``30 * n_classes`` nearest
    training points (generalised eigenvectors of the between-class scatter
    and of the within-class scatter shrunk by adding to its diagonal 0.3
    times its mean eigenvalue, or the between-class scatter's if larger) gives up to ``n_classes - 1`` directions. ``'triplet_diffs'``: ``n_basis`` distinct differences
    ``a - b`` and ``a - c`` of the triplets, drawn uniformly. Each element
    is scaled to unit norm. ``'auto'`` is ``'lda'`` in ``fit(X, y)`` and
    ``'triplet_diffs'`` in ``fit_triplets``. An array of shape
    ``(n_basis, n_features)`` gives the basis directly.

    Parameters
    ----------
    beta : float, default=1e-5
        Weight of the L1 penalty, in the units of the normalised problem
        (the squared projections are divided by their mean over the
        triplets' differences, which makes the fit invariant to rescaling).
    basis : {'auto', 'lda', 'triplet_diffs'} or array-like of shape \
            (n_basis, n_features), default='auto'
    n_basis : int or None, default=None
        Size of the basis; None means ``5 * n_features`` (at most the
        number of distinct triplet differences for ``'triplet_diffs'``).
        The paper and metric-learn use ``20 * n_features``; on digits, iris,
        wine and breast cancer the smaller basis gives the same or better
        3-NN accuracy and pair AUC in a quarter of the time.
    gamma : float, default=5e-3
        RDA's step-size parameter.
    max_iter : int, default=10000
        The most RDA steps.
    output_iter : int, default=500
        Steps per recorded window (one row of ``loss_curve_``).
    batch_size : int, default=10
        Triplets per step.
    tol : float, default=1e-2
        Relative improvement of the window objective below which the fit
        stops.
    k_genuine, k_impostor : int, default=3 and 10
        In ``fit(X, y)``: for each sample, triplets with each of its
        ``k_genuine`` nearest same-class samples and ``k_impostor``
        nearest other-class samples
        (``linmetric._constraints.sample_triplets``).
    n_constraints : int or None, default=None
        In ``fit(X, y)``: keep that many of those triplets, drawn
        uniformly; None keeps all.
    verbose : int, default=0
        If positive, print one line per window.
    callback : callable or None, default=None
        Called as ``callback(components, n_window)`` after each window.
    random_state : int, RandomState instance or None, default=None
        Draws the basis, the triplets from labels and the batches.

    Attributes
    ----------
    components_ : ndarray of shape (n_nonzero, n_features)
        ``sqrt(w_i) b_i`` for the elements with non-zero weight (at least
        one row: all-zero weights give one zero row, with a warning).
    basis_ : ndarray of shape (n_basis, n_features)
        The unit basis vectors ``b_i``.
    weights_ : ndarray of shape (n_basis,)
        ``w``, in the units of the data (``M = basis_.T @ diag(weights_) @
        basis_``); they scale as the inverse square of the data, so beyond
        about 1e154 (or below 1e-154) they leave the float64 range. The fit
        itself is computed in units of the data's spread and works at any
        finite scale.
    n_iter_ : int
        RDA steps done.
    loss_curve_ : ndarray of shape (n_windows,)
        The mean batch objective of each window of ``output_iter`` steps.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    Notes
    -----
    Differences from [1]_: the local neighbourhoods of the LDA basis are
    centred on training points drawn at random rather than on k-means
    centres, and the triplet-difference basis draws differences instead of
    clustering them; the squared projections are normalised by their mean so
    that ``beta`` and ``gamma`` do not depend on the units of the data. The
    paper's local form, a metric per point, is not a single linear map: it
    is :class:`~linmetric.LocalSCML`.

    References
    ----------
    .. [1] Y. Shi, A. Bellet and F. Sha, "Sparse compositional metric
       learning", AAAI 2014.
    .. [2] J. Duchi, E. Hazan and Y. Singer, "Adaptive subgradient methods
       for online learning and stochastic optimization", JMLR 12, 2011.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from linmetric import SCML
    >>> X, y = load_wine(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> X_train, X_test, y_train, y_test = train_test_split(
    ...     X, y, stratify=y, random_state=0)
    >>> model = make_pipeline(SCML(random_state=0), KNeighborsClassifier(3))
    >>> round(model.fit(X_train, y_train).score(X_test, y_test), 2)
    0.98

    From triplets of points, ``d(a, b) < d(a, c)``:

    >>> import numpy as np
    >>> triplets = np.stack([X[:40], X[1:41], X[130:170]], axis=1)
    >>> scml = SCML(random_state=0).fit_triplets(triplets)
    >>> scml.components_.shape[1]
    13
    """

    _parameter_constraints = {
        "beta": [Interval(numbers.Real, 0, None, closed="left")],
        "basis": [StrOptions({"auto", "lda", "triplet_diffs"}), "array-like"],
        "n_basis": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "gamma": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "output_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "k_genuine": [Interval(numbers.Integral, 1, None, closed="left")],
        "k_impostor": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_constraints": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "verbose": ["verbose"],
        "callback": ["callable", None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        beta=1e-5,
        basis="auto",
        n_basis=None,
        gamma=5e-3,
        max_iter=10000,
        output_iter=500,
        batch_size=10,
        tol=1e-2,
        k_genuine=3,
        k_impostor=10,
        n_constraints=None,
        verbose=0,
        callback=None,
        random_state=None,
    ):
        self.beta = beta
        self.basis = basis
        self.n_basis = n_basis
        self.gamma = gamma
        self.max_iter = max_iter
        self.output_iter = output_iter
        self.batch_size = batch_size
        self.tol = tol
        self.k_genuine = k_genuine
        self.k_impostor = k_impostor
        self.n_constraints = n_constraints
        self.verbose = verbose
        self.callback = callback
        self.random_state = random_state

    def fit(self, X, y):
        """Learn the metric from triplets drawn from class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels, at least two classes, one with two members.

        Returns
        -------
        self : SCML
        """
        validate_params(self)
        random_state = check_random_state(self.random_state)
        X, y_codes, _ = validate_X_y(self, X, y)
        # every product and factorisation here is small: BLAS threads only
        # cost hand-offs (on a busy machine, far more than they save)
        with limit_threads(blas=1):
            return self._fit_labels(X, y_codes, random_state)

    def _fit_labels(self, X, y_codes, random_state):
        # Centred: the metric ignores translation, and so do the rounding
        # errors of the neighbour search and the basis; in units of
        # 2**exponent, where no product over- or underflows.
        X_centred, exponent = centred_in_units(X)
        X_centred = np.asarray(X_centred, dtype=np.float64)
        triplets = sample_triplets(
            X_centred,
            y_codes,
            k_genuine=self.k_genuine,
            k_impostor=self.k_impostor,
            n_constraints=self.n_constraints,
            random_state=random_state,
        )
        basis = self.basis
        if isinstance(basis, str) and basis == "auto":
            basis = "lda"
        return self._fit(X, X_centred, exponent, triplets, basis, y_codes, random_state)

    def fit_triplets(self, triplets):
        """Learn the metric from triplets ``(a, b, c)``, ``d(a, b) < d(a, c)``.

        Parameters
        ----------
        triplets : array-like of shape (n_triplets, 3, n_features)

        Returns
        -------
        self : SCML
        """
        validate_params(self)
        random_state = check_random_state(self.random_state)
        points, index, basis = triplets_as_indices(triplets, self.basis)
        X = validate_X(self, points)
        X_centred, exponent = centred_in_units(X)
        X_centred = np.asarray(X_centred, dtype=np.float64)
        with limit_threads(blas=1):
            return self._fit(X, X_centred, exponent, index, basis, None, random_state)

    def _fit(self, X, X64, exponent, triplets, basis, y_codes, random_state):
        # X64 is centred, in units of 2**exponent; a weight w in these units
        # is w / 4**exponent in those of X, a map L is L / 2**exponent.
        n_features = X64.shape[1]
        n_basis = self.n_basis if self.n_basis is not None else 5 * n_features
        if isinstance(basis, str):
            if basis == "lda":
                basis = lda_basis(X64, y_codes, n_basis, random_state)
            else:
                basis = triplet_difference_basis(X64, triplets, n_basis, random_state)
        else:
            basis = _check_basis(basis, n_features)
        features = TripletFeatures.from_points(X64, basis, triplets)
        log = IterationLog(
            "SCML",
            verbose=self.verbose,
            callback=self.callback,
            columns=("n_nonzero",),
        )
        weights, n_iter, converged = rda(
            features,
            beta=self.beta,
            gamma=self.gamma,
            max_iter=self.max_iter,
            output_iter=self.output_iter,
            batch_size=self.batch_size,
            tol=self.tol,
            random_state=random_state,
            log=log,
            components=lambda w: _components(
                np.ldexp(w / features.scale, -2 * exponent), basis
            ),
        )
        log.finish(
            converged,
            None if converged else f"{n_iter} steps without a stable objective",
        )
        self.basis_ = basis.astype(X.dtype)
        with np.errstate(over="ignore", under="ignore"):
            self.weights_ = np.ldexp(weights / features.scale, -2 * exponent)
        if not np.any(weights > 0):
            warnings.warn(
                "SCML: every basis weight is zero, so the learned metric is "
                "zero; lower beta or give more informative triplets.",
                UserWarning,
                stacklevel=3,
            )
        components = np.ldexp(_components(weights / features.scale, basis), -exponent)
        self.components_ = components.astype(X.dtype)
        self.n_iter_ = n_iter
        self.loss_curve_ = log.loss_curve
        return self


class TripletFeatures:
    """The hinge arguments of triplets as linear functions of ``w``.

    For triplet ``(a, b, c)`` the distance difference is
    ``d_w(a, b) - d_w(a, c) = z^T w`` with
    ``z_i = ((b_i^T a - b_i^T b)^2 - (b_i^T a - b_i^T c)^2) / scale``,
    computed on demand from the projections of the points; ``scale`` is the
    mean squared projection of the triplets' differences
    (:meth:`from_points` computes both).
    """

    def __init__(self, projections, triplets, scale):
        self.projections = projections
        self.triplets = np.asarray(triplets, dtype=np.intp)
        scale = float(scale)
        self.scale = scale if scale > 0 else 1.0

    @classmethod
    def from_points(cls, X, basis, triplets):
        """The features of ``triplets`` (rows of ``X``) on the unit ``basis``.

        The projections ``X @ basis.T`` are split by rows over threads (see
        :class:`SCML`). The scale is the mean of ``(b_i^T d)^2`` over the
        elements and the differences ``d = a - b`` and ``a - c`` of the
        triplets (every triplet up to 1000, then an even subsample of about
        1000), computed as ``<B^T B, D^T D> / (n_d n_basis)`` from the
        differences ``D``: two small products instead of a pass over the
        projections.
        """
        X = np.ascontiguousarray(X, dtype=np.float64)
        basis = np.ascontiguousarray(basis, dtype=np.float64)
        triplets = np.asarray(triplets, dtype=np.intp)
        projections = np.empty((X.shape[0], basis.shape[0]))
        # (a row's work in units of about 128 multiply-adds, which is what
        # the thread policy's minimum work per thread counts)
        run_on_row_ranges(
            _project_rows,
            X.shape[0],
            X,
            basis,
            projections,
            row_work=max(1, basis.shape[0] * X.shape[1] // 128),
        )
        sample = _scale_sample(triplets)
        differences = np.concatenate(
            [X[sample[:, 0]] - X[sample[:, 1]], X[sample[:, 0]] - X[sample[:, 2]]]
        )
        total = np.vdot(basis.T @ basis, differences.T @ differences)
        scale = total / max(1, differences.shape[0] * basis.shape[0])
        return cls(projections, triplets, scale)

    def __len__(self):
        return self.triplets.shape[0]

    def rows(self, index):
        """The feature rows ``z`` of the triplets ``index``."""
        triplets = self.triplets[index]
        anchors = self.projections[triplets[:, 0]]
        near = anchors - self.projections[triplets[:, 1]]
        far = anchors - self.projections[triplets[:, 2]]
        return (near * near - far * far) / self.scale


def _project_rows(start, stop, X, basis, out):
    # (NumPy's product releases the GIL: the row ranges run in parallel)
    np.matmul(X[start:stop], basis.T, out=out[start:stop])


def _scale_sample(triplets):
    """Every triplet up to 1000, then an even subsample."""
    return triplets[:: max(1, triplets.shape[0] // 1000)]


def rda(
    features,
    *,
    beta,
    gamma,
    max_iter,
    output_iter,
    batch_size,
    tol,
    random_state,
    log,
    components,
):
    """Minimise ``mean_t [1 + z_t^T w]_+ + beta ||w||_1`` over ``w >= 0``.

    AdaGrad-RDA on mini-batches; see :class:`SCML`.

    Returns
    -------
    weights : ndarray of shape (n_basis,)
    n_iter : int
    converged : bool
    """
    n_triplets = len(features)
    n_basis = features.projections.shape[1]
    weights = np.zeros(n_basis)
    gradient_sum = np.zeros(n_basis)
    squared_sum = np.zeros(n_basis)
    delta = 1e-8
    batch_size = min(batch_size, n_triplets)
    projections = np.ascontiguousarray(features.projections, dtype=np.float64)
    triplets = np.ascontiguousarray(features.triplets, dtype=np.intp)
    # the feature rows of the first triplets, kept up to TABLE_ENTRIES when
    # a triplet is drawn twice or more on average in the first two windows
    # (else computing them all costs more than it saves), then one scratch
    # row per triplet of a batch
    n_draws = min(max_iter, 2 * output_iter) * batch_size
    # (the whole table, scratch rows included, within TABLE_ENTRIES; the
    # thread's scratch pool keeps it for the next fit when it is within the
    # pool's own bound, 32 MiB)
    n_kept = (
        min(n_triplets, max(0, TABLE_ENTRIES // n_basis - batch_size))
        if 2 * n_triplets <= n_draws
        else 0
    )
    # (on memory reused from the thread's previous fits: fresh memory costs
    # a page fault per 4 KiB at its first write)
    with scratch() as empty:
        table = empty((n_kept + batch_size, n_basis))
        if n_kept:
            run_on_row_ranges(
                feature_rows,
                n_kept,
                projections,
                triplets,
                float(features.scale),
                table,
                row_work=n_basis,
            )
        order, packed = np.arange(n_basis), False
        previous, converged = np.inf, False
        n_iter = 0
        while n_iter < max_iter:
            if n_kept and n_iter and not packed:
                packed_order = _packed_order(
                    weights, gradient_sum, squared_sum, beta, n_iter
                )
                if packed_order is not None:
                    order, packed = packed_order, True
                    run_on_row_ranges(
                        permute_columns, n_kept, table, order, row_work=n_basis
                    )
            # one window: its batches drawn at once (the same stream as one draw
            # per step), its steps in a compiled loop
            n_steps = min(output_iter, max_iter - n_iter)
            batches = random_state.randint(n_triplets, size=(n_steps, batch_size))
            window_loss = rda_steps(
                projections,
                triplets,
                batches.astype(np.intp, copy=False),
                float(features.scale),
                weights,
                gradient_sum,
                squared_sum,
                n_iter,
                float(beta),
                float(gamma),
                delta,
                table,
                order,
            )
            n_iter += n_steps
            loss = window_loss / n_steps
            log.record(
                n_iter // output_iter,
                loss,
                components(weights) if log.callback is not None else None,
                n_nonzero=int(np.count_nonzero(weights)),
            )
            if np.isfinite(previous) and previous - loss <= tol * abs(previous):
                converged = True
                break
            previous = loss
    return weights, n_iter, converged


def _packed_order(weights, gradient_sum, squared_sum, beta, n_steps):
    """An order of the elements with the likely non-zero weights first, or None.

    None while more than ``PACK_SUPPORT`` of the weights are non-zero or
    when the likely ones are more than half of them; else the elements with
    a non-zero weight, or with ``-gsum`` within ``PACK_MARGIN`` root mean
    square steps (``sqrt(H2 / t)`` after ``t`` steps) of the threshold
    ``beta t``, in increasing index, then the others. Those first columns
    are all that most hinge arguments read; the weights do not depend on
    the order.
    """
    n_basis = weights.shape[0]
    if np.count_nonzero(weights) > PACK_SUPPORT * n_basis:
        return None
    likely = (weights > 0) | (
        -gradient_sum - beta * n_steps > -PACK_MARGIN * np.sqrt(squared_sum / n_steps)
    )
    if not likely.any() or 2 * np.count_nonzero(likely) > n_basis:
        return None
    return np.concatenate([np.flatnonzero(likely), np.flatnonzero(~likely)])


def triplets_as_indices(triplets, basis):
    """Validated triplets as distinct points and row indices into them.

    Returns ``(points, index, basis)``: each distinct point once, the
    triplets as an ``(n_triplets, 3)`` array of row indices of ``points``,
    and the basis to build (``'auto'`` is ``'triplet_diffs'`` here; ``'lda'``
    is refused, it needs class labels).
    """
    triplets = validate_tuples(
        triplets, 3, name="triplets", meaning="d(a, b) < d(a, c)"
    )
    n_triplets, _, n_features = triplets.shape
    if isinstance(basis, str):
        if basis == "lda":
            raise ValueError(
                "basis='lda' needs class labels; use fit(X, y), or "
                "basis='triplet_diffs' or 'auto' with triplets."
            )
        basis = "triplet_diffs"
    points, index = distinct_rows(triplets.reshape(3 * n_triplets, n_features))
    return points, index.reshape(n_triplets, 3), basis


def distinct_rows(rows):
    """The distinct rows and, for each row, the index of its copy among them.

    Like ``np.unique(rows, axis=0, return_inverse=True)`` (the same groups,
    in another order: by a random projection of the rows), without its
    row-by-row lexicographic sort: the rows are sorted by one number each,
    ``rows @ r`` for a fixed random ``r``, and equal neighbours are merged.
    If two different rows ever share that number, ``np.unique`` is used.
    """
    rows = np.ascontiguousarray(rows)
    if rows.shape[0] < 2:
        return rows.copy(), np.zeros(rows.shape[0], dtype=np.intp)
    keys = rows.astype(np.float64, copy=False) @ _key_direction(rows.shape[1])
    # (any order of equal keys: each group's row is its first, see
    # group_sorted_rows, and a sort that need not be stable is five times
    # faster)
    order = np.argsort(keys)
    inverse = np.empty(rows.shape[0], dtype=np.intp)
    first = np.empty(rows.shape[0], dtype=np.intp)
    n_groups = group_sorted_rows(rows, keys, order, inverse, first)
    if n_groups < 0:
        points, inverse = np.unique(rows, axis=0, return_inverse=True)
        return points, inverse.reshape(-1).astype(np.intp)
    return rows[first[:n_groups]], inverse


@functools.lru_cache(maxsize=8)
def _key_direction(n_features):
    direction = np.random.RandomState(0).standard_normal(n_features)
    direction.flags.writeable = False
    return direction


def _components(weights, basis):
    """``sqrt(w_i) b_i`` for the non-zero weights; one zero row if none."""
    kept = weights > 0
    if not np.any(kept):
        return np.zeros((1, basis.shape[1]))
    return np.sqrt(weights[kept])[:, None] * basis[kept]


def _unit_rows(vectors):
    norms = np.linalg.norm(vectors, axis=1)
    keep = norms > 0
    if keep.all():
        return vectors / norms[:, None]
    return vectors[keep] / norms[keep, None]


def lda_basis(X, y_codes, n_basis, random_state, *, centres=None):
    """Discriminative directions of local neighbourhoods (see :class:`SCML`).

    The neighbourhoods are those of ``centres`` if given, else of
    ``ceil(n_basis / (n_classes - 1))`` training points drawn at random.
    """
    n_samples, n_features = X.shape
    n_classes = int(y_codes.max()) + 1
    per_region = max(1, n_classes - 1)
    n_regions = min(n_samples, -(-n_basis // per_region))
    region_size = min(n_samples, _REGION_PER_CLASS * n_classes)
    if centres is None:
        centres = X[random_state.choice(n_samples, n_regions, replace=False)]
    squared_norms = np.einsum("ij,ij->i", X, X)
    # the neighbourhoods of all centres at once: one product, one partition
    distances = squared_norms[:, None] - 2.0 * (X @ np.asarray(centres).T)
    neighbourhoods = np.argpartition(distances, region_size - 1, axis=0)
    directions = []
    for members in neighbourhoods[:region_size].T:
        directions.extend(_local_lda(X[members], y_codes[members]))
    if not directions:  # every neighbourhood holds a single class
        return np.eye(n_features)
    basis = _unit_rows(np.array(directions))
    return basis[:n_basis] if basis.shape[0] else np.eye(n_features)


def _local_lda(X, y_codes):
    """Up to ``n_classes - 1`` LDA directions of one neighbourhood."""
    classes, codes = np.unique(y_codes, return_inverse=True)
    if classes.shape[0] < 2:
        return []
    mean = X.mean(axis=0)
    counts = np.bincount(codes)
    sums = class_sums(X, codes.astype(np.intp, copy=False), classes.shape[0])
    class_means = sums / counts[:, None]
    centred = X - class_means[codes]
    within = centred.T @ centred
    between_factor = np.sqrt(counts)[:, None] * (class_means - mean)
    between = np.vdot(between_factor, between_factor)  # its trace
    ridge = _LDA_RIDGE * max(np.trace(within), between) / X.shape[1]
    if not ridge > 0:
        return []
    within.flat[:: X.shape[1] + 1] += ridge
    # The eigenvectors of within^-1 between with non-zero eigenvalue: with
    # within = C C^T, they are C^-T u for the left singular vectors u of
    # C^-1 F^T (F the between-class factor), far cheaper than a generalised
    # eigendecomposition.
    # (LAPACK called directly: the same routines as scipy.linalg's
    # cholesky and solve_triangular, without their checks, which cost more
    # than these small factorisations)
    lower, info = lapack.dpotrf(within, lower=1, clean=1)
    if info != 0:
        raise linalg.LinAlgError("the within-class scatter is not positive definite")
    whitened, _ = lapack.dtrtrs(lower, between_factor.T, lower=1)
    left, singular, _ = linalg.svd(whitened, full_matrices=False, check_finite=False)
    n_kept = min(classes.shape[0] - 1, X.shape[1])
    left = left[:, :n_kept][:, singular[:n_kept] > 0]
    vectors, _ = lapack.dtrtrs(lower, left, lower=1, trans=1)
    return list(vectors.T)


def triplet_difference_basis(X, triplets, n_basis, random_state):
    """``n_basis`` distinct unit differences ``a - b`` and ``a - c``, drawn."""
    pairs = np.sort(np.concatenate([triplets[:, [0, 1]], triplets[:, [0, 2]]]), axis=1)
    # the distinct pairs in lexicographic order, through one integer key each
    n_points = int(pairs.max()) + 1
    keys = np.sort(pairs[:, 0] * n_points + pairs[:, 1])
    # (the distinct keys of the sorted ones: np.unique's hashing costs ten
    # times this sort on a few thousand keys)
    first = np.empty(keys.shape[0], dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    keys = keys[first]
    pairs = np.stack([keys // n_points, keys % n_points], axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if pairs.shape[0] == 0:
        return np.eye(X.shape[1])
    chosen = random_state.choice(
        pairs.shape[0], min(n_basis, pairs.shape[0]), replace=False
    )
    basis = _unit_rows(X[pairs[chosen, 0]] - X[pairs[chosen, 1]])
    return basis if basis.shape[0] else np.eye(X.shape[1])


def _check_basis(basis, n_features):
    basis = np.asarray(basis, dtype=np.float64)
    if basis.ndim != 2 or basis.shape[1] != n_features or basis.shape[0] == 0:
        raise ValueError(
            f"basis must have shape (n_basis, {n_features}) with n_basis >= 1; "
            f"got shape {basis.shape}."
        )
    if not np.all(np.isfinite(basis)):
        raise ValueError("basis must be finite.")
    unit = _unit_rows(basis)
    if unit.shape[0] != basis.shape[0]:
        raise ValueError("basis must not hold a zero row.")
    return unit
