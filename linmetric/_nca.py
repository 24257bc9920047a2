"""Neighbourhood Components Analysis (NCA)."""

import numbers
import os
import warnings

import numpy as np
from sklearn.utils import check_random_state

from ._base import SupervisedMetricLearner
from ._init import INIT_METHODS, initialize_components, resolve_n_components
from ._optimize import IterationLog, minimize_lbfgs
from ._params import Interval, StrOptions, validate_params
from ._threads import fit_threads
from ._validation import centred_in_units, validate_X_y

# solver='auto' is exact up to this many samples, truncated above.
AUTO_EXACT_MAX_SAMPLES = 10_000
# The exact solver works in NumPy alone up to this many samples (no compiled
# kernel to load: a first fit in a new process saves about half a second),
# with numba kernels above.
DENSE_MAX_SAMPLES = 2048
# Up to this many samples it keeps its weights in float64, above in float32.
DENSE_FLOAT64_MAX_SAMPLES = 256
# Its blocks have at most this many rows ...
_DENSE_BLOCK_ROWS = 160
# ... add their shares of W^T Z to this many float64 sums (so many threads
# at most) ...
_DENSE_LANES = 4
# ... and a thread works on at least this many pairs (a few milliseconds).
_DENSE_MIN_WORK_PER_THREAD = 2**19
# exp(-_SKIP_EXPONENT) ~ 2e-22: terms this far past a row's nearest point
# are below float64 resolution relative to it.
_SKIP_EXPONENT = 50.0
# A factor 1[y_i = y_j] - p_i below this (under float64's resolution of
# p_i) is 0, so that no weight is subnormal (subnormal products are slow).
_WEIGHT_FACTOR_FLOOR = 1e-15
# exp(-650) ~ 5e-283: a row whose nearest is farther is shifted first.
_FAR_EXPONENT = 650.0
# The same for float32 exponentials and weights: a row whose nearest is
# farther than 30 is shifted first (its terms stay above exp(-80), normal
# float32 numbers), and a factor below 1e-12 is 0 (a weight p_ij times a
# factor stays above 1.2e-38 on up to DENSE_MAX_SAMPLES points).
_FAR_EXPONENT_32 = 30.0
_WEIGHT_FACTOR_FLOOR_32 = 1e-12
# Rows per block of the exact solver, at most.
_EXACT_BLOCK_ROWS = 1_024
# The truncated solver measures the softmax mass it drops on about this many
# evenly spaced points.
_MASS_SAMPLE = 2_000
# It searches all pairs every _SEARCH_EVERY stages, keeping the
# _POOL_FACTOR * n_candidates nearest; the stages in between re-select the
# n_candidates nearest from that pool.
_SEARCH_EVERY = 4
_POOL_FACTOR = 4
# The starting scale: squared distances times t for t on this grid (relative
# to the mean squared distance of the projected points) ...
_SCALE_GRID = np.logspace(-1, 5, 25)
# (searched on every _SCALE_REFINE-th point first, then refined) ...
_SCALE_REFINE = 4
# ... the smallest t whose loss is within this fraction of the largest gain
# over the uniform softmax (t = 0) ...
_SCALE_GAIN_SHORTFALL = 0.3
# ... the loss summed over about this many pairs (all points if fewer), on
# at least this many rows.
_SCALE_PAIRS = 2**15
_SCALE_MIN_ROWS = 100
# The truncated solver splits its n x n_features GEMMs into this many row
# parts, shared among threads.
_GEMM_PARTS = 4
# It orders the points of a class in this many slabs along the starting
# map's leading axis (each sorted along the second).
_ORDER_SLABS = 8
# The truncated solver warns when the exact loss at its optimum exceeds its
# truncated loss by more than this fraction.
_EXACT_GAP_WARN = 1e-2


