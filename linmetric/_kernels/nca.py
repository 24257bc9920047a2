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
- :func:`candidate_search` (cache-sized tiles of rows and columns, each
  one GEMM, then one pass that forms the tile's distances, counts per
  chunk of columns those below each row's current ``m``-th smallest, and
  sends those to the row's buffer, cut back to its ``m`` smallest when
  full) selects each point's ``m`` nearest points (any class) and measures
  the softmax mass that the others carry;
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
import threading

import numpy as np

from .._threads import MIN_ROWS_PER_THREAD, kernel_threads, limit_threads
from ._chunking import get_working_memory, rows_per_chunk, run_on_row_ranges, run_tasks
from ._config import jit
from .distances import error_factor, exact_sq_distance, row_norms_sq

# exp(-_SKIP_EXPONENT) ~ 2e-22: terms this far past the row's nearest point
# are below float64 resolution relative to it and are not evaluated.
_SKIP_EXPONENT = 50.0
# One tile of the candidate search: at most this many rows and columns, so
# that its product stays in cache between the GEMM and the selection, and
# each single-threaded GEMM is large enough to run near the core's peak.
_TILE_ROWS = 256
_TILE_COLS = 4096
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
def _compact(values, indices, count, m, scratch, scratch_index):
    # Keep the m smallest of values[:count] by (value, index), in their
    # order; return m and the largest kept value.
    scratch[:count] = values[:count]
    kth = np.partition(scratch[:count], m - 1)[m - 1]
    room_at_kth = m
    n_ties = 0
    for q in range(count):
        if values[q] < kth:
            room_at_kth -= 1
        elif values[q] == kth:
            scratch_index[n_ties] = indices[q]
            n_ties += 1
    # ties at kth: the room_at_kth smallest indices (indices are distinct)
    last_index = np.iinfo(np.intp).max
    if n_ties > room_at_kth:
        last_index = np.partition(scratch_index[:n_ties], room_at_kth - 1)[
            room_at_kth - 1
        ]
    kept = 0
    for q in range(count):
        value = values[q]
        if value < kth or (value == kth and indices[q] <= last_index):
            values[kept] = value
            indices[kept] = indices[q]
            kept += 1
    return kept, kth


@jit
def _prior_bound_kernel(start, stop, Z, sq_norms, prior, factor, threshold):
    # An upper bound of the distance (as the GEMM-based pass computes it) of
    # row i to each of its m prior points, so of its m-th nearest: the
    # exact distance plus the bound on the GEMM's rounding.
    for i in range(start, stop):
        bound = -np.inf
        for c in range(prior.shape[1]):
            j = prior[i, c]
            value = exact_sq_distance(Z, i, Z, j) + factor * (sq_norms[i] + sq_norms[j])
            bound = max(bound, value)
        # NaN (non-finite data): no bound
        threshold[i] = bound if bound == bound else np.inf


