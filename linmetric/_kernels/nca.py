"""Soft-neighbour kernels of Neighbourhood Components Analysis.

With ``z_i = L x_i``, point ``i`` picks ``j != i`` as its neighbour with
probability ``p_ij = exp(-d_ij) / sum_{k != i} exp(-d_ik)``, where
``d_ij = ||z_i - z_j||^2``; ``p_i = sum_{j in C_i} p_ij`` sums over ``i``'s
own class. NCA's gradient needs the weights ``W_ij = p_ij (1[y_i = y_j] -
p_i)``, whose rows sum to zero. The loss ``-sum_i p_i`` and its gradient
are then

    grad = 2 S^T X,   S = (D - W - W^T) Z,   D = diag(column sums of W),

which the callers build block by block: ``S[rows] -= W_rows Z`` and
``S -= W_rows^T Z[rows]`` (two GEMMs per block), ``S += D Z`` at the end.

- :func:`soft_neighbor_weights` turns a block of inner products ``Z_rows
  Z^T`` (one GEMM) into ``W`` in one fused pass (distances, then a stable
  log-sum-exp per row): distances are shifted by the row's smallest
  before ``exp``, so no row underflows to ``0 / 0``; terms more than 50
  units beyond the nearest (below ``2e-22`` of its weight, under float64
  resolution of the sum) are set to zero without calling ``exp``.
- :func:`candidate_search` (one GEMM per block of rows, then one pass
  that forms a row's distances, counts per chunk of columns those below
  a bound on the ``m``-th smallest (from a prior candidate set, or from
  the columns around the row), and sends those to a buffer cut back to
  its ``m`` smallest when full) selects each point's ``m`` nearest points
  (any class) and measures the softmax mass that the others carry;
  :func:`reselect_candidates` picks the nearest among a smaller pool of
  points.
- :func:`truncated_soft_neighbors` and :func:`scatter_truncated_gradient`
  compute the same quantities with each softmax restricted to given
  candidate sets, in ``O(n m n_components)``.
- :func:`scale_losses` evaluates the loss of ``sqrt(t) L`` on a grid of
  ``t`` from one GEMM, to choose the scale of the starting map.

All sums (softmax denominators, ``p_i``, column sums, ``S``) accumulate in
float64; stored blocks keep the caller's dtype, except the weights ``W``,
which may be stored in float32 for the GEMMs they feed.
"""

import math

import numpy as np

from .._threads import kernel_threads, limit_threads
from ._chunking import rows_per_chunk, run_on_row_ranges, run_tasks
from ._config import jit
from .distances import exact_sq_distance, row_norms_sq

# exp(-_SKIP_EXPONENT) ~ 2e-22: terms this far past the row's nearest point
# are below float64 resolution relative to it and are not evaluated.
_SKIP_EXPONENT = 50.0
# Rows per GEMM block of the candidate search (at most; the budget may lower
# it): large enough for an efficient GEMM, small enough to stay near cache.
_SEARCH_BLOCK_ROWS = 256
# Columns per chunk of the selection's vectorised count.
_SELECT_CHUNK = 64


