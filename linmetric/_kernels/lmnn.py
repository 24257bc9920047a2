"""LMNN's per-triplet pass: the push loss and the pair weights of its gradient.

For a point ``i`` with target neighbours ``j`` (squared distances
``t_ij``) and a candidate impostor ``l`` at squared distance ``d_il``, the
triplet ``(i, j, l)`` is active when ``z = 1 + t_ij - d_il > 0``; it adds
``h(z)`` to the push loss (``h(z) = z`` or ``z^2``) and, to the gradient's
matrix ``C = sum_p w_p (x_a - x_b)(x_a - x_b)^T``, the weight ``mu h'(z)``
on the pair ``(i, j)`` and ``-mu h'(z)`` on the pair ``(i, l)``. The
candidates arrive sorted by row, so each row's triplets are handled by one
thread and no two threads write the same weight.
"""

import numpy as np

from ._chunking import run_on_row_ranges
from ._config import jit
from .distances import check_array, exact_sq_distance


@jit
def _push_kernel(
    start,
    stop,
    Z,
    indptr,
    cols,
    target_sq,
    mu,
    squared,
    pair_sq,
    pair_weights,
    target_weights,
    row_push,
    row_active,
):
    n_neighbors = target_sq.shape[1]
    for i in range(start, stop):
        radius = 0.0
        for j in range(n_neighbors):
            target_weights[i, j] = 0.0
            if target_sq[i, j] > radius:
                radius = target_sq[i, j]
        radius += 1.0
        push = 0.0
        active = 0
        for p in range(indptr[i], indptr[i + 1]):
            d = exact_sq_distance(Z, i, Z, cols[p])
            pair_sq[p] = d
            weight = 0.0
            if d < radius:
                active += 1
                for j in range(n_neighbors):
                    z = 1.0 + target_sq[i, j] - d
                    if z > 0.0:
                        if squared:
                            push += z * z
                            slope = 2.0 * z
                        else:
                            push += z
                            slope = 1.0
                        weight += slope
                        target_weights[i, j] += mu * slope
            pair_weights[p] = -mu * weight
        row_push[i] = push
        row_active[i] = active


def push_terms(Z, indptr, cols, target_sq, *, mu, squared):
    """Push loss and gradient weights over candidate impostor pairs.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components), float32 or float64
        The transformed points.
    indptr : ndarray of shape (n_samples + 1,), intp
        The candidates of row ``i`` are ``cols[indptr[i]:indptr[i + 1]]``.
    cols : ndarray of shape (n_candidates,), intp
        Candidate impostors (points of another class), grouped by row.
    target_sq : ndarray of shape (n_samples, n_neighbors), float64
        Squared distances of each point to its target neighbours.
    mu : float
        Weight of the push term.
    squared : bool
        Squared hinge (True) or hinge (False).

    Returns
    -------
    push : float
        ``sum h(1 + t_ij - d_il)`` over the active triplets (not yet times mu).
    pair_weights : ndarray of shape (n_candidates,), float64
        ``-mu sum_j h'(1 + t_ij - d_il)`` per candidate; zero when inactive.
    target_weights : ndarray of shape (n_samples, n_neighbors), float64
        ``mu sum_l h'(1 + t_ij - d_il)`` per target pair.
    n_active : int
        Candidates inside their row's margin ``max_j t_ij + 1``.
    pair_sq : ndarray of shape (n_candidates,), float64
        The candidates' squared distances (float64 sums).

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.lmnn import push_terms
    >>> Z = np.array([[0.0], [1.0], [1.5]])
    >>> indptr = np.array([0, 1, 1, 1])
    >>> cols = np.array([2])
    >>> target_sq = np.array([[2.0], [1.0], [0.25]])
    >>> push, pair_w, target_w, n_active, _ = push_terms(
    ...     Z, indptr, cols, target_sq, mu=0.5, squared=False)
    >>> float(push), pair_w.tolist(), target_w[0].tolist(), n_active
    (0.75, [-0.5], [0.5], 1)
    """
    Z = check_array(Z, "Z")
    n_samples = Z.shape[0]
    target_sq = np.ascontiguousarray(target_sq, dtype=np.float64)
    n_candidates = cols.shape[0]
    pair_sq = np.empty(n_candidates, dtype=np.float64)
    pair_weights = np.empty(n_candidates, dtype=np.float64)
    target_weights = np.empty(target_sq.shape, dtype=np.float64)
    row_push = np.empty(n_samples, dtype=np.float64)
    row_active = np.empty(n_samples, dtype=np.intp)
    run_on_row_ranges(
        _push_kernel,
        n_samples,
        Z,
        indptr,
        cols,
        target_sq,
        float(mu),
        bool(squared),
        pair_sq,
        pair_weights,
        target_weights,
        row_push,
        row_active,
    )
    return (
        float(row_push.sum()),
        pair_weights,
        target_weights,
        int(row_active.sum()),
        pair_sq,
    )