@jit
def _search_tile_kernel(
    gram,
    sq_norms,
    row_start,
    col_start,
    m,
    mass_stride,
    labels,
    threshold,
    count,
    buffer,
    buffer_index,
    nearest,
    total,
    same,
    scratch,
    scratch_index,
    sq_dist,
):
    # gram[r, c] = z_i . z_j for i = row_start + r, j = col_start + c. Row
    # r's state carries over from tile to tile: its selection buffer
    # (buffer[r, :count[r]], the candidates so far, with all of the m
    # nearest by (distance, index) among the columns seen so far) and the
    # threshold under which a point may belong to them; for measured rows,
    # the smallest distance so far and the softmax sums relative to it.
    with_labels = labels.shape[0] > 0
    n_rows, n_cols = gram.shape
    capacity = buffer.shape[1]
    for r in range(n_rows):
        i = row_start + r
        norm_i = sq_norms[i]
        for c in range(n_cols):
            value = norm_i + sq_norms[col_start + c] - 2.0 * np.float64(gram[r, c])
            sq_dist[c] = value if value == value else np.inf  # NaN ranks last
        if col_start <= i < col_start + n_cols:
            # NaN fails every test below: the point itself never enters
            sq_dist[i - col_start] = np.nan
        # Selection: the points at or below the threshold go to the buffer;
        # a full buffer is cut back to its m smallest, which lowers the
        # threshold. A chunk of columns with none below costs one
        # vectorised count.
        limit = threshold[r]
        n_found = count[r]
        for chunk in range(0, n_cols, _SELECT_CHUNK):
            chunk_stop = min(chunk + _SELECT_CHUNK, n_cols)
            hits = 0
            for c in range(chunk, chunk_stop):
                hits += sq_dist[c] <= limit
            if hits == 0:
                continue
            for c in range(chunk, chunk_stop):
                if sq_dist[c] <= limit:
                    buffer[r, n_found] = sq_dist[c]
                    buffer_index[r, n_found] = col_start + c
                    n_found += 1
                    if n_found == capacity:
                        n_found, limit = _compact(
                            buffer[r],
                            buffer_index[r],
                            n_found,
                            m,
                            scratch,
                            scratch_index,
                        )
        threshold[r] = limit
        count[r] = n_found
        if i % mass_stride != 0:
            continue
        # Softmax sums relative to the smallest distance so far, rescaled
        # when a tile holds a nearer point (at the end: to the nearest).
        m0 = np.inf
        m1 = np.inf
        m2 = np.inf
        m3 = np.inf
        c = 0
        while c + 4 <= n_cols:
            # (written so that NaN never wins)
            m0 = sq_dist[c] if sq_dist[c] < m0 else m0
            m1 = sq_dist[c + 1] if sq_dist[c + 1] < m1 else m1
            m2 = sq_dist[c + 2] if sq_dist[c + 2] < m2 else m2
            m3 = sq_dist[c + 3] if sq_dist[c + 3] < m3 else m3
            c += 4
        while c < n_cols:
            m0 = sq_dist[c] if sq_dist[c] < m0 else m0
            c += 1
        tile_nearest = min(min(m0, m1), min(m2, m3))
        reference = nearest[r]
        row_total = total[r]
        row_same = same[r]
        if tile_nearest < reference:
            if row_total > 0.0:
                factor = math.exp(-(reference - tile_nearest))
                row_total *= factor
                row_same *= factor
            reference = tile_nearest
            nearest[r] = reference
        label = labels[i] if with_labels else 0
        for c in range(n_cols):
            shifted = sq_dist[c] - reference  # NaN for i itself
            if shifted < _SKIP_EXPONENT:
                weight = math.exp(-shifted)
                row_total += weight
                if with_labels and labels[col_start + c] == label:
                    row_same += weight
        total[r] = row_total
        same[r] = row_same


@jit
def _search_finish_kernel(
    row_start,
    m,
    n_kept,
    mass_stride,
    with_labels,
    count,
    buffer,
    buffer_index,
    nearest,
    total,
    same,
    scratch,
    scratch_index,
    out_index,
    out_dropped,
    out_p_correct,
):
    # The m nearest of each row of a block, nearest first with ties by
    # index, and the mass of the measured rows outside the n_kept nearest.
    # Returns False, having written nothing, if a row found fewer than m
    # (a prior bound below the computed distances, as when the product
    # overflows).
    for r in range(count.shape[0]):
        if count[r] < m:
            return False
    best = np.empty(m, dtype=np.float64)
    best_index = np.empty(m, dtype=np.intp)
    for r in range(count.shape[0]):
        i = row_start + r
        n_found = count[r]
        if n_found > m:
            n_found, _ = _compact(
                buffer[r], buffer_index[r], n_found, m, scratch, scratch_index
            )
        order = np.argsort(buffer[r, :n_found], kind="mergesort")
        for c in range(m):
            value = buffer[r, order[c]]
            index = buffer_index[r, order[c]]
            # insertion by index among equal distances (the buffer is not
            # in index order: tiles are visited out of order)
            q = c
            while q > 0 and best[q - 1] == value and best_index[q - 1] > index:
                best[q] = best[q - 1]
                best_index[q] = best_index[q - 1]
                q -= 1
            best[q] = value
            best_index[q] = index
        for c in range(m):
            out_index[i, c] = best_index[c]
        if i % mass_stride != 0:
            out_dropped[i] = np.nan
            if with_labels:
                out_p_correct[i] = np.nan
            continue
        # nearest[r] == best[0]: the sums are relative to the nearest
        reference = nearest[r]
        kept = 0.0
        for c in range(n_kept):
            kept += math.exp(-(best[c] - reference))
        dropped = (total[r] - kept) / total[r]
        out_dropped[i] = dropped if dropped > 0.0 else 0.0
        if with_labels:
            out_p_correct[i] = same[r] / total[r]
    return True


