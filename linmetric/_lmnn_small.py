"""LMNN on small problems, in plain NumPy: every pair at every evaluation.

On small problems (``SMALL_MAX_WORK``: iris, 70% of wine),
:class:`linmetric.LMNN` fits without its compiled kernels. Loading those
kernels costs a fresh process a fixed tenth of a second or more, many times
the whole fit of a data set such as iris; here every step is a few NumPy
products and masks instead:

- target neighbours: one float64 product per class for the squared
  distances, a threshold from its error bound (as in
  :mod:`linmetric._kernels.neighbors`), and exact float64 sums of squared
  differences for the candidates under it; ties go to the smaller index;
- the scale of the initial map: the estimate of
  :func:`linmetric._kernels.lmnn.scale_losses` on the same sample, each
  triplet counted at the grid values where it is active;
- the loss: each evaluation finds the impostors of every point among all
  pairs (a float64 product and its error bound, then exact distances for
  the pairs that may be inside a margin), so no candidate set can go stale
  and no final check is needed; the gradient's matrix
  ``C = sum_p w_p (x_a - x_b)(x_a - x_b)^T`` is the symmetric part of
  ``X^T (D X - 2 W X)``, with ``W X`` gathered pair by pair.

The objective, the optimiser and its stopping rule are those of the kernel
path, so both give the same fit up to rounding. The all-pairs arrays take
about ``ALL_PAIRS_BYTES`` bytes per pair of points: the path is taken only
when they fit both ``working_memory`` and ``impostor_memory``. As every
evaluation searches all pairs, ``n_impostor_searches_`` counts the
evaluations.
"""

import functools

import numpy as np

from ._init import initialize_components
from ._kernels._chunking import get_working_memory
from ._optimize import minimize_lbfgs, minimize_subgradient
from ._threads import fit_threads

# The largest problem fitted by this module, in units of n_samples^2 *
# (n_features + 8): the work of one evaluation. Up to about this size, a
# warm fit (compiled kernels loaded) takes as long either way; above it, the
# kernels' working set of impostors wins (1.2 to 1.5 times faster at
# 150 to 200 points of 13 features).
SMALL_MAX_WORK = 350_000
# Bytes per pair of points of one all-pairs evaluation: the distances,
# their bounds and masks, with room for NumPy's temporaries.
ALL_PAIRS_BYTES = 48
# Points used to estimate the best scale of the initial map (as the kernel
# path: the same draw from the random state).
_SCALE_SAMPLE = 500
_MIB = 2**20


def small_problem(n_samples, n_features, working_memory=None, impostor_memory=None):
    """Whether LMNN fits ``n_samples`` points of ``n_features`` with this module.

    >>> small_problem(150, 4), small_problem(150, 4, impostor_memory=1e-5)
    (True, False)
    >>> small_problem(150, 64)
    False
    """
    if n_samples * n_samples * (n_features + 8) > SMALL_MAX_WORK:
        return False
    needed = ALL_PAIRS_BYTES * n_samples * n_samples
    budget = get_working_memory(working_memory) * _MIB
    pairs_budget = (
        budget
        if impostor_memory is None
        else get_working_memory(impostor_memory) * _MIB
    )
    return needed <= budget and needed <= pairs_budget