class NCA(SupervisedMetricLearner):
    """Neighbourhood Components Analysis.

    NCA learns the linear map ``L`` that maximises the expected number of
    training points classified correctly by a stochastic nearest-neighbour
    rule [1]_: point ``i`` picks ``j != i`` as its neighbour with probability
    ``p_ij`` proportional to ``exp(-||L x_i - L x_j||^2)``, and is correct
    with probability ``p_i``, the sum of ``p_ij`` over its own class. The
    loss minimised is ``-sum_i p_i``, the objective and sign of
    :class:`sklearn.neighbors.NeighborhoodComponentsAnalysis`, so that for
    the same ``L`` both give the same loss and gradient; with the same
    ``init``, ``max_iter`` and ``tol`` both run the same L-BFGS-B.

    The exact solver never forms the ``n x n`` matrix of ``p_ij``: blocks of
    rows, sized by ``working_memory``, go from distances (one GEMM) to the
    softmax (a stable log-sum-exp, sums in float64) to the gradient
    ``2 S^T X`` with ``S = (D - W - W^T) L X^T`` accumulated from two GEMMs
    per block. Its cost per evaluation is still ``O(n^2 n_components)``.
    Up to 2,048 samples it runs in NumPy alone, its blocks split over
    threads (a first fit in a new process loads no compiled kernel); numba
    kernels take over above.

    The truncated solver makes each evaluation ``O(n m n_components)``: it
    restricts every softmax to the point's ``m = n_candidates`` nearest
    points (of any class) in the current projected space. It works in
    stages; a stage runs L-BFGS-B on this truncated objective for at most
    ``refresh_every`` iterations, or until it converges on its candidate
    sets. Every fourth stage starts with a search over all pairs (a float32
    GEMM per block of rows) that keeps each point's ``4 m`` nearest as a
    pool; the stages in between re-select the ``m`` nearest from the pool
    with exact distances, in ``O(n m n_components)``. The points are sorted
    by class internally, and within a class along the starting map's two
    leading principal axes, so that a point's candidates mostly lie near
    it in memory. The truncated objective differs from the exact one by
    the softmax mass left outside the candidate sets: ``|p_i(truncated) -
    p_i(exact)|`` is at most that mass,
    whose largest value every full search measures (on about 2,000 evenly
    spaced points) and reports in ``history_['dropped_mass']``. The fit has
    converged when a stage on the sets of a full search converges having
    lowered the loss by less than ``refresh_every * tol`` times its
    magnitude. The full search made when a stage on re-selected sets has
    converged so measures every point: the largest dropped mass
    (``dropped_mass_``) and the exact loss (``exact_loss_``). If the trial
    stage on its sets then confirms convergence, the fit returns the map of
    that search, where both were measured, and drops the trial's few
    iterations; otherwise the trial's iterations count, and the fit goes on.
    A fit that ends any other way makes one more search over all pairs to
    measure both at its final map. A ``UserWarning`` says when the exact
    loss exceeds the truncated one by more than 1%. With ``n_candidates >=
    n_samples - 1`` the truncated objective is the exact one.

    **Units.** The softmax's temperature is the scale of ``L``. The fit
    does not depend on the units of X: it optimises on X divided by the
    root mean square of its (centred) entries, and a named ``init`` is
    rescaled by a one-dimensional search on the loss of ``c L``: the
    smallest ``c`` whose loss has 70% of the largest gain over a uniform
    softmax (``c -> 0``) on a geometric grid. A larger start saturates the
    softmax, where the gradient vanishes; a smaller one makes every point
    a neighbour. X and ``a X`` then give ``components_`` in the ratio
    ``1 / a`` (up to rounding) and the same transformed data. An array
    ``init`` is used as given, in the units of X.

    Parameters
    ----------
    n_components : int, default=None
        Dimension of the learned space; None means ``n_features``.
    init : {'auto', 'pca', 'lda', 'identity', 'random'} or ndarray of shape \
            (n_components, n_features), default='auto'
        Starting map; 'auto' follows scikit-learn's NCA: 'lda' if
        ``n_components <= min(n_features, n_classes - 1)``, else 'pca' if
        ``n_components < min(n_features, n_samples)``, else 'identity'.
        A named map is rescaled (see Units above); an array is used as
        given.
    max_iter : int, default=50
        The most L-BFGS-B iterations, over all truncated stages.
    tol : float, default=1e-5
        Convergence when the largest entry of the gradient falls below
        ``tol``, or one iteration lowers the loss by less than ``tol`` times
        its magnitude (SciPy's ``gtol`` and ``ftol``, as scikit-learn sets
        them). The truncated solver has converged when a stage on the sets
        of a full search converges having lowered the loss by less than
        ``refresh_every * tol`` times its magnitude.
    solver : {'auto', 'exact', 'truncated'}, default='auto'
        'exact' uses every pair; 'truncated' the candidate sets described
        above; 'auto' is 'exact' up to 10,000 samples and 'truncated' above.
    n_candidates : int, default=50
        Candidate neighbours per point for the truncated solver (capped at
        ``n_samples - 1``); its full searches keep four times as many as a
        pool. Memory grows as ``n_samples * n_candidates``.
    refresh_every : int, default=10
        The most L-BFGS-B iterations of one stage of the truncated solver
        (between two selections of the candidate sets).
    working_memory : float, default=None
        Budget in MiB for one block of the ``n x n`` computations; None means
        ``sklearn.get_config()['working_memory']``.
    callback : callable, default=None
        Called as ``callback(components, n_iter)`` after every iteration.
    verbose : int, default=0
        If positive, print one row per iteration.
    random_state : int, RandomState instance or None, default=None
        Seeds ``init='random'`` and the randomised PCA of ``init='pca'``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map ``L``, in the dtype of X.
    n_iter_ : int
        Number of L-BFGS-B iterations run.
    loss_curve_ : ndarray of shape (n_iter_,)
        The loss ``-sum_i p_i`` after each iteration (of the truncated
        objective with the truncated solver).
    history_ : dict of str to ndarray
        Per-iteration 'loss', 'expected_accuracy' (``mean_i p_i``),
        'seconds' and, for the truncated solver, 'dropped_mass' (the
        largest softmax mass outside a candidate set, over the points
        measured at the last full search).
    solver_ : str
        The solver used, 'exact' or 'truncated'.
    exact_loss_ : float
        The exact loss ``-sum_i p_i`` at the result (over every pair; for
        the truncated solver from float32 distances, a relative error near
        1e-6).
    dropped_mass_ : float
        The largest softmax mass that a point puts outside its
        ``n_candidates`` nearest at the result, over all points: the
        largest error of a ``p_i`` of the truncated objective there. 0 for
        the exact solver.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    sklearn.neighbors.NeighborhoodComponentsAnalysis : The same objective,
        computed with ``n x n`` arrays.

    Notes
    -----
    NCA is not invariant to the relative scale of the features (only to a
    common factor): standardise features measured in different units.

    On MNIST as preprocessed for LMNN (pixels in [0, 1], deskewed, PCA to
    164 dimensions, 60,000 training images) the defaults select the
    truncated solver; the fit converged in 36 iterations, in 52-55 s on
    two otherwise idle cores (115-119 s of CPU time), the whole process
    peaking at 1.1 GB resident, and lowered the 3-NN test error from 1.64%
    (Euclidean) to 1.31%; with the pixels left in 0..255, the same
    iterations, error and time.

    References
    ----------
    .. [1] J. Goldberger, S. Roweis, G. Hinton and R. Salakhutdinov,
       "Neighbourhood Components Analysis", Advances in Neural Information
       Processing Systems 17 (NIPS 2004).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from linmetric import NCA
    >>> X, y = load_iris(return_X_y=True)
    >>> nca = NCA(n_components=2, random_state=0).fit(X, y)
    >>> nca.components_.shape
    (2, 4)
    >>> bool(nca.history_['expected_accuracy'][-1] > 0.95)
    True
    >>> knn = make_pipeline(NCA(random_state=0), KNeighborsClassifier(3))
    >>> bool(knn.fit(X, y).score(X, y) > 0.95)
    True
    """

    _parameter_constraints = {
        "n_components": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "init": [StrOptions(set(INIT_METHODS)), np.ndarray],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "solver": [StrOptions({"auto", "exact", "truncated"})],
        "n_candidates": [Interval(numbers.Integral, 1, None, closed="left")],
        "refresh_every": [Interval(numbers.Integral, 1, None, closed="left")],
        "working_memory": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "callback": [None, "callable"],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=None,
        *,
        init="auto",
        max_iter=50,
        tol=1e-5,
        solver="auto",
        n_candidates=50,
        refresh_every=10,
        working_memory=None,
        callback=None,
        verbose=0,
        random_state=None,
    ):
        self.n_components = n_components
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver
        self.n_candidates = n_candidates
        self.refresh_every = refresh_every
        self.working_memory = working_memory
        self.callback = callback
        self.verbose = verbose
        self.random_state = random_state

    def fit(self, X, y):
        """Fit the NCA map to labelled data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; float32 is kept (and computed in), anything else
            becomes float64.
        y : array-like of shape (n_samples,)
            Class labels; at least two classes, one of them with two or
            more samples. A class of one sample is allowed: its point can
            never be classified correctly and adds a constant 0 to the
            objective (it still repels the other points).

        Returns
        -------
        self : NCA
        """
        validate_params(self)
        X, labels, classes = validate_X_y(self, X, y)
        n_samples, n_features = X.shape
        if np.bincount(labels).max() < 2:
            raise ValueError(
                f"Every class in y has a single sample ({classes.shape[0]} classes, "
                f"{n_samples} samples), so no point has a neighbour of its own "
                "class and the NCA objective is identically 0; at least one "
                "class needs two or more samples."
            )
        n_components = resolve_n_components(self.n_components, n_features)
        random_state = check_random_state(self.random_state)
        # Distances and the gradient are invariant to a shift of X; centring
        # keeps the GEMM expansion of the distances accurate. The optimiser
        # works on X divided by the root mean square of its entries, so that
        # its steps and tolerances, hence the result, do not depend on the
        # units of X (on standardised data that factor is 1).
        X_unit, unit = _unit_scaled(X)
        if isinstance(self.init, str):
            components = initialize_components(
                self.init,
                X_unit,
                labels,
                n_components=n_components,
                random_state=random_state,
            ).astype(np.float64)
            # Start at the smallest scale of the map that has nearly all the
            # gain the loss offers along it: larger, the softmax saturates
            # and the gradient vanishes; smaller, every point is a neighbour.
            # (under the exact solver's thread limits: on small data, BLAS
            # threads only add synchronisation to its products)
            with fit_threads("nca_exact", n_samples):
                components *= _best_scale(
                    X_unit, labels, components, random_state, self.working_memory
                )
        else:
            components = unit * initialize_components(
                self.init, X, labels, n_components=n_components, random_state=None
            ).astype(np.float64)
        callback = self.callback
        if callback is not None:
            user_callback = self.callback

            def callback(unit_components, n_iter):
                user_callback(unit_components / unit, n_iter)

        solver = self.solver
        if solver == "auto":
            solver = "exact" if n_samples <= AUTO_EXACT_MAX_SAMPLES else "truncated"
        if solver == "exact":
            log = IterationLog(
                "NCA",
                verbose=self.verbose,
                callback=callback,
                columns=("expected_accuracy",),
            )
            with fit_threads("nca_exact", n_samples):
                result = minimize_lbfgs(
                    _exact_objective(
                        X_unit, labels, components.shape[0], self.working_memory
                    ),
                    components,
                    max_iter=self.max_iter,
                    tol=self.tol,
                    log=log,
                    shape=components.shape,
                    ftol=self.tol,
                )
            components, n_iter = result.x, result.n_iter
            exact_loss = float(result.loss)
            dropped_mass = 0.0
        else:
            log = IterationLog(
                "NCA",
                verbose=self.verbose,
                callback=callback,
                columns=("expected_accuracy", "dropped_mass"),
            )
            # Sorted by class, and within a class along the starting map's
            # leading axes (the objective does not depend on the order), most
            # candidates of a point lie near it in memory: the kernels'
            # gathers of candidate rows then mostly hit the cache.
            order = _locality_order(X_unit, labels, components)
            X_sorted = np.ascontiguousarray(X_unit[order])
            labels_sorted = labels[order]
            with fit_threads("nca_truncated", n_samples):
                components, loss, candidates, check = self._fit_truncated(
                    X_sorted, labels_sorted, components, log
                )
                if check is None:
                    # The truncated objective's result, checked on the exact
                    # one at the final map.
                    _, dropped, p_correct = find_candidates(
                        components,
                        X_sorted,
                        min(self.n_candidates, n_samples - 1),
                        working_memory=self.working_memory,
                        labels=labels_sorted,
                        prior=candidates,
                    )
                else:
                    dropped, p_correct = check
            n_iter = log.n_iter
            exact_loss = -float(p_correct.sum())
            dropped_mass = float(dropped.max())
            # |p_i(truncated) - p_i(exact)| <= dropped mass of point i.
            if exact_loss - loss > _EXACT_GAP_WARN * max(abs(exact_loss), 1.0):
                warnings.warn(
                    f"NCA's truncated objective ({loss:.6g}) understates the "
                    f"exact loss at its optimum ({exact_loss:.6g}): up to "
                    f"{dropped_mass:.3g} of a point's softmax mass lies outside "
                    f"its n_candidates={self.n_candidates} candidates. Increase "
                    "n_candidates or use solver='exact'.",
                    UserWarning,
                    stacklevel=2,
                )

        self.components_ = np.ascontiguousarray(components / unit, dtype=X.dtype)
        self.n_iter_ = n_iter
        self.loss_curve_ = log.loss_curve
        self.history_ = log.history
        self.solver_ = solver
        self.exact_loss_ = exact_loss
        self.dropped_mass_ = dropped_mass
        return self

    def _fit_truncated(self, X, labels, components, log):
        """Alternate candidate searches and L-BFGS-B stages.

        Returns the map, the truncated loss at it, the last candidate sets
        and, when the last search was made at the returned map, its
        measurement ``(dropped_mass, p_correct)`` over all points (else
        None).
        """
        n_candidates = min(self.n_candidates, X.shape[0] - 1)
        shape = components.shape
        n_pool = min(_POOL_FACTOR * n_candidates, X.shape[0] - 1)
        converged = False
        message = f"reached max_iter={self.max_iter}"
        stages_since_search = _SEARCH_EVERY
        confirm = False
        loss = np.nan
        pool = None
        check = None
        while log.n_iter < self.max_iter:
            full_search = stages_since_search >= _SEARCH_EVERY
            check = None
            if full_search:
                # A search that may confirm convergence measures every point,
                # so that it doubles as the final check if it does.
                found = find_candidates(
                    components,
                    X,
                    n_pool,
                    working_memory=self.working_memory,
                    mass_sample=None if confirm else _MASS_SAMPLE,
                    n_kept=n_candidates,
                    labels=labels if confirm else None,
                    prior=pool,
                )
                pool, dropped = found[0], found[1]
                if confirm:
                    check = (dropped, found[2])
                dropped_mass = float(np.nanmax(dropped))
                # a copy: re-selection writes here while reading the pool
                candidates = pool[:, :n_candidates].copy()
                stages_since_search = 0
            else:
                Z = np.ascontiguousarray(X @ components.T.astype(X.dtype))
                _kernels_nca().reselect_candidates(Z, pool, candidates)
            stages_since_search += 1
            objective = _truncated_objective(X, labels, candidates, dropped_mass)
            # A confirming stage runs on a log of its own: if it confirms,
            # the fit keeps the map it started from (where the search
            # measured everything) and its few iterations are dropped;
            # otherwise they are replayed into the fit's log.
            stage_log = _TrialLog(log) if confirm else log
            stage = minimize_lbfgs(
                objective,
                components,
                max_iter=min(self.refresh_every, self.max_iter - log.n_iter),
                tol=self.tol,
                log=stage_log,
                shape=shape,
                ftol=self.tol,
                finish=False,
            )
            # A stage that converged having gained less than refresh_every
            # iterations at L-BFGS-B's relative tolerance would: the candidate
            # sets no longer move the optimum. Confirmed only on the sets of
            # a full search.
            gain = stage.initial_loss - stage.loss
            small_gain = stage.converged and gain <= (
                self.refresh_every * self.tol * max(abs(stage.loss), 1.0)
            )
            cannot_move = stage.n_iter == 0 and not stage.converged
            if confirm and (small_gain or cannot_move):
                loss = stage.initial_loss
                converged = small_gain
                if cannot_move:
                    message = stage.message
                break
            if confirm:
                stage_log.replay()
                check = None
            confirm = False
            components, loss = stage.x, stage.loss
            if cannot_move:
                message = stage.message  # L-BFGS-B cannot move at all
                break
            if small_gain:
                if full_search:
                    converged = True
                    break
                stages_since_search = _SEARCH_EVERY
                confirm = True
        log.finish(converged, None if converged else message)
        return components, loss, candidates, check