def _search_tile_shape(n_samples, itemsize, capacity, working_memory, n_threads):
    """Rows and columns of the tiles of one thread: cache-sized, and the
    tiles and selection buffers of all threads within ``working_memory``."""
    budget = get_working_memory(working_memory) * 2**20 / n_threads
    n_cols = max(1, min(n_samples, _TILE_COLS, int(budget // (2 * itemsize))))
    # per row: its product and its buffer (distance, index and scratch)
    row_bytes = n_cols * itemsize + capacity * 16
    n_rows = max(1, min(n_samples, _TILE_ROWS, int(budget // row_bytes)))
    return n_rows, n_cols


class _TiledCandidateSearch:
    """The row blocks of a candidate search, taken in turn by threads.

    A block's rows meet the columns tile by tile: one single-threaded GEMM
    per tile, its selection and softmax sums right after, on the product
    still in cache. The tile holding the block's own rows comes first: as
    the points are sorted by class, it holds near points of the same class,
    which lower the selection's threshold from the start. The order of the
    tiles of a block is fixed, so the result does not depend on which
    thread ran which block.
    """

    def __init__(self, Z, sq_norms, m, n_kept, mass_stride, labels, threshold):
        self.Z, self.sq_norms = Z, sq_norms
        self.m, self.n_kept, self.mass_stride = m, n_kept, mass_stride
        self.labels, self.threshold = labels, threshold
        self.lock = threading.Lock()
        self.next_block = 0

    def _take(self):
        with self.lock:
            block = self.next_block
            self.next_block += 1
        return block

    def work(self, n_rows, n_cols, capacity, out_index, out_dropped, out_p_correct):
        Z, m = self.Z, self.m
        n_samples = Z.shape[0]
        product = np.empty(n_rows * n_cols, dtype=Z.dtype)
        count = np.empty(n_rows, dtype=np.intp)
        threshold = np.empty(n_rows, dtype=np.float64)
        buffer = np.empty((n_rows, capacity), dtype=np.float64)
        buffer_index = np.empty((n_rows, capacity), dtype=np.intp)
        nearest = np.empty(n_rows, dtype=np.float64)
        total = np.empty(n_rows, dtype=np.float64)
        same = np.empty(n_rows, dtype=np.float64)
        scratch = np.empty(capacity, dtype=np.float64)
        scratch_index = np.empty(capacity, dtype=np.intp)
        sq_dist = np.empty(n_cols, dtype=np.float64)
        col_starts = list(range(0, n_samples, n_cols))
        block = self._take()
        bounded = True
        while (start := block * n_rows) < n_samples:
            stop = min(start + n_rows, n_samples)
            size = stop - start
            count[:size] = 0
            threshold[:size] = self.threshold[start:stop] if bounded else np.inf
            nearest[:size] = np.inf
            total[:size] = 0.0
            same[:size] = 0.0
            own = (start + size // 2) // n_cols
            for tile in [own, *range(own), *range(own + 1, len(col_starts))]:
                col_start = col_starts[tile]
                col_stop = min(col_start + n_cols, n_samples)
                gram = product[: size * (col_stop - col_start)].reshape(size, -1)
                np.matmul(Z[start:stop], Z[col_start:col_stop].T, out=gram)
                _search_tile_kernel(
                    gram,
                    self.sq_norms,
                    start,
                    col_start,
                    m,
                    self.mass_stride,
                    self.labels,
                    threshold[:size],
                    count[:size],
                    buffer[:size],
                    buffer_index[:size],
                    nearest[:size],
                    total[:size],
                    same[:size],
                    scratch,
                    scratch_index,
                    sq_dist,
                )
            found = _search_finish_kernel(
                start,
                m,
                self.n_kept,
                self.mass_stride,
                self.labels.shape[0] > 0,
                count[:size],
                buffer[:size],
                buffer_index[:size],
                nearest[:size],
                total[:size],
                same[:size],
                scratch,
                scratch_index,
                out_index,
                out_dropped,
                out_p_correct,
            )
            # the next block; or, if the bound failed, this one without it
            bounded = found
            if found:
                block = self._take()


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

    Blocks of rows meet the columns in cache-sized tiles: one GEMM per tile
    (``Z[rows] @ Z[cols].T``, in ``Z``'s dtype), then one numba pass over
    the product still in cache that forms the squared distances
    ``||z_i||^2 + ||z_j||^2 - 2 z_i . z_j`` in float64, sends those at or
    below the row's current threshold to its selection buffer and adds the
    softmax terms of the measured rows. The nearest are kept with ties in
    index order; NaN distances rank last. The blocks are shared among
    threads, each running its own GEMMs with single-threaded BLAS (with
    small tiles, BLAS's own threads would spend more time synchronising
    than computing); the result does not depend on the number of threads.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components), float32 or float64
        Projected points.
    n_candidates : int
        How many to select, below ``n_samples``.
    working_memory : float, optional
        Budget in MiB for the tiles and selection buffers of all threads
        together; None means ``sklearn.get_config()['working_memory']``.
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
        ``n_candidates`` (exact, plus the bound on the GEMM's rounding)
        bounds the selection from the start, so that few points enter its
        buffer. The result does not depend on it.

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
    Z = np.ascontiguousarray(Z)
    sq_norms = row_norms_sq(Z)
    candidates = np.empty((n_samples, n_candidates), dtype=np.intp)
    dropped = np.empty(n_samples, dtype=np.float64)
    if n_kept is None:
        n_kept = n_candidates
    if labels is None or p_correct is None:
        labels = np.empty(0, dtype=np.intp)
        p_correct = np.empty(0, dtype=np.float64)
    threshold = np.full(n_samples, np.inf)
    if prior is not None:
        prior = np.ascontiguousarray(prior[:, :n_candidates], dtype=np.intp)
        if prior.shape != (n_samples, n_candidates):
            raise ValueError(
                f"prior has shape {prior.shape}; it needs {n_samples} rows of at "
                f"least n_candidates={n_candidates} points."
            )
        run_on_row_ranges(
            _prior_bound_kernel,
            n_samples,
            Z,
            sq_norms,
            prior,
            error_factor(Z.dtype, Z.shape[1]),
            threshold,
            row_work=n_candidates * Z.shape[1],
        )
    # a buffer cut back to its m smallest when full: a point enters it about
    # m log(n / m) times per row, whatever the order of the points
    capacity = min(4 * n_candidates + 64, n_samples)
    n_threads = kernel_threads(n_samples, MIN_ROWS_PER_THREAD)
    n_rows, n_cols = _search_tile_shape(
        n_samples, Z.itemsize, capacity, working_memory, n_threads
    )
    n_threads = min(n_threads, -(-n_samples // n_rows))
    search = _TiledCandidateSearch(
        Z, sq_norms, n_candidates, n_kept, mass_stride, labels, threshold
    )
    task = (search.work, n_rows, n_cols, capacity, candidates, dropped, p_correct)
    # Each thread runs its own GEMMs: BLAS threads would only compete.
    with limit_threads(blas=1):
        run_tasks([task] * n_threads)
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
    chosen = np.empty(m, dtype=np.intp)
    chosen_dist = np.empty(m, dtype=np.float64)
    for i in range(start, stop):
        for c in range(n_pool):
            value = exact_sq_distance(Z, i, Z, pool[i, c])
            sq_dist[c] = value if value == value else np.inf  # NaN ranks last
        # the m smallest by (distance, position in the pool): those below
        # the m-th smallest, then the first ones equal to it ...
        scratch[:] = sq_dist
        kth = np.partition(scratch, m - 1)[m - 1]
        room_at_kth = m
        for c in range(n_pool):
            if sq_dist[c] < kth:
                room_at_kth -= 1
        n_chosen = 0
        for c in range(n_pool):
            value = sq_dist[c]
            if value < kth or (value == kth and room_at_kth > 0):
                if value == kth:
                    room_at_kth -= 1
                chosen[n_chosen] = c
                chosen_dist[n_chosen] = value
                n_chosen += 1
        # ... then sorted, ties in pool order (a stable sort)
        order = np.argsort(chosen_dist, kind="mergesort")
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
    flat = candidates.ravel()
    positions = np.argsort(flat, kind="stable").astype(np.intp, copy=False)
    indptr = np.zeros(n_samples + 1, dtype=np.intp)
    np.cumsum(np.bincount(flat, minlength=n_samples), out=indptr[1:])
    return indptr, positions


@jit
def _scatter_kernel(start, stop, Z, indptr, positions, m, flat_weights, S):
    n_components = Z.shape[1]
    for j in range(start, stop):
        for q in range(indptr[j], indptr[j + 1]):
            position = positions[q]
            i = position // m
            w = flat_weights[position]
            for k in range(n_components):
                S[j, k] += w * (np.float64(Z[j, k]) - np.float64(Z[i, k]))


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