def fit_small(estimator, X, y, previous, shape, random_state, data_scale, log):
    """The rest of ``LMNN.fit`` after validation, on centred, scaled ``X``.

    ``previous`` is the map to resume from (warm start) or None, ``shape``
    the map's shape, ``data_scale`` the factor ``X`` was divided by and
    ``log`` the fit's :class:`linmetric._optimize.IterationLog`. Sets the
    fitted attributes and returns ``estimator``.
    """
    mu = float(estimator.push_weight)
    squared = estimator.loss == "squared_hinge"
    if squared:
        minimize = functools.partial(minimize_lbfgs, tol=0.0, ftol=estimator.tol)
    else:
        minimize = functools.partial(minimize_subgradient, tol=estimator.tol)
    with fit_threads("lmnn", X.shape[0]):
        targets = choose_targets(X, y, estimator.n_neighbors)
        if previous is not None and previous.shape == shape:
            components = np.asarray(previous, dtype=np.float64) * data_scale
        else:
            components = initialize_components(
                estimator.init, X, y, n_components=shape[0], random_state=random_state
            ).astype(np.float64)
            if not isinstance(estimator.init, str):
                components *= data_scale
            components = components * best_scale(
                X,
                y,
                components,
                targets,
                mu=mu,
                squared=squared,
                random_state=random_state,
            )
        objective = AllPairsObjective(X, y, mu=mu, squared=squared)
        converged, message = True, None
        for n_pass in range(1, estimator.n_passes + 1):
            objective.targets = targets
            result = minimize(
                objective,
                components,
                max_iter=estimator.max_iter - log.n_iter,
                log=log,
                shape=shape,
                finish=False,
            )
            components = result.x
            if not result.converged and converged:
                converged, message = False, result.message
            if n_pass == estimator.n_passes or log.n_iter >= estimator.max_iter:
                break
            new_targets = choose_targets(
                X @ components.T.astype(X.dtype, copy=False), y, estimator.n_neighbors
            )
            if note_changed_targets(log, n_pass, new_targets, targets) == 0:
                break
            targets = new_targets
    log.finish(converged, message)
    # every evaluation searched all pairs, none was streamed
    return estimator._set_fitted(
        X,
        components / data_scale,
        targets,
        n_pass,
        log,
        converged,
        objective.n_evaluations,
        0,
    )


def _error_factor(n_features):
    # the GEMM error bound of linmetric._kernels.distances, for float64
    return (2.0 * n_features + 8.0) * float(np.finfo(np.float64).eps) / 2.0


def _exact_sq(A, rows, B, cols):
    """``||A[rows[p]] - B[cols[p]]||^2``, float64 sums of squared differences."""
    diffs = A[rows].astype(np.float64) - B[cols]
    return np.einsum("ij,ij->i", diffs, diffs)


def nearest_of_class(X, n_neighbors):
    """The ``n_neighbors`` nearest other rows of ``X`` (one class), exactly.

    Sorted by exact squared distance, ties by index, as
    :func:`linmetric._kernels.target_neighbors`. ``X`` needs more than
    ``n_neighbors`` rows.
    """
    X64 = X.astype(np.float64)
    norms = np.einsum("ij,ij->i", X64, X64)
    approx = norms[:, None] + norms[None, :] - 2.0 * (X64 @ X64.T)
    slack = _error_factor(X.shape[1]) * (norms[:, None] + norms[None, :])
    np.fill_diagonal(approx, np.inf)
    # every true neighbour's distance is at most the k-th smallest upper bound
    upper = approx + slack
    threshold = np.partition(upper, n_neighbors - 1, axis=1)[:, n_neighbors - 1]
    rows, cols = np.nonzero(approx - slack <= threshold[:, None])
    exact = _exact_sq(X, rows, X, cols)
    order = np.lexsort((cols, exact, rows))
    rows, cols = rows[order], cols[order]
    # the first n_neighbors candidates of each row (each row has that many)
    starts = np.searchsorted(rows, np.arange(X.shape[0]))
    take = starts[:, None] + np.arange(n_neighbors)
    return cols[take]


def note_changed_targets(log, n_pass, new_targets, targets):
    """Log, and return, how many points pass ``n_pass`` gave other targets.

    A point's targets count as changed when the sets differ, whatever
    their order.
    """
    changed = np.any(np.sort(new_targets, axis=1) != np.sort(targets, axis=1), axis=1)
    n_changed = int(np.count_nonzero(changed))
    log.note(f"pass {n_pass + 1}: target neighbours of {n_changed} points changed")
    return n_changed


def choose_targets(X, y, n_neighbors):
    """The target neighbours, as ``linmetric._lmnn._choose_targets``.

    A point of a class of ``n_neighbors`` members or fewer gets the others
    of its class, and itself in place of the rest.
    """
    n_samples = X.shape[0]
    targets = np.repeat(np.arange(n_samples, dtype=np.intp)[:, None], n_neighbors, 1)
    sizes = np.bincount(y)
    for label in np.flatnonzero(sizes > 1):
        members = np.flatnonzero(y == label)
        if members.shape[0] > n_neighbors:
            targets[members] = members[nearest_of_class(X[members], n_neighbors)]
            continue
        for position, i in enumerate(members):
            others = np.delete(members, position)
            targets[i, : others.shape[0]] = others
    return targets