@jit
def _soft_neighbor_kernel(
    start, stop, gram, sq_norms, labels, row_offset, p_correct, out
):
    # gram[r, j] = z_i . z_j for i = row_offset + r; out[r, j] receives W_ij.
    # out may be gram itself: each entry is read before it is written.
    n_cols = gram.shape[1]
    col_sums = np.zeros(n_cols, dtype=np.float64)
    sq_dist = np.empty(n_cols, dtype=np.float64)
    for r in range(start, stop):
        i = row_offset + r
        label = labels[i]
        norm_i = sq_norms[i]
        for j in range(n_cols):
            value = norm_i + sq_norms[j] - 2.0 * np.float64(gram[r, j])
            # clamp the expansion's rounding below 0; NaN stays NaN
            sq_dist[j] = 0.0 if value < 0.0 else value
        sq_dist[i] = np.inf  # a point never picks itself
        # The row's smallest distance, with four independent running minima
        # (a single one would be a serial chain).
        m0 = np.inf
        m1 = np.inf
        m2 = np.inf
        m3 = np.inf
        j = 0
        while j + 4 <= n_cols:
            m0 = min(m0, sq_dist[j])
            m1 = min(m1, sq_dist[j + 1])
            m2 = min(m2, sq_dist[j + 2])
            m3 = min(m3, sq_dist[j + 3])
            j += 4
        while j < n_cols:
            m0 = min(m0, sq_dist[j])
            j += 1
        nearest = min(min(m0, m1), min(m2, m3))
        limit = nearest + _SKIP_EXPONENT
        total = 0.0
        same = 0.0
        for j in range(n_cols):
            if sq_dist[j] < limit:
                weight = math.exp(nearest - sq_dist[j])
                sq_dist[j] = weight
                total += weight
                if labels[j] == label:
                    same += weight
            else:
                sq_dist[j] = 0.0
        p_i = same / total
        p_correct[r] = p_i
        # W_ij = p_ij (1 - p_i) in i's class, -p_ij p_i outside it
        same_factor = (1.0 - p_i) / total
        other_factor = -p_i / total
        for j in range(n_cols):
            w = sq_dist[j] * (same_factor if labels[j] == label else other_factor)
            out[r, j] = w
            col_sums[j] += w
    return col_sums


def soft_neighbor_weights(gram, sq_norms, labels, row_offset, p_correct, out=None):
    """NCA's weights for a block of rows, from their inner products.

    For each row ``i = row_offset + r`` of the block, in one pass: the
    squared distances ``d_ij = ||z_i||^2 + ||z_j||^2 - 2 z_i . z_j``
    (clamped at 0), the softmax ``p_ij = exp(-(d_ij - m_i)) / sum_{k != i}
    exp(-(d_ik - m_i))`` over ``j != i`` with ``m_i = min_{k != i} d_ik``
    (exponentials and sums in float64), ``p_i`` the sum over ``i``'s class,
    and ``W_ij = p_ij (1[y_i = y_j] - p_i)``, ``W_ii = 0``.

    Parameters
    ----------
    gram : ndarray of shape (n_rows, n_samples), float32 or float64
        ``z_i . z_j`` for the block's points ``i`` and all points ``j`` (one
        GEMM). Its precision sets that of the distances, which ``exp`` turns
        into relative errors of ``p_ij``: float64 unless the data are float32.
    sq_norms : ndarray of shape (n_samples,), float64
        ``||z_j||^2``.
    labels : ndarray of shape (n_samples,), intp
        Class codes.
    row_offset : int
        Index of the block's first row among all points.
    p_correct : ndarray of shape (n_rows,), float64
        Receives ``p_i`` for the block's rows.
    out : ndarray of shape (n_rows, n_samples), optional
        Receives ``W``; float32 is enough (the weights feed GEMMs, where
        float32's relative precision suffices). None means ``gram`` itself.

    Returns
    -------
    col_sums : ndarray of shape (n_samples,), float64
        Column sums of ``W`` over the block's rows.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.nca import soft_neighbor_weights
    >>> Z = np.array([[0.0], [1.0], [-1.0]])
    >>> p = np.empty(3)
    >>> _ = soft_neighbor_weights(Z @ Z.T, (Z**2).ravel(), np.array([0, 0, 1]), 0, p)
    >>> p.round(3)
    array([0.5  , 0.953, 0.   ])
    """
    if out is None:
        out = gram
    partial_sums = run_on_row_ranges(
        _soft_neighbor_kernel,
        gram.shape[0],
        gram,
        sq_norms,
        labels,
        row_offset,
        p_correct,
        out,
        row_work=gram.shape[1],
    )
    return np.sum(partial_sums, axis=0)


@jit
def _compact(values, indices, count, m, scratch):
    # Keep the m smallest of values[:count] (ties: the first ones), in their
    # order; return m and the largest kept value.
    scratch[:count] = values[:count]
    kth = np.partition(scratch[:count], m - 1)[m - 1]
    room_at_kth = m
    for q in range(count):
        if values[q] < kth:
            room_at_kth -= 1
    kept = 0
    for q in range(count):
        value = values[q]
        if value < kth or (value == kth and room_at_kth > 0):
            if value == kth:
                room_at_kth -= 1
            values[kept] = value
            indices[kept] = indices[q]
            kept += 1
    return kept, kth


