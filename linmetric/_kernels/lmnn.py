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
from .distances import check_array, sq_distance_blocks


@jit
def _push_kernel(
    start,
    stop,
    indptr,
    pair_sq,
    target_sq,
    mu,
    squared,
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
            d = pair_sq[p]
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


def push_terms(indptr, pair_sq, target_sq, *, mu, squared):
    """Push loss and gradient weights over candidate impostor pairs.

    Parameters
    ----------
    indptr : ndarray of shape (n_samples + 1,), intp
        The candidate impostors of row ``i`` (points of another class) are
        the pairs ``indptr[i]:indptr[i + 1]``.
    pair_sq : ndarray of shape (n_candidates,), float64
        Squared distances of the candidate pairs, grouped by row.
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

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.lmnn import push_terms
    >>> indptr = np.array([0, 1, 1, 1])  # one candidate pair, of row 0
    >>> pair_sq = np.array([2.25])
    >>> target_sq = np.array([[2.0], [1.0], [0.25]])
    >>> push, pair_w, target_w, n_active = push_terms(
    ...     indptr, pair_sq, target_sq, mu=0.5, squared=False)
    >>> float(push), pair_w.tolist(), target_w[0].tolist(), n_active
    (0.75, [-0.5], [0.5], 1)
    """
    n_samples = target_sq.shape[0]
    target_sq = np.ascontiguousarray(target_sq, dtype=np.float64)
    pair_sq = np.ascontiguousarray(pair_sq, dtype=np.float64)
    n_candidates = pair_sq.shape[0]
    pair_weights = np.empty(n_candidates, dtype=np.float64)
    target_weights = np.empty(target_sq.shape, dtype=np.float64)
    row_push = np.empty(n_samples, dtype=np.float64)
    row_active = np.empty(n_samples, dtype=np.intp)
    run_on_row_ranges(
        _push_kernel,
        n_samples,
        indptr,
        pair_sq,
        target_sq,
        float(mu),
        bool(squared),
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
    )


def impostors_of_rows(Z, y, rows, radii, *, working_memory=None):
    """Impostor pairs ``(i, l)`` of a subset of rows, ``d(i, l) < radii[i]``.

    The partial counterpart of :func:`linmetric._kernels.find_impostors`,
    for refreshing the candidates of a few rows: one distance block of the
    given rows against all rows at a time.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components), float32 or float64
    y : ndarray of shape (n_samples,), int
        Class codes.
    rows : ndarray of shape (n_rows,), intp
        The rows to search, in increasing order.
    radii : ndarray of shape (n_samples,)
        Squared radius per row (only ``radii[rows]`` is read).
    working_memory : float or None
        Budget in MiB for one distance block (and its mask).

    Returns
    -------
    pair_rows, pair_cols : ndarray of shape (n_pairs,), intp
        Sorted by ``(row, col)``. Distances come from the GEMM expansion
        (see :mod:`linmetric._kernels.distances`), so pairs within its error
        bound of a radius may go either way.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.lmnn import impostors_of_rows
    >>> Z = np.array([[0.0], [1.0], [2.0], [5.0]])
    >>> y = np.array([0, 1, 0, 1])
    >>> impostors_of_rows(Z, y, np.array([1, 3]), np.full(4, 2.0))
    (array([1, 1]), array([0, 2]))
    """
    Z = check_array(Z, "Z")
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    y = np.ascontiguousarray(y, dtype=np.intp)
    radii = np.ascontiguousarray(radii, dtype=np.float64)
    found_rows, found_cols = [], []
    for start, stop, block in sq_distance_blocks(
        Z[rows], Z, working_memory=working_memory
    ):
        chunk = rows[start:stop]
        counts = np.empty(stop - start, dtype=np.intp)
        run_on_row_ranges(
            _count_inside_kernel, stop - start, block, chunk, y, radii, counts
        )
        offsets = np.zeros(stop - start + 1, dtype=np.intp)
        np.cumsum(counts, out=offsets[1:])
        pair_rows = np.empty(offsets[-1], dtype=np.intp)
        pair_cols = np.empty(offsets[-1], dtype=np.intp)
        run_on_row_ranges(
            _fill_inside_kernel,
            stop - start,
            block,
            chunk,
            y,
            radii,
            offsets,
            pair_rows,
            pair_cols,
        )
        found_rows.append(pair_rows)
        found_cols.append(pair_cols)
    if not found_rows:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    return np.concatenate(found_rows), np.concatenate(found_cols)


@jit
def _count_inside_kernel(start, stop, block, chunk, y, radii, counts):
    for ii in range(start, stop):
        i = chunk[ii]
        radius = radii[i]
        label = y[i]
        count = 0
        for l in range(block.shape[1]):
            if block[ii, l] < radius and y[l] != label:
                count += 1
        counts[ii] = count


@jit
def _fill_inside_kernel(start, stop, block, chunk, y, radii, offsets, rows, cols):
    for ii in range(start, stop):
        i = chunk[ii]
        radius = radii[i]
        label = y[i]
        position = offsets[ii]
        for l in range(block.shape[1]):
            if block[ii, l] < radius and y[l] != label:
                rows[position] = i
                cols[position] = l
                position += 1
