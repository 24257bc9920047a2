"""LMNN's per-triplet pass: the push loss and the pair weights of its gradient.

For a point ``i`` with target neighbours ``j`` (squared distances
``t_ij``) and a candidate impostor ``l`` at squared distance ``d_il``, the
triplet ``(i, j, l)`` is active when ``z = 1 + t_ij - d_il > 0``; it adds
``h(z)`` to the push loss (``h(z) = z`` or ``z^2``) and, to the gradient's
matrix ``C = sum_p w_p (x_a - x_b)(x_a - x_b)^T``, the weight ``mu h'(z)``
on the pair ``(i, j)`` and ``-mu h'(z)`` on the pair ``(i, l)``. The
candidates arrive sorted by row, so each row's triplets are handled by one
thread and no two threads write the same weight (:func:`push_terms`).

The rest serves LMNN's working set and start: :func:`impostors_of_rows`
(the impostor search for some points only), :func:`ratios_by_group` (how
much distances shrank since each point's search), :func:`scale_losses` (the
loss of the initial map at many scales at once) and :func:`lmnn_outer_sum`
(the gradient's outer-product sum straight from LMNN's arrays).
"""

import threading

import numpy as np

from .._threads import MIN_ROWS_PER_THREAD, kernel_threads, limit_threads
from ._chunking import run_on_row_ranges, run_tasks
from ._config import jit
from .distances import as_float_matrix, row_norms_sq, sq_distance_blocks
from .impostors import tile_shape


@jit
def impostor_terms(target_sq, i, d, mu, squared, target_weights):
    """The hinge terms of one impostor of point ``i`` at squared distance ``d``.

    For each target ``j`` of ``i`` the triplet is active when
    ``z = 1 + target_sq[i, j] - d > 0``; it adds ``h(z)`` (``z`` or ``z^2``
    when ``squared``) to the push loss and ``mu h'(z)`` to
    ``target_weights[i, j]`` (updated in place). Returns the push loss and
    the sum of ``h'(z)``, whose ``-mu`` multiple is the impostor pair's
    weight. Shared by every push pass (stored, streamed, multi-metric).
    """
    push = 0.0
    weight = 0.0
    for j in range(target_sq.shape[1]):
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
    return push, weight


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
                pushed, weight = impostor_terms(
                    target_sq, i, d, mu, squared, target_weights
                )
                push += pushed
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