def best_scale(X, y, components, targets, *, mu, squared, random_state):
    """The factor ``c`` for which ``c L`` has the lowest loss, estimated.

    The estimate of ``linmetric._lmnn._best_scale``: the same draw of points
    from ``random_state``, the same grid of ``t = c^2`` and the same
    distances (a product in the dtype of ``X`` plus float64 norms). Under
    ``c L`` a triplet with ``e = d(i, j) - d(i, l)`` adds ``h(1 + t e)``
    and is active while ``t < 1 / -e``: each triplet is counted once, at
    the last grid value where it is active, and cumulative sums over the
    grid give every ``t``'s share at once.
    """
    n_samples = X.shape[0]
    sample = np.sort(
        random_state.choice(n_samples, min(n_samples, _SCALE_SAMPLE), replace=False)
    )
    Z = X @ components.T.astype(X.dtype, copy=False)
    scales = np.logspace(-6, 2, 161)  # candidate values of t = c^2
    Z64 = Z.astype(np.float64, copy=False)
    norms = np.einsum("ij,ij->i", Z64, Z64)
    block = norms[sample, None] + norms[None, :] - 2.0 * (Z[sample] @ Z.T)
    block = np.maximum(block, 0.0).astype(Z.dtype, copy=False)
    target_sq = np.take_along_axis(block, targets[sample], axis=1).astype(np.float64)
    rows, cols = np.nonzero(y[sample, None] != y[None, :])
    # e = d(i, j) - d(i, l) for every triplet, shape (n_pairs, n_neighbors)
    gaps = target_sq[rows] - block[rows, cols].astype(np.float64)[:, None]
    # active for the grid values t_s < 1 / -e: the first s_last of them
    with np.errstate(divide="ignore"):
        s_last = np.where(
            gaps < 0.0,
            np.searchsorted(scales, -1.0 / gaps, side="left"),
            scales.shape[0],
        ).ravel()
    gaps = gaps.ravel()
    n_scales = scales.shape[0] + 1

    def active_sum(weights):
        # sum of the weights of the triplets active at each t_s
        return np.cumsum(np.bincount(s_last, weights, minlength=n_scales)[::-1])[::-1][
            1:
        ]

    count, linear = active_sum(None), active_sum(gaps)
    if squared:
        push = count + 2.0 * scales * linear + scales * scales * active_sum(gaps * gaps)
    else:
        push = count + scales * linear
    loss = (1.0 - mu) * scales * float(target_sq.sum()) + mu * push
    return float(np.sqrt(scales[np.argmin(loss)]))