def _locality_order(X, labels, components):
    """An order of the points: by class, then by cell of the starting map.

    Within a class, the points go in ``_ORDER_SLABS`` slabs of equal size
    along the leading principal axis of ``Z = X L^T``, each slab sorted
    along the second axis: points near each other in ``Z`` mostly end up
    near each other in memory (on MNIST the truncated evaluations' gathers
    take about a sixth less time than in the order of the data).
    """
    Z = X @ components.T.astype(X.dtype, copy=False)
    Z = Z - Z.mean(axis=0)
    _, axes = np.linalg.eigh(Z.T @ Z)
    first = Z @ axes[:, -1]
    second = Z @ axes[:, -2] if axes.shape[1] > 1 else np.zeros_like(first)
    if not (np.all(np.isfinite(first)) and np.all(np.isfinite(second))):
        return np.argsort(labels, kind="stable")
    by_first = np.lexsort((first, labels))
    counts = np.bincount(labels)
    starts = np.cumsum(counts) - counts
    sorted_labels = labels[by_first]
    rank = np.arange(labels.shape[0]) - starts[sorted_labels]
    slab = np.empty(labels.shape[0], dtype=np.intp)
    slab[by_first] = rank * _ORDER_SLABS // counts[sorted_labels]
    return np.lexsort((second, slab, labels))