def impostors_of_rows(Z, y, rows, radii, *, working_memory=None, max_pairs=None):
    """Impostor pairs ``(i, l)`` of a subset of rows, ``d(i, l) < radii[i]``.

    The partial counterpart of :func:`linmetric._kernels.find_impostors`,
    for refreshing the candidates of a few rows: tiles of the given rows,
    taken in turn by threads, each swept over all rows in column tiles (one
    single-threaded GEMM per tile, tested while it is in cache).

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
        Budget in MiB for the distance tiles of all threads together.
    max_pairs : int or None, default=None
        Give up, returning None, as soon as more pairs than this are found.

    Returns
    -------
    pair_rows, pair_cols : ndarray of shape (n_pairs,), intp
        Sorted by ``(row, col)``. Distances come from the GEMM expansion
        (see :mod:`linmetric._kernels.distances`), so pairs within its error
        bound of a radius may go either way. None when there are more than
        ``max_pairs``.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.lmnn import impostors_of_rows
    >>> Z = np.array([[0.0], [1.0], [2.0], [5.0]])
    >>> y = np.array([0, 1, 0, 1])
    >>> impostors_of_rows(Z, y, np.array([1, 3]), np.full(4, 2.0))
    (array([1, 1]), array([0, 2]))
    """
    Z = as_float_matrix(Z, "Z")
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    y = np.ascontiguousarray(y, dtype=np.intp)
    radii = np.ascontiguousarray(radii, dtype=np.float64)
    if rows.shape[0] == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    n_threads = kernel_threads(rows.shape[0], MIN_ROWS_PER_THREAD)
    n_tile_rows, n_tile_cols = tile_shape(
        rows.shape[0], Z.shape[0], Z.itemsize, working_memory, n_threads
    )
    search = _RowSearch(Z, y, rows, radii, n_tile_cols, max_pairs)
    tasks = [
        (search.work, start, min(start + n_tile_rows, rows.shape[0]))
        for start in range(0, rows.shape[0], n_tile_rows)
    ]
    # tasks in turn: task t goes to thread t mod n_threads
    groups = [tasks[t::n_threads] for t in range(min(n_threads, len(tasks)))]
    with limit_threads(blas=1):
        found = run_tasks([(_run_all, group) for group in groups])
    if search.over:
        return None
    by_task = [None] * len(tasks)
    for t in range(len(tasks)):
        by_task[t] = found[t % len(groups)][t // len(groups)]
    return (
        np.concatenate([pair_rows for pair_rows, _ in by_task]),
        np.concatenate([pair_cols for _, pair_cols in by_task]),
    )


def _run_all(tasks):
    return [func(*args) for func, *args in tasks]


class _RowSearch:
    """The tiles of a search for some rows: a task is a tile of rows, swept
    over the columns tile by tile (one single-threaded GEMM each)."""

    def __init__(self, Z, y, rows, radii, n_tile_cols, max_pairs):
        self.Z, self.y, self.rows = Z, y, rows
        self.Z_rows = Z[rows]
        self.row_norms = row_norms_sq(self.Z_rows)
        self.col_norms = row_norms_sq(Z)
        self.row_labels, self.row_radii = y[rows], radii[rows]
        self.n_tile_cols = n_tile_cols
        self.max_pairs = max_pairs
        self.n_found = 0
        self.over = False
        self.lock = threading.Lock()

    def work(self, start, stop):
        n_samples = self.Z.shape[0]
        block = np.empty((stop - start, min(self.n_tile_cols, n_samples)), self.Z.dtype)
        counts, pieces = [], []
        for col_start in range(0, n_samples, self.n_tile_cols):
            col_stop = min(col_start + self.n_tile_cols, n_samples)
            if self.over:
                break
            tile = block[:, : col_stop - col_start]
            np.matmul(self.Z_rows[start:stop], self.Z[col_start:col_stop].T, out=tile)
            tile_counts = np.empty(stop - start, dtype=np.intp)
            cols = _tile_hits_kernel(
                tile,
                self.row_norms[start:stop],
                self.col_norms[col_start:col_stop],
                self.row_labels[start:stop],
                self.y[col_start:col_stop],
                self.row_radii[start:stop],
                col_start,
                tile_counts,
            )
            with self.lock:
                self.n_found += cols.shape[0]
                if self.max_pairs is not None and self.n_found > self.max_pairs:
                    self.over = True
            counts.append(tile_counts)
            pieces.append(cols)
        if self.over:
            return None
        counts = np.array(counts).reshape(-1, stop - start)
        pair_cols = _interleave_kernel(np.concatenate(pieces), counts)
        pair_rows = np.repeat(self.rows[start:stop], counts.sum(axis=0))
        return pair_rows, pair_cols


@jit
def _tile_hits_kernel(
    tile, row_norms, col_norms, row_labels, labels, radii, col_start, counts
):
    # tile holds z_i . z_l on entry, the squared distances (expansion,
    # clamped at 0, in the tile's dtype) on exit. Returns the columns
    # (col_start + l) with distance < radii[i] and another label, row by row;
    # counts[i] of them for row i.
    n_rows, n_cols = tile.shape
    total = 0
    for i in range(n_rows):
        norm_i = row_norms[i]
        radius = radii[i]
        label = row_labels[i]
        count = 0
        for l in range(n_cols):
            value = norm_i + col_norms[l] - 2.0 * tile[i, l]
            if value < 0.0:
                value = 0.0
            tile[i, l] = value
            count += (tile[i, l] < radius) & (labels[l] != label)
        counts[i] = count
        total += count
    cols = np.empty(total, dtype=np.intp)
    position = 0
    for i in range(n_rows):
        if counts[i] == 0:
            continue
        radius = radii[i]
        label = row_labels[i]
        for l in range(n_cols):
            if tile[i, l] < radius and labels[l] != label:
                cols[position] = col_start + l
                position += 1
    return cols


@jit
def _interleave_kernel(pieces, counts):
    # pieces holds, tile after tile, each tile's hits row by row (counts[t, i]
    # of row i in tile t); the result holds them row by row, tiles in order.
    n_tiles, n_rows = counts.shape
    out = np.empty(pieces.shape[0], dtype=pieces.dtype)
    starts = np.empty(n_tiles, dtype=np.intp)
    position = 0
    for t in range(n_tiles):
        starts[t] = position
        for i in range(n_rows):
            position += counts[t, i]
    position = 0
    for i in range(n_rows):
        for t in range(n_tiles):
            for c in range(counts[t, i]):
                out[position] = pieces[starts[t] + c]
                position += 1
            starts[t] += counts[t, i]
    return out


@jit
def _scale_loss_kernel(others, n_others, target_sq, scales, mu, squared, loss):
    # loss[s] += the share of the rows of ``others`` (sorted distances to
    # the points of other classes, +inf after n_others[ii]) in the
    # loss of sqrt(t_s) L; see scale_losses.
    n_scales = scales.shape[0]
    sums = np.zeros(others.shape[1] + 1, dtype=np.float64)
    squares = np.zeros(others.shape[1] + 1, dtype=np.float64)
    for ii in range(others.shape[0]):
        n_row = n_others[ii]
        for l in range(n_row):
            value = np.float64(others[ii, l])
            sums[l + 1] = sums[l] + value
            squares[l + 1] = squares[l] + value * value
        for j in range(target_sq.shape[1]):
            d_target = target_sq[ii, j]
            count = n_row
            for s in range(n_scales):
                t = scales[s]
                loss[s] += (1.0 - mu) * t * d_target
                # active impostors: others < d_target + 1 / t, a bound that
                # falls as t grows (scales are increasing)
                bound = d_target + 1.0 / t
                while count > 0 and others[ii, count - 1] >= bound:
                    count -= 1
                margin = 1.0 + t * d_target
                if squared:
                    push = (
                        count * margin * margin
                        - 2.0 * margin * t * sums[count]
                        + t * t * squares[count]
                    )
                else:
                    push = count * margin - t * sums[count]
                loss[s] += mu * push


def scale_losses(Z, y, targets, sample, scales, *, mu, squared, working_memory=None):
    """The share of sampled points in the LMNN loss of ``sqrt(t) L``, per ``t``.

    With ``Z = X L^T`` the squared distances under ``c L`` are those under
    ``L`` times ``t = c^2``, and a triplet ``(i, j, l)`` is active when
    ``d(i, l) < d(i, j) + 1 / t``. For each sampled point the distances to
    the points of other classes are sorted once; their cumulative sums then
    give its exact share of the loss for every ``t``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components), float32 or float64
    y : ndarray of shape (n_samples,), int
        Class codes.
    targets : ndarray of shape (n_samples, n_neighbors), int
        Target neighbours of each point.
    sample : ndarray of shape (n_sample,), int
        The points whose share is summed.
    scales : ndarray of shape (n_scales,)
        The values of ``t``, positive and increasing.
    mu : float
        Weight of the push term.
    squared : bool
        Squared hinge (True) or hinge (False).
    working_memory : float or None
        Budget in MiB for one distance block.

    Returns
    -------
    loss : ndarray of shape (n_scales,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.lmnn import scale_losses
    >>> Z = np.array([[0.0], [1.0], [1.2], [3.0]])
    >>> y = np.array([0, 0, 1, 1])
    >>> targets = np.array([[1], [0], [3], [2]])
    >>> scale_losses(Z, y, targets, np.array([0]), np.array([1.0, 4.0]),
    ...              mu=0.5, squared=False).tolist()
    [0.78, 2.0]
    """
    Z = as_float_matrix(Z, "Z")
    y = np.ascontiguousarray(y, dtype=np.intp)
    targets = np.ascontiguousarray(targets, dtype=np.intp)
    sample = np.ascontiguousarray(sample, dtype=np.intp)
    scales = np.ascontiguousarray(scales, dtype=np.float64)
    loss = np.zeros(scales.shape[0], dtype=np.float64)
    class_sizes = np.bincount(y)
    for start, stop, block in sq_distance_blocks(
        Z[sample], Z, working_memory=working_memory
    ):
        chunk = sample[start:stop]
        target_sq = np.take_along_axis(block, targets[chunk], axis=1)
        target_sq = target_sq.astype(np.float64)
        # distances to the points of the same class go last, then one sort
        # (in place: each block is a new array)
        block[y[chunk, None] == y[None, :]] = np.inf
        block.sort(axis=1)
        _scale_loss_kernel(
            block,
            y.shape[0] - class_sizes[y[chunk]],
            target_sq,
            scales,
            float(mu),
            bool(squared),
            loss,
        )
    return loss


@jit
def _ratios_by_group_kernel(
    pair_sq, ref_sq, rows, stride, target_sq, target_ref, group_of, out, bounds
):
    # Two passes: count the finite ratios of each group, then place them.
    for p in range(0, pair_sq.shape[0], stride):
        ratio = pair_sq[p] / ref_sq[p]
        if np.isfinite(ratio):
            bounds[group_of[rows[p]] + 1] += 1
    for i in range(target_sq.shape[0]):
        for j in range(target_sq.shape[1]):
            ratio = target_sq[i, j] / target_ref[i, j]
            if np.isfinite(ratio):
                bounds[group_of[i] + 1] += 1
    for g in range(1, bounds.shape[0]):
        bounds[g] += bounds[g - 1]
    cursor = bounds[:-1].copy()
    for p in range(0, pair_sq.shape[0], stride):
        ratio = pair_sq[p] / ref_sq[p]
        if np.isfinite(ratio):
            g = group_of[rows[p]]
            out[cursor[g]] = ratio
            cursor[g] += 1
    for i in range(target_sq.shape[0]):
        g = group_of[i]
        for j in range(target_sq.shape[1]):
            ratio = target_sq[i, j] / target_ref[i, j]
            if np.isfinite(ratio):
                out[cursor[g]] = ratio
                cursor[g] += 1


@jit
def _ratios_kernel(pair_sq, ref_sq, stride, target_sq, target_ref, out):
    # One group: the finite ratios in one pass, counted in a register.
    n_ratios = 0
    for p in range(0, pair_sq.shape[0], stride):
        ratio = pair_sq[p] / ref_sq[p]
        if np.isfinite(ratio):
            out[n_ratios] = ratio
            n_ratios += 1
    for i in range(target_sq.shape[0]):
        for j in range(target_sq.shape[1]):
            ratio = target_sq[i, j] / target_ref[i, j]
            if np.isfinite(ratio):
                out[n_ratios] = ratio
                n_ratios += 1
    return n_ratios


def ratios_by_group(
    pair_sq, ref_sq, rows, stride, target_sq, target_ref, group_of, n_groups
):
    """Ratios of current to reference squared distances, grouped by row's group.

    The ratios ``pair_sq[p] / ref_sq[p]`` of every ``stride``-th pair and
    ``target_sq[i, j] / target_ref[i, j]`` of every target pair, each put
    in the group ``group_of`` gives its row; ratios that are not finite
    (a reference distance of zero) are left out.

    Parameters
    ----------
    pair_sq, ref_sq : ndarray of shape (n_pairs,), float64
    rows : ndarray of shape (n_pairs,), intp
        Row of each pair.
    stride : int
        Take the pairs ``0, stride, 2 stride, ...``.
    target_sq, target_ref : ndarray of shape (n_samples, n_neighbors), float64
    group_of : ndarray of shape (n_samples,), intp
        Group of each row, in ``[0, n_groups)``.
    n_groups : int

    Returns
    -------
    ratios : ndarray of shape (n_ratios,), float64
        The ratios of group ``g`` are ``ratios[bounds[g]:bounds[g + 1]]``.
    bounds : ndarray of shape (n_groups + 1,), intp

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.lmnn import ratios_by_group
    >>> ratios, bounds = ratios_by_group(
    ...     np.array([1.0, 2.0]), np.array([2.0, 0.0]), np.array([1, 0]), 1,
    ...     np.array([[3.0], [1.0]]), np.array([[1.0], [4.0]]),
    ...     np.array([1, 0]), 2)
    >>> ratios.tolist(), bounds.tolist()
    ([0.5, 0.25, 3.0], [0, 2, 3])
    """
    out = np.empty(pair_sq.shape[0] // stride + 1 + target_sq.size, dtype=np.float64)
    bounds = np.zeros(n_groups + 1, dtype=np.intp)
    if n_groups == 1:
        bounds[1] = _ratios_kernel(
            pair_sq, ref_sq, int(stride), target_sq, target_ref, out
        )
        return out[: bounds[-1]], bounds
    _ratios_by_group_kernel(
        pair_sq, ref_sq, rows, int(stride), target_sq, target_ref, group_of, out, bounds
    )
    return out[: bounds[-1]], bounds


@jit
def _sift_down(heap, start, size):
    # Restore the max-heap order below ``start`` in ``heap[:size]``.
    i = start
    value = heap[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap[child + 1] > heap[child]:
            child += 1
        if heap[child] <= value:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = value


@jit
def _order_statistics_kernel(values, high, heap):
    # The high + 1 smallest values in a max-heap: one comparison per value
    # once the heap is full, so about one pass when high << len(values).
    size = high + 1
    for p in range(size):
        heap[p] = values[p]
    for p in range(size // 2 - 1, -1, -1):
        _sift_down(heap, p, size)
    top = heap[0]
    for p in range(size, values.shape[0]):
        value = values[p]
        if value < top:
            heap[0] = value
            _sift_down(heap, 0, size)
            top = heap[0]
    # order statistic ``high`` is the top; ``high - 1`` the larger child
    below = top
    if size > 1:
        below = heap[1]
        if size > 2 and heap[2] > below:
            below = heap[2]
    return below, top


def low_quantile(values, q):
    """The ``q`` quantile of ``values`` with linear interpolation, as
    ``np.quantile``, without sorting: fast when ``q`` is small.

    Parameters
    ----------
    values : ndarray of shape (n_values,), float64
        Not empty, free of NaN; left unchanged.
    q : float
        In ``[0, 1]``.

    Returns
    -------
    quantile : float

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.lmnn import low_quantile
    >>> low_quantile(np.array([4.0, 1.0, 3.0, 2.0]), 0.5)
    2.5
    """
    n_values = values.shape[0]
    if n_values == 1:
        return float(values[0])
    position = q * (n_values - 1)
    low = int(position)
    high = min(low + 1, n_values - 1)
    below, top = _order_statistics_kernel(
        values, high, np.empty(high + 1, dtype=values.dtype)
    )
    if low == high:
        below = top
    return float(below + (top - below) * (position - low))


@jit
def _gradient_right_kernel(
    start,
    stop,
    X,
    targets,
    target_weights,
    indptr,
    cols,
    pair_weights,
    col_degrees,
    right,
):
    # right[i] = (d_i) x_i - 2 sum_b w_ib x_b for the rows start:stop (each
    # thread owns its rows), where d_i is the row's weight sum plus
    # col_degrees[i]: the target pairs (i, targets[i, j]) with weights
    # target_weights[i, j] and the candidate pairs of nonzero weight
    # (i, cols[p]), p in indptr[i]:indptr[i + 1].
    n_features = X.shape[1]
    gathered = np.empty(n_features, dtype=np.float64)
    for i in range(start, stop):
        degree = col_degrees[i]
        for k in range(n_features):
            gathered[k] = 0.0
        for j in range(targets.shape[1]):
            b = targets[i, j]
            w = target_weights[i, j]
            degree += w
            for k in range(n_features):
                gathered[k] += w * X[b, k]
        for p in range(indptr[i], indptr[i + 1]):
            w = pair_weights[p]
            if w != 0.0:
                degree += w
                b = cols[p]
                for k in range(n_features):
                    gathered[k] += w * X[b, k]
        for k in range(n_features):
            right[i, k] = degree * X[i, k] - 2.0 * gathered[k]


def lmnn_outer_sum(X, targets, target_weights, indptr, cols, pair_weights):
    """``C = sum_p w_p (x_a - x_b)(x_a - x_b)^T`` over LMNN's pairs.

    The pairs are the target pairs ``(i, targets[i, j])`` with weights
    ``target_weights[i, j]`` and the candidate impostor pairs
    ``(i, cols[p])``, ``p`` in ``indptr[i]:indptr[i + 1]``, with weights
    ``pair_weights[p]`` (zero weights are skipped). As in
    :func:`linmetric._kernels.weighted_outer_sum`, ``C`` is the symmetric
    part of ``X^T (D X - 2 W X)``; here one numba pass builds ``D X - 2 W X``
    row by row, gathering ``W X`` straight from LMNN's arrays, split by rows
    over threads (each thread owns its rows, so the result does not depend
    on their number), without building a list of pairs; the column part of
    the degrees ``D`` is two weighted counts, and one float64 GEMM over all
    rows follows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    targets : ndarray of shape (n_samples, n_neighbors), intp
    target_weights : ndarray of shape (n_samples, n_neighbors), float64
    indptr : ndarray of shape (n_samples + 1,), intp
    cols : ndarray of shape (n_candidates,), intp
    pair_weights : ndarray of shape (n_candidates,), float64

    Returns
    -------
    C : ndarray of shape (n_features, n_features), float64
        Symmetric; accumulated in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.lmnn import lmnn_outer_sum
    >>> X = np.array([[0.0, 0.0], [1.0, 2.0], [1.0, 0.0]])
    >>> targets = np.array([[1], [0], [1]])
    >>> lmnn_outer_sum(X, targets, np.array([[1.0], [0.0], [0.5]]),
    ...                np.array([0, 0, 0, 0]), np.empty(0, dtype=np.intp),
    ...                np.empty(0))
    array([[1., 2.],
           [2., 6.]])
    """
    n_samples = X.shape[0]
    # each pair's weight counts for both of its points: the rows' share is
    # summed in the kernel, the columns' here
    col_degrees = np.bincount(
        targets.ravel(), target_weights.ravel(), minlength=n_samples
    )
    col_degrees += np.bincount(cols, pair_weights, minlength=n_samples)
    right = np.empty(X.shape, dtype=np.float64)
    run_on_row_ranges(
        _gradient_right_kernel,
        n_samples,
        X,
        targets,
        target_weights,
        indptr,
        cols,
        pair_weights,
        col_degrees,
        right,
    )
    H = _split_gram(X.astype(np.float64, copy=False), right)
    return (H + H.T) / 2.0


def _split_gram(A, B):
    """``A^T B`` as two half GEMMs, each on one BLAS thread, summed in order.

    The halves run on two Python threads when kernels may use several.
    A multi-threaded BLAS call on a machine whose cores are taken by other
    work waits on its slowest thread (a 20,000 x 164 GEMM measured 0.67 s
    on two threads against 0.12 s on one); two single-threaded calls only
    share the cores. The split is fixed, so the result does not depend on
    the number of threads.
    """
    half = A.shape[0] // 2
    tasks = [(np.matmul, A[:half].T, B[:half]), (np.matmul, A[half:].T, B[half:])]
    with limit_threads(blas=1):
        if kernel_threads(A.shape[0], MIN_ROWS_PER_THREAD) > 1:
            parts = run_tasks(tasks)
        else:
            parts = [func(*args) for func, *args in tasks]
    return parts[0] + parts[1]


@jit
def _stream_push_kernel(
    start,
    stop,
    block,
    block_start,
    y,
    target_sq,
    mu,
    squared,
    candidate_scale,
    target_weights,
    row_push,
    row_active,
    row_candidates,
):
    # block[ii, l] = d(i, l) for i = block_start + ii, every l; on exit it
    # holds the weight -mu sum_j h'(1 + t_ij - d_il) of the pair (i, l).
    n_neighbors = target_sq.shape[1]
    for ii in range(start, stop):
        i = block_start + ii
        radius = 0.0
        for j in range(n_neighbors):
            if target_sq[i, j] > radius:
                radius = target_sq[i, j]
        radius += 1.0
        wide = candidate_scale * radius
        label = y[i]
        push = 0.0
        active = 0
        candidates = 0
        for l in range(block.shape[1]):
            d = np.float64(block[ii, l])
            block[ii, l] = 0.0
            if y[l] == label or d >= wide:
                continue
            candidates += 1
            if d >= radius:
                continue
            active += 1
            pushed, weight = impostor_terms(
                target_sq, i, d, mu, squared, target_weights
            )
            push += pushed
            block[ii, l] = -mu * weight
        row_push[i] = push
        row_active[i] = active
        row_candidates[i] = candidates


def streamed_push_terms(
    X, Z, y, target_sq, *, mu, squared, candidate_scale=1.0, working_memory=None
):
    """The push loss and its gradient over *all* pairs, in blocks of rows.

    The exact counterpart of :func:`push_terms` when the impostor pairs are
    too many to store: every pair ``(i, l)`` of different classes is
    visited, block by block, and its weight ``w_il = -mu sum_j h'(1 + t_ij
    - d_il)`` goes straight into the gradient's matrix
    ``C_push = sum_il w_il (x_i - x_l)(x_i - x_l)^T
    = X^T diag(W 1 + W^T 1) X - X^T W X - X^T W^T X``, one GEMM per block.
    Distances are float64 GEMM expansions (see
    :mod:`linmetric._kernels.distances`). Time ``O(n^2 (n_components +
    n_features))``; memory two blocks of ``working_memory``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Z : ndarray of shape (n_samples, n_components)
        ``X L^T``.
    y : ndarray of shape (n_samples,), int
        Class codes.
    target_sq : ndarray of shape (n_samples, n_neighbors), float64
    mu : float
    squared : bool
    candidate_scale : float, default=1.0
        Also count the pairs with ``d_il < candidate_scale (max_j t_ij + 1)``.
    working_memory : float or None
        Budget in MiB for one block.

    Returns
    -------
    push : float
        ``sum h(1 + t_ij - d_il)`` over the active triplets (not yet times mu).
    C_push : ndarray of shape (n_features, n_features), float64
    target_weights : ndarray of shape (n_samples, n_neighbors), float64
        ``mu sum_l h'(1 + t_ij - d_il)`` per target pair.
    n_active : int
        Pairs inside their row's margin.
    n_candidates : int
        Pairs inside ``candidate_scale`` times their row's margin.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.lmnn import streamed_push_terms
    >>> X = np.array([[0.0], [1.5], [0.5], [3.0]])
    >>> push, C, target_w, n_active, _ = streamed_push_terms(
    ...     X, X, np.array([0, 0, 1, 1]), np.array([[2.25], [2.25], [6.25], [6.25]]),
    ...     mu=0.5, squared=False)
    >>> float(push), C.tolist(), n_active
    (24.5, [[-3.5]], 6)
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.intp)
    target_sq = np.ascontiguousarray(target_sq, dtype=np.float64)
    n_samples = X.shape[0]
    target_weights = np.zeros(target_sq.shape, dtype=np.float64)
    row_push = np.empty(n_samples, dtype=np.float64)
    row_active = np.empty(n_samples, dtype=np.intp)
    row_candidates = np.empty(n_samples, dtype=np.intp)
    degrees = np.zeros(n_samples, dtype=np.float64)
    cross = np.zeros((X.shape[1], X.shape[1]), dtype=np.float64)
    # half the budget per block: the weights' product W X is a second array
    half = None if working_memory is None else working_memory / 2.0
    for start, stop, block in sq_distance_blocks(Z, working_memory=half):
        run_on_row_ranges(
            _stream_push_kernel,
            stop - start,
            block,
            start,
            y,
            target_sq,
            float(mu),
            bool(squared),
            float(candidate_scale),
            target_weights,
            row_push,
            row_active,
            row_candidates,
        )
        degrees[start:stop] += block.sum(axis=1)
        degrees += block.sum(axis=0)
        cross += X[start:stop].T @ (block @ X)
    C_push = X.T @ (X * degrees[:, None])
    C_push -= cross
    C_push -= cross.T
    return (
        float(row_push.sum()),
        (C_push + C_push.T) / 2.0,
        target_weights,
        int(row_active.sum()),
        int(row_candidates.sum()),
    )