@jit
def _window_bound(sq_dist, i, width, m, scratch):
    # The m-th smallest of sq_dist over the width columns centred on i
    # (without i): m distinct points lie within it.
    n_cols = sq_dist.shape[0]
    first = min(max(i - width // 2, 0), n_cols - width)
    count = 0
    for j in range(first, first + width):
        if j != i:
            scratch[count] = sq_dist[j]
            count += 1
    if count < m:
        return np.inf
    return np.partition(scratch[:count], m - 1)[m - 1]


@jit
def _candidates_kernel(
    start,
    stop,
    gram,
    sq_norms,
    row_offset,
    mass_stride,
    n_kept,
    labels,
    prior,
    out_index,
    out_dropped,
    out_p_correct,
):
    # gram[r, j] = z_i . z_j for i = row_offset + r. With labels (not
    # empty), out_p_correct[r] receives the exact p_i where measured. With
    # prior (not empty), prior[r] holds m distinct points other than i.
    with_prior = prior.shape[0] > 0
    with_labels = labels.shape[0] > 0
    n_cols = gram.shape[1]
    m = out_index.shape[1]
    # Selection: the points below a threshold go to a buffer in index
    # order; a full buffer is cut back to its m smallest, which lowers the
    # threshold. The threshold starts at a bound on the m-th smallest
    # distance: the largest distance to the prior's m points, or else the
    # m-th smallest distance to the capacity columns centred on i (with the
    # points sorted by class, mostly i's own class: on MNIST a third less
    # selection time than starting from the first columns). A chunk of
    # columns with none below the threshold costs one vectorised count.
    capacity = min(4 * m + 64, n_cols)
    buffer = np.empty(capacity, dtype=np.float64)
    buffer_index = np.empty(capacity, dtype=np.intp)
    scratch = np.empty(capacity, dtype=np.float64)
    sq_dist = np.empty(n_cols, dtype=np.float64)
    best = np.empty(m, dtype=np.float64)
    for r in range(start, stop):
        i = row_offset + r
        norm_i = sq_norms[i]
        for j in range(n_cols):
            value = norm_i + sq_norms[j] - 2.0 * np.float64(gram[r, j])
            sq_dist[j] = value if value == value else np.inf  # NaN ranks last
        sq_dist[i] = np.inf  # and the point itself never enters below
        count = 0
        first = 0
        # m distinct points all within the bound: the m nearest are too.
        if with_prior:
            bound = -np.inf
            for c in range(m):
                bound = max(bound, sq_dist[prior[r, c]])
        else:
            # The m-th smallest distance to the columns around i (its own
            # class when the points are sorted by class) bounds it as well.
            bound = _window_bound(sq_dist, i, capacity, m, scratch)
        if bound < np.inf:
            threshold = np.nextafter(bound, np.inf)  # the bound itself enters
        else:
            for j in range(capacity):
                if j != i:
                    buffer[count] = sq_dist[j]
                    buffer_index[count] = j
                    count += 1
            first = capacity
            threshold = np.inf
            if count > m:
                count, threshold = _compact(buffer, buffer_index, count, m, scratch)
        for chunk in range(first, n_cols, _SELECT_CHUNK):
            chunk_stop = min(chunk + _SELECT_CHUNK, n_cols)
            hits = 0
            for j in range(chunk, chunk_stop):
                hits += sq_dist[j] < threshold
            if hits == 0:
                continue
            for j in range(chunk, chunk_stop):
                if sq_dist[j] < threshold:
                    buffer[count] = sq_dist[j]
                    buffer_index[count] = j
                    count += 1
                    if count == capacity:
                        count, threshold = _compact(
                            buffer, buffer_index, count, m, scratch
                        )
        if count > m:
            count, threshold = _compact(buffer, buffer_index, count, m, scratch)
        # the buffer is in index order: a stable sort breaks ties by index
        order = np.argsort(buffer[:count], kind="mergesort")
        for c in range(m):
            best[c] = buffer[order[c]]
            out_index[r, c] = buffer_index[order[c]]
        if i % mass_stride != 0:
            out_dropped[r] = np.nan
            if with_labels:
                out_p_correct[r] = np.nan
            continue
        nearest = best[0]
        kept = 0.0
        for c in range(n_kept):
            kept += math.exp(-(best[c] - nearest))
        total = 0.0
        same = 0.0
        for j in range(n_cols):
            shifted = sq_dist[j] - nearest  # inf for i itself
            if shifted < _SKIP_EXPONENT:
                weight = math.exp(-shifted)
                total += weight
                if with_labels and labels[j] == labels[i]:
                    same += weight
        dropped = (total - kept) / total
        out_dropped[r] = dropped if dropped > 0.0 else 0.0
        if with_labels:
            out_p_correct[r] = same / total


def candidate_search(
    Z,
    n_candidates,
    *,
    working_memory=None,
    mass_stride=1,
    n_kept=None,
    labels=None,
    p_correct=None,
    prior=None,
):
    """Each point's nearest points among all, and the softmax mass left out.

    Blocks of rows go through one GEMM (``Z[rows] @ Z.T``, in ``Z``'s dtype)
    and one numba pass that forms each row's squared distances
    ``||z_i||^2 + ||z_j||^2 - 2 z_i . z_j`` in float64 and keeps the nearest
    (ties in index order; NaN distances rank last). The blocks are shared among threads,
    each running its own GEMMs with single-threaded BLAS: with small blocks,
    BLAS's own threads spend more time synchronising than computing, the
    more so on a busy machine.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components), float32 or float64
        Projected points.
    n_candidates : int
        How many to select, below ``n_samples``.
    working_memory : float, optional
        Budget in MiB for the blocks of all threads together; None means
        ``sklearn.get_config()['working_memory']``.
    mass_stride : int, default=1
        The dropped mass is measured on the points whose index is a
        multiple of ``mass_stride`` (the selection is cheap, the mass needs
        an ``exp`` per pair).
    n_kept : int, optional
        How many of the selected points the mass counts as kept; None means
        ``n_candidates``.
    labels : ndarray of shape (n_samples,), intp, optional
        Class codes; with them, ``p_correct`` receives the exact ``p_i``
        (the softmax over all points) of the measured points.
    p_correct : ndarray of shape (n_samples,), float64, optional
        Receives ``p_i`` where measured, NaN elsewhere; needs ``labels``.
    prior : ndarray of shape (n_samples, k), intp, optional
        For each point, at least ``n_candidates`` distinct other points
        (the previous search's, say): the largest distance to its first
        ``n_candidates`` bounds the selection from the start, so that few
        points enter its buffer. The result does not depend on it.

    Returns
    -------
    candidates : ndarray of shape (n_samples, n_candidates), intp
        Nearest first.
    dropped_mass : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.nca import candidate_search
    >>> Z = np.array([[0.0], [1.0], [3.0], [7.0]])
    >>> candidates, dropped = candidate_search(Z, 2)
    >>> candidates.tolist()
    [[1, 2], [0, 2], [1, 0], [2, 1]]
    """
    n_samples = Z.shape[0]
    Z_T = np.ascontiguousarray(Z.T)
    sq_norms = row_norms_sq(Z)
    candidates = np.empty((n_samples, n_candidates), dtype=np.intp)
    dropped = np.empty(n_samples, dtype=np.float64)
    if n_kept is None:
        n_kept = n_candidates
    if labels is None or p_correct is None:
        labels = np.empty(0, dtype=np.intp)
        p_correct = np.empty(0, dtype=np.float64)
    if prior is None:
        prior = np.empty((0, 0), dtype=np.intp)
    else:
        prior = np.ascontiguousarray(prior[:, :n_candidates], dtype=np.intp)
        if prior.shape != (n_samples, n_candidates):
            raise ValueError(
                f"prior has shape {prior.shape}; it needs {n_samples} rows of at "
                f"least n_candidates={n_candidates} points."
            )
    n_threads = kernel_threads()
    n_rows = rows_per_chunk(
        n_samples * Z.itemsize * n_threads,
        working_memory,
        max_rows=min(_SEARCH_BLOCK_ROWS, -(-n_samples // n_threads)),
    )
    starts = list(range(0, n_samples, n_rows))

    def search(task_starts):
        gram = np.empty((n_rows, n_samples), dtype=Z.dtype)
        for start in task_starts:
            stop = min(start + n_rows, n_samples)
            block = np.matmul(Z[start:stop], Z_T, out=gram[: stop - start])
            _candidates_kernel(
                0,
                stop - start,
                block,
                sq_norms,
                start,
                mass_stride,
                n_kept,
                labels,
                prior[start:stop] if prior.shape[0] else prior,
                candidates[start:stop],
                dropped[start:stop],
                p_correct[start:stop],
            )

    # Each thread runs its own GEMMs: BLAS threads would only compete.
    with limit_threads(blas=1):
        run_tasks([(search, starts[t::n_threads]) for t in range(n_threads)])
    return candidates, dropped


@jit
def _scale_loss_kernel(gram, sq_norms, labels, rows, scales, loss):
    # gram[r, j] = z_i . z_j for i = rows[r]; adds -p_i of sqrt(t) L at every
    # t = scales[s] to loss[s]. Terms more than _SKIP_EXPONENT past the
    # row's nearest at that scale are not evaluated.
    n_cols = gram.shape[1]
    n_scales = scales.shape[0]
    sq_dist = np.empty(n_cols, dtype=np.float64)
    for r in range(gram.shape[0]):
        i = rows[r]
        label = labels[i]
        nearest = np.inf
        for j in range(n_cols):
            value = sq_norms[i] + sq_norms[j] - 2.0 * np.float64(gram[r, j])
            value = 0.0 if value < 0.0 else value
            if j == i:
                value = np.inf
            elif value < nearest:
                nearest = value
            sq_dist[j] = value
        for s in range(n_scales):
            t = scales[s]
            limit = _SKIP_EXPONENT / t
            total = 0.0
            same = 0.0
            for j in range(n_cols):
                shifted = sq_dist[j] - nearest
                if shifted < limit:
                    weight = math.exp(-t * shifted)
                    total += weight
                    if labels[j] == label:
                        same += weight
            loss[s] -= same / total


def scale_losses(Z, labels, rows, scales, *, working_memory=None):
    """NCA's loss of ``sqrt(t) L`` at many scales ``t``, on some rows.

    Point ``i``'s term ``-p_i`` of the loss depends on ``L`` only through
    its squared distances ``d_ij``, which ``sqrt(t) L`` multiplies by
    ``t``: one GEMM gives them, and the softmax is then re-weighted at
    every ``t`` (exponentials and sums in float64).

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components), float32 or float64
        Projected points ``L x_i``.
    labels : ndarray of shape (n_samples,), intp
    rows : ndarray of shape (n_rows,), intp
        The points whose terms are summed.
    scales : ndarray of shape (n_scales,), float64
        Positive factors ``t`` of the squared distances.
    working_memory : float, optional
        Budget in MiB for one block of inner products.

    Returns
    -------
    loss : ndarray of shape (n_scales,), float64
        ``-sum_{i in rows} p_i`` at each scale.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.nca import scale_losses
    >>> Z = np.array([[0.0], [1.0], [3.0]])
    >>> rows = np.arange(3)
    >>> scale_losses(Z, np.array([0, 0, 1]), rows, np.array([1e-9, 1e3])).round(3)
    array([-1., -2.])
    """
    n_samples = Z.shape[0]
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    scales = np.ascontiguousarray(scales, dtype=np.float64)
    sq_norms = row_norms_sq(Z)
    Z_T = np.ascontiguousarray(Z.T)
    loss = np.zeros(scales.shape[0], dtype=np.float64)
    n_rows = rows_per_chunk(
        n_samples * Z.itemsize, working_memory, max_rows=max(rows.shape[0], 1)
    )
    for start in range(0, rows.shape[0], n_rows):
        block_rows = rows[start : start + n_rows]
        gram = Z[block_rows] @ Z_T
        _scale_loss_kernel(gram, sq_norms, labels, block_rows, scales, loss)
    return loss


@jit
def _reselect_kernel(start, stop, Z, pool, out_candidates):
    m = out_candidates.shape[1]
    n_pool = pool.shape[1]
    sq_dist = np.empty(n_pool, dtype=np.float64)
    scratch = np.empty(n_pool, dtype=np.float64)
    chosen = np.empty(n_pool, dtype=np.intp)
    for i in range(start, stop):
        for c in range(n_pool):
            value = exact_sq_distance(Z, i, Z, pool[i, c])
            sq_dist[c] = value if value == value else np.inf  # NaN ranks last
            chosen[c] = c
        # the m smallest by (distance, position in the pool), in pool order ...
        _compact(sq_dist, chosen, n_pool, m, scratch)
        # ... then sorted, ties in pool order (a stable sort)
        order = np.argsort(sq_dist[:m], kind="mergesort")
        for c in range(m):
            out_candidates[i, c] = pool[i, chosen[order[c]]]


def reselect_candidates(Z, pool, out_candidates):
    """Each point's nearest points among its pool, by exact distances.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components)
        Projected points.
    pool : ndarray of shape (n_samples, p), intp
        Distinct points to choose from (never the point itself).
    out_candidates : ndarray of shape (n_samples, m), intp
        Receives the ``m <= p`` nearest members of each pool, nearest first
        (distances summed in float64; ties keep the pool's order).

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.nca import reselect_candidates
    >>> Z = np.array([[0.0], [1.0], [3.0]])
    >>> out = np.empty((3, 1), dtype=np.intp)
    >>> reselect_candidates(Z, np.array([[2, 1], [2, 0], [0, 1]]), out)
    >>> out.ravel().tolist()
    [1, 0, 1]
    """
    run_on_row_ranges(
        _reselect_kernel,
        Z.shape[0],
        Z,
        pool,
        out_candidates,
        row_work=pool.shape[1] * (Z.shape[1] + 8),  # distances, then a sort
    )


@jit
def _truncated_kernel(start, stop, Z, candidates, labels, weights, p_correct, S):
    m = candidates.shape[1]
    n_components = Z.shape[1]
    sq_dist = np.empty(m, dtype=np.float64)
    for i in range(start, stop):
        nearest = np.inf
        for c in range(m):
            value = exact_sq_distance(Z, i, Z, candidates[i, c])
            sq_dist[c] = value
            if value < nearest:
                nearest = value
        total = 0.0
        same = 0.0
        for c in range(m):
            weight = math.exp(-(sq_dist[c] - nearest))
            sq_dist[c] = weight
            total += weight
            if labels[candidates[i, c]] == labels[i]:
                same += weight
        p_i = same / total
        p_correct[i] = p_i
        for k in range(n_components):
            S[i, k] = 0.0
        for c in range(m):
            j = candidates[i, c]
            p_ij = sq_dist[c] / total
            if labels[j] == labels[i]:
                w = p_ij * (1.0 - p_i)
            else:
                w = -p_ij * p_i
            weights[i, c] = w
            # S_i = -sum_j W_ij z_j (the row part of (D - W - W^T) Z)
            for k in range(n_components):
                S[i, k] -= w * Z[j, k]


def truncated_soft_neighbors(Z, candidates, labels, weights, p_correct, S):
    """NCA's soft neighbours with each softmax restricted to candidate sets.

    For each point ``i``: ``p_ij`` is the softmax of ``-||z_i - z_j||^2``
    over ``j`` in ``candidates[i]`` only (distances summed exactly in
    float64, no GEMM), ``p_i`` its mass on ``i``'s class and
    ``W_ij = p_ij (1[y_i = y_j] - p_i)``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components)
        Projected points.
    candidates : ndarray of shape (n_samples, m), intp
        Distinct candidate neighbours of each point, never the point itself.
    labels : ndarray of shape (n_samples,), intp
    weights : ndarray of shape (n_samples, m), float64
        Receives ``W_ij`` for ``j = candidates[i, c]``.
    p_correct : ndarray of shape (n_samples,), float64
        Receives ``p_i``.
    S : ndarray of shape (n_samples, n_components), float64
        Receives ``-sum_j W_ij z_j``, the row part of ``(D - W - W^T) Z``;
        :func:`scatter_truncated_gradient` adds the rest.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.nca import truncated_soft_neighbors
    >>> Z = np.array([[0.0], [1.0], [3.0]])
    >>> candidates = np.array([[1], [0], [1]])
    >>> W, p, S = np.empty((3, 1)), np.empty(3), np.empty((3, 1))
    >>> truncated_soft_neighbors(Z, candidates, np.array([0, 0, 1]), W, p, S)
    >>> p.tolist()
    [1.0, 1.0, 0.0]
    """
    run_on_row_ranges(
        _truncated_kernel,
        Z.shape[0],
        Z,
        candidates,
        labels,
        weights,
        p_correct,
        S,
        row_work=2 * candidates.shape[1] * Z.shape[1],
    )


def reverse_candidates(candidates, n_samples):
    """Index the candidate pairs ``(i, c)`` by their point ``j = candidates[i, c]``.

    Parameters
    ----------
    candidates : ndarray of shape (n_samples, m), intp
    n_samples : int

    Returns
    -------
    indptr : ndarray of shape (n_samples + 1,), intp
    positions : ndarray of shape (n_samples * m,), intp
        ``positions[indptr[j]:indptr[j + 1]]`` are the flat positions
        ``i * m + c`` with ``candidates[i, c] == j``, in increasing order.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.nca import reverse_candidates
    >>> indptr, positions = reverse_candidates(np.array([[1], [0], [1]]), 3)
    >>> indptr.tolist(), positions.tolist()
    ([0, 1, 3, 3], [1, 0, 2])
    """
    flat = np.ascontiguousarray(candidates, dtype=np.intp).ravel()
    indptr = np.zeros(n_samples + 1, dtype=np.intp)
    np.cumsum(np.bincount(flat, minlength=n_samples), out=indptr[1:])
    positions = np.empty(flat.shape[0], dtype=np.intp)
    _counting_sort_kernel(flat, indptr, positions)
    return indptr, positions


@jit
def _counting_sort_kernel(flat, indptr, positions):
    # positions of each value in increasing order: a stable counting sort
    # (O(n m), where an argsort costs O(n m log(n m)))
    next_slot = indptr[:-1].copy()
    for position in range(flat.shape[0]):
        j = flat[position]
        positions[next_slot[j]] = position
        next_slot[j] += 1


@jit
def _scatter_kernel(start, stop, Z, indptr, positions, m, flat_weights, S):
    # S[j] += (sum_i W_ij) z_j - sum_i W_ij z_i, the second sum in a row
    # that stays in cache
    n_components = Z.shape[1]
    gathered = np.empty(n_components, dtype=np.float64)
    for j in range(start, stop):
        gathered[:] = 0.0
        total = 0.0
        for q in range(indptr[j], indptr[j + 1]):
            position = positions[q]
            i = position // m
            w = flat_weights[position]
            total += w
            for k in range(n_components):
                gathered[k] += w * np.float64(Z[i, k])
        for k in range(n_components):
            S[j, k] += total * np.float64(Z[j, k]) - gathered[k]


def scatter_truncated_gradient(Z, candidates, weights, S, reverse=None):
    """Add ``sum_i W_ij (z_j - z_i)`` to ``S[j]`` for every candidate pair.

    Completes ``S = (D - W - W^T) Z`` after :func:`truncated_soft_neighbors`
    (``D Z - W^T Z`` is this scatter). Each row ``j`` of ``S`` gathers its
    pairs through the reverse index, so rows split over threads without
    races, and every row sums in the same order (increasing ``i``) whatever
    the number of threads. Sums in float64.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components)
    candidates : ndarray of shape (n_samples, m), intp
    weights : ndarray of shape (n_samples, m), float64
    S : ndarray of shape (n_samples, n_components), float64
        Updated in place.
    reverse : tuple (indptr, positions), optional
        :func:`reverse_candidates` of ``candidates``, when already computed.
    """
    if reverse is None:
        reverse = reverse_candidates(candidates, Z.shape[0])
    indptr, positions = reverse
    run_on_row_ranges(
        _scatter_kernel,
        Z.shape[0],
        Z,
        indptr,
        positions,
        candidates.shape[1],
        np.ascontiguousarray(weights).ravel(),
        S,
        row_work=candidates.shape[1] * Z.shape[1],
    )