class _TrialLog:
    """An iteration log whose records reach the fit's log only on replay."""

    def __init__(self, log):
        self.log = log
        self.columns = log.columns
        self.records = []

    @property
    def n_iter(self):
        return self.log.n_iter + len(self.records)

    def record(self, n_iter, loss, components=None, **extras):
        copy = None if components is None else np.array(components, copy=True)
        self.records.append((n_iter, loss, copy, extras))

    def note(self, message):
        self.log.note(message)

    def replay(self):
        for n_iter, loss, components, extras in self.records:
            self.log.record(n_iter, loss, components, **extras)
        self.records = []


def nca_loss_grad(components, X, labels, *, working_memory=None):
    """Exact NCA loss ``-sum_i p_i`` and its gradient, in row blocks.

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)
        The linear map ``L``.
    X : ndarray of shape (n_samples, n_features), float32 or float64
        Training data (C-contiguous). Distances are computed in its dtype,
        the products of the weights in float32, and sums in float64.
    labels : ndarray of shape (n_samples,), intp
        Class codes.
    working_memory : float, optional
        Budget in MiB for one block of distances.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_components, n_features), float64
    p_correct : ndarray of shape (n_samples,), float64
        ``p_i`` of each point.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._nca import nca_loss_grad
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [1.0, 3.0]])
    >>> loss, grad, p = nca_loss_grad(np.eye(2), X, np.array([0, 0, 1, 1]))
    >>> round(loss, 4)
    -3.9982
    """
    from ._kernels import row_norms_sq, rows_per_chunk
    from ._kernels.nca import soft_neighbor_weights

    Z = np.ascontiguousarray(X @ components.T.astype(X.dtype, copy=False))
    # The weight products only need float32's relative precision.
    Z32 = Z.astype(np.float32, copy=False)
    sq_norms = row_norms_sq(Z)
    # A separate transposed copy makes Z[rows] @ Z_T a plain GEMM (NumPy would
    # send Z @ Z.T to SYRK, several times slower here).
    Z_T = np.ascontiguousarray(Z.T)
    n_samples = X.shape[0]
    p_correct = np.empty(n_samples, dtype=np.float64)
    S = np.zeros(Z.shape, dtype=np.float64)
    col_sums = np.zeros(n_samples, dtype=np.float64)
    # One block holds a Gram block in Z's dtype and the weights in float32.
    # Blocks of at most _EXACT_BLOCK_ROWS rows: GEMMs stay efficient and
    # memory stays well under the budget.
    n_rows = rows_per_chunk(
        n_samples * (Z.itemsize + 4),
        working_memory,
        max_rows=min(n_samples, _EXACT_BLOCK_ROWS),
    )
    gram = np.empty((n_rows, n_samples), dtype=Z.dtype)
    weights = gram if Z.dtype == np.float32 else np.empty(gram.shape, np.float32)
    for start in range(0, n_samples, n_rows):
        stop = min(start + n_rows, n_samples)
        block_gram = np.matmul(Z[start:stop], Z_T, out=gram[: stop - start])
        block_weights = weights[: stop - start]
        col_sums += soft_neighbor_weights(
            block_gram, sq_norms, labels, start, p_correct[start:stop], block_weights
        )
        S[start:stop] -= block_weights @ Z32
        S -= block_weights.T @ Z32[start:stop]
    S += col_sums[:, None] * Z
    grad = 2.0 * (S.T @ X)
    return -float(p_correct.sum()), grad, p_correct