class AllPairsObjective:
    """The LMNN loss of a flat map, its gradient and the active impostors.

    Callable as the optimiser's ``fun(x) -> (loss, grad, extras)``; the
    target neighbours are the attribute ``targets`` (set before use, and
    again for each pass).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
        Centred training data.
    y : ndarray of shape (n_samples,), intp
        Class codes.
    mu : float
        Weight of the push term.
    squared : bool
        Squared hinge (True) or hinge (False).
    """

    def __init__(self, X, y, *, mu, squared):
        self.X = X
        self.X64 = X.astype(np.float64, copy=False)
        self.other_class = y[:, None] != y[None, :]
        self.mu = mu
        self.squared = squared
        self.n_evaluations = 0
        self._targets = None

    @property
    def targets(self):
        """ndarray of shape (n_samples, n_neighbors), intp: the target neighbours."""
        return self._targets

    @targets.setter
    def targets(self, targets):
        self._targets = targets
        self._target_cols = targets.ravel()

    def __call__(self, x):
        L = np.asarray(x, dtype=np.float64).reshape(-1, self.X.shape[1])
        loss, grad, n_active = self.loss_grad(L)
        return loss, grad.ravel(), {"active_impostors": n_active}

    def loss_grad(self, L):
        """Loss, gradient (float64, shaped as ``L``) and active impostors."""
        self.n_evaluations += 1
        X, X64, targets, mu = self.X, self.X64, self._targets, self.mu
        n_samples = targets.shape[0]
        Z = X @ L.T.astype(X.dtype, copy=False)
        Z64 = Z.astype(np.float64, copy=False)
        # exact distances to the targets: float64 sums of squared differences
        differences = Z64[targets]
        differences -= Z64[:, None, :]
        target_sq = np.einsum("ijk,ijk->ij", differences, differences)
        margins = target_sq.max(axis=1) + 1.0
        # impostors: other class, inside the margin. The product keeps every
        # pair that may be, by its error bound, doubled for the rounding of
        # the rearranged test d(i, l) = n_i + n_l - 2 z_i.z_l < reach_i as
        # z_i.z_l - n_l / 2 > (n_i - reach_i) / 2; exact distances decide.
        norms = np.einsum("ij,ij->i", Z64, Z64)
        reach = margins + 2.0 * _error_factor(Z.shape[1]) * (norms + norms.max())
        near = Z64 @ Z64.T
        near -= norms / 2.0
        near = near > ((norms - reach) / 2.0)[:, None]
        near &= self.other_class
        rows, cols = np.divmod(np.flatnonzero(near), n_samples)  # sorted by row
        pair_sq = _exact_sq(Z64, rows, Z64, cols)
        inside = pair_sq < margins[rows]
        rows, cols, pair_sq = rows[inside], cols[inside], pair_sq[inside]
        # the hinge terms of the triplets (i, j, l): z = 1 + t_ij - d_il
        z = target_sq[rows]
        z -= pair_sq[:, None]
        z += 1.0
        if self.squared:
            np.maximum(z, 0.0, out=z)
            push = float(np.einsum("ij,ij->", z, z))
            slopes = z
            slopes *= 2.0
        else:
            slopes = (z > 0.0).astype(np.float64)
            push = float(np.einsum("ij,ij->", z, slopes))
        loss = (1.0 - mu) * float(target_sq.sum()) + mu * push
        # the gradient's matrix C = X^T (D X - 2 W X), symmetrised: W holds
        # the pair weights (row a, column b), D their sums over both points
        # of each pair; the impostor pairs of a row are consecutive
        target_weights = np.full(targets.shape, 1.0 - mu)
        pair_weights = slopes.sum(axis=1)
        pair_weights *= -mu
        gathered = np.zeros(X64.shape)
        if rows.shape[0]:
            starts = np.flatnonzero(np.diff(rows, prepend=-1))
            pushed_rows = rows[starts]
            target_weights[pushed_rows] += mu * np.add.reduceat(slopes, starts, axis=0)
            weighted = X64[cols]
            weighted *= pair_weights[:, None]
            gathered[pushed_rows] = np.add.reduceat(weighted, starts, axis=0)
        degrees = target_weights.sum(axis=1)
        degrees += np.bincount(
            self._target_cols, target_weights.ravel(), minlength=n_samples
        )
        degrees += np.bincount(rows, pair_weights, minlength=n_samples)
        degrees += np.bincount(cols, pair_weights, minlength=n_samples)
        gathered += np.einsum("ij,ijk->ik", target_weights, X64[targets])
        gathered *= -2.0
        gathered += degrees[:, None] * X64
        H = X64.T @ gathered
        C = (H + H.T) / 2.0
        return loss, 2.0 * L @ C, int(rows.shape[0])


def all_pairs_loss_grad(L, X, y, targets, *, push_weight, loss):
    """The LMNN loss and gradient over all pairs, in NumPy.

    The objective of :func:`linmetric._lmnn.lmnn_loss_grad` with every
    impostor pair given.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 0.0], [3.0, 0.0]])
    >>> targets = np.array([[1], [0], [3], [2]])
    >>> value, grad = all_pairs_loss_grad(
    ...     np.eye(2), X, np.array([0, 0, 1, 1]), targets,
    ...     push_weight=0.5, loss="hinge")
    >>> float(value)
    17.625
    """
    X = np.ascontiguousarray(X)
    objective = AllPairsObjective(
        X,
        np.asarray(y, dtype=np.intp),
        mu=float(push_weight),
        squared=loss == "squared_hinge",
    )
    objective.targets = np.ascontiguousarray(targets, dtype=np.intp)
    value, grad, _ = objective.loss_grad(np.asarray(L, dtype=np.float64))
    return value, grad