def truncated_loss_grad(components, X, labels, candidates, reverse=None):
    """NCA loss and gradient with each softmax restricted to candidate sets.

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,), intp
    candidates : ndarray of shape (n_samples, m), intp
        Distinct candidate neighbours of each point, never the point itself.
    reverse : tuple, optional
        ``reverse_candidates(candidates, n_samples)``, to reuse over calls.

    Returns
    -------
    loss : float
        ``-sum_i p_i`` with ``p_ij`` the softmax over ``candidates[i]``.
    grad : ndarray of shape (n_components, n_features), float64
    p_correct : ndarray of shape (n_samples,), float64
    """
    n_samples = X.shape[0]
    Z = np.empty((n_samples, components.shape[0]), dtype=X.dtype)
    L_T = components.T.astype(X.dtype, copy=False)
    parts = _split_range(n_samples, _GEMM_PARTS)
    _run_parts(lambda a, b: np.matmul(X[a:b], L_T, out=Z[a:b]), parts)
    weights = np.empty(candidates.shape, dtype=np.float64)
    p_correct = np.empty(n_samples, dtype=np.float64)
    S = np.empty(Z.shape, dtype=np.float64)
    kernels = _kernels_nca()
    kernels.truncated_soft_neighbors(Z, candidates, labels, weights, p_correct, S)
    kernels.scatter_truncated_gradient(Z, candidates, weights, S, reverse)
    # 2 S^T X as a sum over a fixed number of row parts, in order: the same
    # result whatever the number of threads.
    grad = sum(_run_parts(lambda a, b: S[a:b].T @ X[a:b], parts))
    return -float(p_correct.sum()), 2.0 * grad, p_correct


def _split_range(n, n_parts):
    from ._kernels._chunking import split_range

    return split_range(n, n_parts)


def _run_parts(func, parts):
    # func(start, stop) for each part, the parts shared among the kernel
    # threads (BLAS stays single-threaded in the truncated fit).
    from ._kernels._chunking import run_tasks
    from ._threads import kernel_threads

    n_threads = min(kernel_threads(), len(parts))

    def run(thread_parts):
        return [func(a, b) for a, b in thread_parts]

    per_thread = run_tasks([(run, parts[t::n_threads]) for t in range(n_threads)])
    results = [None] * len(parts)
    for t, thread_results in enumerate(per_thread):
        results[t::n_threads] = thread_results
    return results


def find_candidates(
    components,
    X,
    n_candidates,
    *,
    working_memory=None,
    mass_sample=None,
    n_kept=None,
    labels=None,
    prior=None,
):
    """Each point's nearest points in the projected space, and the mass left out.

    The search runs on float32 distances (one GEMM per block): near ties may
    be broken differently from exact arithmetic, which changes which
    candidate sets the truncated objective uses, not how it is computed.

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)
    X : ndarray of shape (n_samples, n_features)
    n_candidates : int
        Below ``n_samples``.
    working_memory : float, optional
        Budget in MiB for one block of distances.
    mass_sample : int, optional
        Measure the dropped mass on about this many evenly spaced points
        only; None measures it on all.
    n_kept : int, optional
        The dropped mass is that of a softmax over the ``n_kept`` nearest;
        None means ``n_candidates``.
    labels : ndarray of shape (n_samples,), intp, optional
        Class codes: also return the exact ``p_i`` where the mass is
        measured.
    prior : ndarray of shape (n_samples, k), intp, optional
        At least ``n_candidates`` distinct other points per point (a
        previous search's): they bound the search, which is then cheaper;
        the result does not depend on them.

    Returns
    -------
    candidates : ndarray of shape (n_samples, n_candidates), intp
        Nearest first.
    dropped_mass : ndarray of shape (n_samples,), float64
        Softmax mass ``sum_j p_ij`` over the points ``j`` not kept; NaN where
        not measured.
    p_correct : ndarray of shape (n_samples,), float64
        Only with ``labels``: the exact ``p_i`` (softmax over all points,
        from the float32 distances), NaN where not measured.
    """
    Z = np.ascontiguousarray(X @ components.T, dtype=np.float32)
    n_samples = Z.shape[0]
    stride = 1 if mass_sample is None else max(1, n_samples // mass_sample)
    p_correct = None if labels is None else np.empty(n_samples, dtype=np.float64)
    candidates, dropped = _kernels_nca().candidate_search(
        Z,
        n_candidates,
        working_memory=working_memory,
        mass_stride=stride,
        n_kept=n_kept,
        labels=labels,
        p_correct=p_correct,
        prior=prior,
    )
    if labels is None:
        return candidates, dropped
    return candidates, dropped, p_correct


def _unit_scaled(X):
    """Centred ``X`` divided by the root mean square of its entries, and that.

    The data is first brought to a power-of-two unit near its spread (exact),
    so that the mean square neither overflows nor underflows at any scale.
    """
    X_units, exponent = centred_in_units(X)
    unit = float(np.sqrt(np.mean(np.square(X_units, dtype=np.float64))))
    if not 0.0 < unit < np.inf:
        return X_units, float(np.ldexp(1.0, exponent))
    return (
        np.ascontiguousarray(X_units / X.dtype.type(unit)),
        float(np.ldexp(unit, exponent)),
    )


def _best_scale(X, labels, components, random_state, working_memory):
    """The factor ``c`` of the starting map ``c L``, from a search on the loss.

    With ``t = c^2`` every squared distance scales by ``t``. The loss of
    ``sqrt(t) L`` falls from its value at ``t = 0`` (a uniform softmax)
    towards a plateau where each softmax saturates on the nearest point.
    The search evaluates it on a geometric grid of ``t`` (relative to the
    mean squared distance of the projected points, so the choice does not
    depend on the units of ``L``) and returns the smallest ``t`` whose loss
    has ``1 - _SCALE_GAIN_SHORTFALL`` of the largest gain on the grid.
    The loss is summed over all points when ``n_samples**2 <=
    _SCALE_PAIRS``, else over ``max(_SCALE_PAIRS // n_samples,
    _SCALE_MIN_ROWS)`` rows drawn from ``random_state``.
    """
    n_samples = X.shape[0]
    Z = X @ components.T.astype(X.dtype, copy=False)
    spread = 2.0 * float(np.mean(np.square(Z - Z.mean(axis=0), dtype=np.float64)))
    spread *= Z.shape[1]  # mean squared distance between two points
    if not 0.0 < spread < np.inf:
        return 1.0
    if n_samples * n_samples <= _SCALE_PAIRS:
        rows = np.arange(n_samples, dtype=np.intp)
    else:
        n_rows = min(n_samples, max(_SCALE_PAIRS // n_samples, _SCALE_MIN_ROWS))
        rows = np.sort(random_state.choice(n_samples, n_rows, replace=False))
    Z = np.ascontiguousarray(Z)
    # At t = 0 every p_ij is 1 / (n - 1): p_i is the share of i's class.
    same = np.bincount(labels)[labels[rows]] - 1.0
    uniform_loss = -float(same.sum()) / (n_samples - 1)
    # A coarse grid (every _SCALE_REFINE-th point of the fine one), then the
    # fine points just below the first coarse one that is good enough.
    if n_samples <= DENSE_MAX_SAMPLES:
        scale_losses = _dense_scale_losses
    else:
        scale_losses = _kernels_nca().scale_losses
    scales = _SCALE_GRID[::_SCALE_REFINE] / spread
    loss = scale_losses(Z, labels, rows, scales, working_memory=working_memory)
    enough = _good_enough(loss, uniform_loss)
    first = int(np.argmax(loss <= enough))
    if first > 0:
        fine = _SCALE_GRID[(first - 1) * _SCALE_REFINE + 1 : first * _SCALE_REFINE]
        fine_loss = scale_losses(
            Z, labels, rows, fine / spread, working_memory=working_memory
        )
        scales = np.concatenate([fine / spread, scales[first:]])
        loss = np.concatenate([fine_loss, loss[first:]])
        enough = min(enough, _good_enough(loss, uniform_loss))
    return float(np.sqrt(scales[np.argmax(loss <= enough)]))


def _good_enough(loss, uniform_loss):
    best = float(loss.min())
    return best + _SCALE_GAIN_SHORTFALL * max(uniform_loss - best, 0.0)


def _exact_objective(X, labels, n_components, working_memory):
    n_samples = X.shape[0]
    if n_samples <= DENSE_MAX_SAMPLES:
        # sorted by class once: the loss and gradient do not depend on order
        order = np.argsort(labels, kind="stable")
        X, labels = np.ascontiguousarray(X[order]), labels[order]

        loss_grad = _DenseLossGrad(X, labels, n_components, working_memory)

    else:

        def loss_grad(components):
            return nca_loss_grad(components, X, labels, working_memory=working_memory)

    def fun(flat_components):
        loss, grad, p_correct = loss_grad(flat_components.reshape(-1, X.shape[1]))
        return loss, grad, {"expected_accuracy": p_correct.sum() / n_samples}

    return fun


def dense_loss_grad(components, X, labels, *, working_memory=None):
    """Exact NCA loss ``-sum_i p_i`` and its gradient, in NumPy alone.

    The small-data form of :func:`nca_loss_grad` (no compiled kernel to
    load), in blocks of rows that split over threads. With the points
    sorted by class, a block goes through:

    - one GEMM ``[z_i, 1, s_i] . [2 z_j, -s_j, -1] = -d_ij`` (``s_i =
      ||z_i||^2``) that gives the negated squared distances directly;
    - ``exp(-d_ij)``, each row's terms more than 50 beyond its nearest
      (below ``2e-22`` of the nearest's) raised to that level, so that no
      subnormal number is formed; a row whose nearest point is farther
      than 650 (30 in float32) is shifted by it first, so that no row
      underflows;
    - the row sums per class (one reduction, added in float64), hence
      ``p_i``;
    - ``W_ij = p_ij (1[y_i = y_j] - p_i)`` in place of the exponentials,
      one product per class slice (a factor ``1[y_i = y_j] - p_i`` below
      1e-15, under the float64 resolution of ``p_i``, counts as 0, 1e-12
      in float32, so that no weight is a slow subnormal number);
    - ``S[rows] = -W Z`` and ``[W^T Z[rows], W^T 1]`` (two GEMMs); then
      ``S = D Z - W Z - W^T Z`` with ``D`` the column sums of ``W``, and
      the gradient is ``2 S^T X``.

    Up to ``DENSE_FLOAT64_MAX_SAMPLES`` samples the exponentials and
    weights are float64 (the distances in the dtype of X); above, the
    distances, exponentials and weights are float32 whatever the dtype of
    X: each ``p_i`` then holds about 1e-7 of its value, the loss (their
    float64 sum) about 1e-8 and the gradient about 1e-5 of its largest
    entry, on scikit-learn's digits from the start to the optimum; enough
    for L-BFGS-B at its default tolerances (the same iterations on the
    benchmark data sets) at about half the cost of float64.

    The blocks' shares of ``W^T Z`` and of the column sums go to four
    float64 sums (block ``b`` to sum ``b % 4``, in block order), added in
    order at the end: the result does not depend on the number of threads.

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)
    X : ndarray of shape (n_samples, n_features), float32 or float64
    labels : ndarray of shape (n_samples,), intp
        Class codes; the work is cheapest when they are sorted (the data
        is sorted internally otherwise).
    working_memory : float, optional
        Budget in MiB for the blocks of all threads together; None means
        ``sklearn.get_config()['working_memory']``.

    Returns
    -------
    loss, grad, p_correct
        As :func:`nca_loss_grad`.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._nca import dense_loss_grad
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [1.0, 3.0]])
    >>> round(dense_loss_grad(np.eye(2), X, np.array([0, 0, 1, 1]))[0], 4)
    -3.9982
    """
    labels = np.asarray(labels, dtype=np.intp)
    if labels.shape[0] > 1 and np.any(labels[1:] < labels[:-1]):
        order = np.argsort(labels, kind="stable")
        loss, grad, p_sorted = dense_loss_grad(
            components, X[order], labels[order], working_memory=working_memory
        )
        p_correct = np.empty_like(p_sorted)
        p_correct[order] = p_sorted
        return loss, grad, p_correct
    n_components = np.shape(components)[0]
    return _DenseLossGrad(X, labels, n_components, working_memory)(components)


class _DenseLossGrad:
    """:func:`dense_loss_grad` on fixed data sorted by class, buffers reused.

    A fit evaluates the loss tens of times: the blocks' buffers are made
    once (a fresh buffer costs a page fault per 4 KiB on first touch).
    """

    def __init__(self, X, labels, n_components, working_memory):
        self.X = X
        self.labels = labels
        n_samples = X.shape[0]
        n_classes = int(labels[-1]) + 1
        bounds = np.searchsorted(labels, np.arange(n_classes + 1))
        self.present = np.flatnonzero(np.diff(bounds))  # classes with samples
        self.bounds = bounds
        self.own = np.searchsorted(self.present, labels)
        self.weight_dtype = (
            np.float64 if n_samples <= DENSE_FLOAT64_MAX_SAMPLES else np.float32
        )
        self.dist_dtype = np.promote_types(X.dtype, self.weight_dtype)
        if self.weight_dtype == np.float32:
            self.dist_dtype = np.dtype(np.float32)
        # The blocks depend on n_samples and the budget only (so does the
        # result); each thread holds one block's buffers.
        row_bytes = n_samples * np.dtype(self.weight_dtype).itemsize
        if self.dist_dtype != self.weight_dtype:
            row_bytes += n_samples * self.dist_dtype.itemsize
        budget = _working_memory_bytes(working_memory)
        n_rows = max(1, min(_DENSE_BLOCK_ROWS, budget // row_bytes))
        n_blocks = -(-n_samples // n_rows)
        self.n_rows = -(-n_samples // n_blocks)  # blocks of equal size
        self.starts = range(0, n_samples, self.n_rows)
        # Block b adds its share of W^T [Z, 1] to the float64 sum of lane
        # b % n_lanes, in block order; the lanes are summed in order at the
        # end, whatever thread ran them.
        n_lanes = min(_DENSE_LANES, n_blocks)
        self.lanes = [range(lane, n_blocks, n_lanes) for lane in range(n_lanes)]
        self.lane_sums = np.empty((n_lanes, n_samples, n_components + 1))
        by_budget = budget // (self.n_rows * row_bytes)
        self.n_threads = max(1, min(_dense_threads(n_samples), n_lanes, by_budget))
        # per thread: distances, weights, one block's share
        self.buffers = [None] * self.n_threads
        if self.weight_dtype == np.float32:
            self.far, self.floor = _FAR_EXPONENT_32, _WEIGHT_FACTOR_FLOOR_32
        else:
            self.far, self.floor = _FAR_EXPONENT, _WEIGHT_FACTOR_FLOOR

    def _buffers(self, thread):
        if self.buffers[thread] is None:
            n_samples = self.X.shape[0]
            shape = (self.n_rows, n_samples)
            weights = np.empty(shape, self.weight_dtype)
            neg_dist = weights
            if self.dist_dtype != self.weight_dtype:
                neg_dist = np.empty(shape, self.dist_dtype)
            share = np.empty(self.lane_sums.shape[1:], self.weight_dtype)
            self.buffers[thread] = (neg_dist, weights, share)
        return self.buffers[thread]

    def __call__(self, components):
        X = self.X
        n_samples = X.shape[0]
        Z = X @ components.T.astype(X.dtype, copy=False)
        n_components = Z.shape[1]
        sq_norms = np.einsum("ij,ij->i", Z, Z, dtype=np.float64)
        # rows [z_i, 1, s_i] times columns [2 z_j, -s_j, -1]: -d_ij
        rows = np.empty((n_samples, n_components + 2), dtype=self.dist_dtype)
        rows[:, :n_components] = Z
        rows[:, n_components] = 1.0
        rows[:, n_components + 1] = sq_norms
        columns_T = np.empty((n_components + 2, n_samples), dtype=self.dist_dtype)
        np.multiply(Z.T, 2.0, out=columns_T[:n_components])
        np.negative(sq_norms, out=columns_T[n_components])
        columns_T[n_components + 1] = -1.0
        # [Z, 1] in the weights' dtype: W^T [Z, 1] holds the column sums
        Z_w = np.empty((n_samples, n_components + 1), dtype=self.weight_dtype)
        Z_w[:, :n_components] = Z
        Z_w[:, n_components] = 1.0
        S = np.empty(Z.shape, dtype=np.float64)
        p_correct = np.empty(n_samples, dtype=np.float64)

        def run(thread):
            neg_dist, weights, share = self._buffers(thread)
            for lane in range(thread, len(self.lanes), self.n_threads):
                lane_sum = self.lane_sums[lane]
                for block in self.lanes[lane]:
                    start = self.starts[block]
                    stop = min(start + self.n_rows, n_samples)
                    p_correct[start:stop] = self._block(
                        start, stop, rows, columns_T, Z_w, neg_dist, weights, S, share
                    )
                    if block == lane:
                        np.copyto(lane_sum, share)
                    else:
                        np.add(lane_sum, share, out=lane_sum)

        if self.n_threads == 1:
            run(0)
        else:
            from ._kernels._chunking import run_tasks

            run_tasks([(run, thread) for thread in range(self.n_threads)])
        shares = self.lane_sums[0]
        for lane in range(1, len(self.lanes)):
            shares += self.lane_sums[lane]
        # S = D Z - W Z - W^T Z; S holds -W Z
        S -= shares[:, :n_components]
        S += shares[:, n_components, None] * Z
        grad = 2.0 * (S.T @ X)
        return -float(p_correct.sum()), grad, p_correct

    def _block(self, start, stop, rows, columns_T, Z_w, neg_dist, weights, S, share):
        size = stop - start
        n_samples = neg_dist.shape[1]
        neg = np.matmul(rows[start:stop], columns_T, out=neg_dist[:size])
        diagonal = neg.ravel()[start :: n_samples + 1][:size]
        diagonal[:] = -np.inf  # never itself
        nearest = neg.max(axis=1)
        far = nearest < -self.far
        if np.any(far):
            # exp(-d) would leave the normal numbers: these rows shifted
            neg[far] -= nearest[far, None]
            nearest[far] = 0.0
        nearest -= _SKIP_EXPONENT
        np.maximum(neg, nearest[:, None], out=neg)
        # exp(-d_ij), then the weights, in place
        block_w = np.exp(neg, out=weights[:size])
        block_w.ravel()[start :: n_samples + 1][:size] = 0.0
        # the row sums per class, added in float64
        class_sums = np.add.reduceat(block_w, self.bounds[self.present], axis=1)
        class_sums = class_sums.astype(np.float64, copy=False)
        total = class_sums.sum(axis=1)
        rows = np.arange(size)
        own = self.own[start:stop]
        same = class_sums[rows, own]
        p_block = same / total
        # W_ij = p_ij (1[y_i = y_j] - p_i): per row, a factor for its own
        # class, (1 - p_i) / total_i with 1 - p_i summed from the other
        # classes (exact as p_i -> 1), and one for the others, -p_i / total_i
        factors = np.empty((size, 2))
        np.subtract(total, same, out=factors[:, 0])
        factors[:, 0] /= total
        np.negative(p_block, out=factors[:, 1])
        factors[np.abs(factors) < self.floor] = 0.0
        factors /= total[:, None]
        factors = factors.astype(block_w.dtype, copy=False)
        # the whole block times the second (one contiguous product), each
        # row's own class times the first
        bounds, labels = self.bounds, self.labels
        own_parts = []
        for label in range(labels[start], labels[stop - 1] + 1):
            a, b = bounds[label], bounds[label + 1]
            first, last = max(a, start) - start, min(b, stop) - start
            if first < last:
                part = block_w[first:last, a:b] * factors[first:last, :1]
                own_parts.append((first, last, a, b, part))
        np.multiply(block_w, factors[:, 1:], out=block_w)
        for first, last, a, b, part in own_parts:
            block_w[first:last, a:b] = part
        np.negative(block_w @ Z_w[:, :-1], out=S[start:stop])
        # W^T [Z, 1]: W^T Z and the column sums of W, in one product
        np.matmul(block_w.T, Z_w[start:stop], out=share)
        return p_block


def _working_memory_bytes(working_memory):
    if working_memory is None:
        import sklearn

        working_memory = sklearn.get_config()["working_memory"]
    return int(float(working_memory) * 2**20)


def _dense_threads(n_samples):
    """Threads for :func:`dense_loss_grad`: one per core, capped by the work."""
    from ._threads import _KERNEL_LIMIT

    by_work = n_samples * n_samples // _DENSE_MIN_WORK_PER_THREAD
    limit = _KERNEL_LIMIT.get()
    n_threads = min(_cpu_count(), max(by_work, 1))
    if limit is not None:
        n_threads = min(n_threads, limit)
    return max(1, n_threads)


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _dense_scale_losses(Z, labels, rows, scales, *, working_memory=None):
    """:func:`linmetric._kernels.nca.scale_losses` in NumPy alone."""
    Z = np.asarray(Z, dtype=np.float64)
    sq_norms = np.einsum("ij,ij->i", Z, Z)
    sq_dist = sq_norms[rows, None] + sq_norms[None, :] - 2.0 * (Z[rows] @ Z.T)
    np.maximum(sq_dist, 0.0, out=sq_dist)
    sq_dist[np.arange(rows.shape[0]), rows] = np.inf
    sq_dist -= sq_dist.min(axis=1, keepdims=True)
    same_class = (labels[rows, None] == labels[None, :]).astype(np.float64)
    loss = np.empty(len(scales), dtype=np.float64)
    weights = np.empty_like(sq_dist)
    for s, scale in enumerate(scales):
        np.multiply(sq_dist, -scale, out=weights)
        # terms beyond _SKIP_EXPONENT kept at exp(-50): no subnormal numbers
        np.maximum(weights, -_SKIP_EXPONENT, out=weights)
        np.exp(weights, out=weights)
        weights[np.arange(rows.shape[0]), rows] = 0.0  # never itself
        same = np.einsum("ij,ij->i", weights, same_class)
        loss[s] = -(same / weights.sum(axis=1)).sum()
    return loss


def _kernels_nca():
    # Imported on first use: small exact fits never load compiled kernels.
    from ._kernels import nca

    return nca


def _truncated_objective(X, labels, candidates, dropped_mass):
    n_samples = X.shape[0]
    reverse = _kernels_nca().reverse_candidates(candidates, n_samples)

    def fun(flat_components):
        components = flat_components.reshape(-1, X.shape[1])
        loss, grad, p_correct = truncated_loss_grad(
            components, X, labels, candidates, reverse
        )
        extras = {
            "expected_accuracy": p_correct.sum() / n_samples,
            "dropped_mass": dropped_mass,
        }
        return loss, grad, extras

    return fun
