"""Impostor search: differently labelled pairs closer than a per-row radius.

An impostor of row ``i`` is a row ``l`` with ``y[l] != y[i]`` and
``||z_i - z_l||^2 < radii[i]`` (for LMNN: the distance to ``i``'s farthest
target neighbour plus the margin).

The full search compares each class with the classes after it, in tiles of
rows and columns that threads take in turn: one single-threaded GEMM per
tile, small enough to stay in cache (a GEMM on two BLAS threads over long
blocks ran at half the speed, and the filter then read its block back from
memory), then a fused numba pass that tests every entry in
both directions (``(i, l)`` against ``radii[i]`` and ``(l, i)`` against
``radii[l]``), so each unordered pair of differently labelled rows is
computed once and same-class pairs never. Entries whose outcome the GEMM
rounding could change (within the error bound of
:mod:`linmetric._kernels.distances`) are decided on the exact float64
distance, so the set of pairs returned is exact. Hits are compacted in place
per row and expanded into pairs; at the end the pairs are grouped by row
(counting sort) and each row's few sorted runs are sorted by column.
"""

import threading

import numpy as np

from .._threads import MIN_ROWS_PER_THREAD, kernel_threads, limit_threads
from ._chunking import get_working_memory, run_on_row_ranges, run_tasks
from ._config import jit
from .distances import (
    as_float_matrix,
    error_factor,
    exact_sq_distance,
    row_norms_sq,
)

_ROW_HIT = 1  # (block row, col) is a pair: distance < radius of the block row
_COL_HIT = 2  # (col, block row) is a pair: distance < radius of the column


@jit
def _filter_kernel(
    start,
    stop,
    products,
    Z_rows,
    row_norms,
    row_radii,
    Z_cols,
    col_norms,
    col_radii,
    block_start,
    factor,
    exact_values,
    codes,
    n_codes,
    n_hits,
):
    # On entry products[ii, j] = z_i . z_j. On exit, for each block row ii,
    # codes[ii, :n_codes[ii]] = 4 * j + flags for every column j with a hit,
    # products[ii, :n_codes[ii]] = their squared distances (compacted in
    # place: the write position never passes the read position).
    n_cols = products.shape[1]
    keep = 1.0 - factor
    is_candidate = np.empty(n_cols, dtype=np.bool_)
    for ii in range(start, stop):
        i = block_start + ii
        norm_i = row_norms[i]
        radius_i = row_radii[i]
        count = 0
        hits = 0
        # Pass 1, branch-free (vectorised): a lower bound of the exact
        # distance against the larger of the two radii.
        lower_i = keep * norm_i
        n_candidates = 0
        for j in range(n_cols):
            lower = lower_i + keep * col_norms[j] - 2.0 * products[ii, j]
            flag = lower < max(radius_i, col_radii[j])
            is_candidate[j] = flag
            n_candidates += flag
        if n_candidates == 0:
            n_codes[ii] = 0
            n_hits[ii] = 0
            continue
        # Pass 2: decide the candidates, exactly near a radius.
        for j in range(n_cols):
            if not is_candidate[j]:
                continue
            approx = norm_i + col_norms[j] - 2.0 * products[ii, j]
            slack = factor * (norm_i + col_norms[j])
            radius_j = col_radii[j]
            exact = -1.0
            flags = 0
            if approx + slack < radius_i:
                flags |= _ROW_HIT
            elif approx - slack < radius_i:
                exact = exact_sq_distance(Z_rows, i, Z_cols, j)
                if exact < radius_i:
                    flags |= _ROW_HIT
            if approx + slack < radius_j:
                flags |= _COL_HIT
            elif approx - slack < radius_j:
                if exact < 0.0:
                    exact = exact_sq_distance(Z_rows, i, Z_cols, j)
                if exact < radius_j:
                    flags |= _COL_HIT
            if flags == 0:
                continue
            if exact_values and exact < 0.0:
                exact = exact_sq_distance(Z_rows, i, Z_cols, j)
            if exact >= 0.0:
                value = exact
            else:
                value = approx if approx > 0.0 else 0.0
            codes[ii, count] = 4 * j + flags
            products[ii, count] = value
            count += 1
            hits += (flags & 1) + (flags >> 1)
        n_codes[ii] = count
        n_hits[ii] = hits


@jit
def _emit_kernel(
    start,
    stop,
    products,
    codes,
    n_codes,
    offsets,
    row_index,
    col_index,
    out_rows,
    out_cols,
    out_dists,
):
    # Expand the compacted codes of block rows start:stop into (row, col,
    # distance), block row ii's pairs from offsets[ii] on.
    for ii in range(start, stop):
        i = row_index[ii]
        position = offsets[ii]
        for c in range(n_codes[ii]):
            code = codes[ii, c]
            l = col_index[code >> 2]
            if code & _ROW_HIT:
                out_rows[position] = i
                out_cols[position] = l
                out_dists[position] = products[ii, c]
                position += 1
            if code & _COL_HIT:
                out_rows[position] = l
                out_cols[position] = i
                out_dists[position] = products[ii, c]
                position += 1


@jit
def _scatter_by_row_kernel(rows, cols, dists, cursor, out_cols, out_dists):
    # Move each pair to its row's segment; cursor[r] is the next free slot.
    for p in range(rows.shape[0]):
        position = cursor[rows[p]]
        cursor[rows[p]] = position + 1
        out_cols[position] = cols[p]
        out_dists[position] = dists[p]


@jit
def _fill_rows_kernel(start, stop, offsets, rows):
    for r in range(start, stop):
        for p in range(offsets[r], offsets[r + 1]):
            rows[p] = r


@jit
def _merge_runs(cols, dists, begin, middle, end, buffer_cols, buffer_dists):
    # Merge the sorted runs [begin, middle) and [middle, end) (stable).
    size = middle - begin
    for p in range(size):
        buffer_cols[p] = cols[begin + p]
        buffer_dists[p] = dists[begin + p]
    left = 0
    right = middle
    out = begin
    while left < size and right < end:
        if cols[right] < buffer_cols[left]:
            cols[out] = cols[right]
            dists[out] = dists[right]
            right += 1
        else:
            cols[out] = buffer_cols[left]
            dists[out] = buffer_dists[left]
            left += 1
        out += 1
    while left < size:
        cols[out] = buffer_cols[left]
        dists[out] = buffer_dists[left]
        left += 1
        out += 1


@jit
def _sort_segments_kernel(start, stop, offsets, cols, dists):
    # Sort each row's segment by column. A segment is a few sorted runs (one
    # per class searched): merge neighbouring runs until one is left.
    longest = 0
    for r in range(start, stop):
        longest = max(longest, offsets[r + 1] - offsets[r])
    buffer_cols = np.empty(longest, dtype=cols.dtype)
    buffer_dists = np.empty(longest, dtype=dists.dtype)
    bounds = np.empty(longest + 1, dtype=np.intp)
    for r in range(start, stop):
        begin = offsets[r]
        end = offsets[r + 1]
        n_runs = 1
        bounds[0] = begin
        for p in range(begin + 1, end):
            if cols[p] < cols[p - 1]:
                bounds[n_runs] = p
                n_runs += 1
        bounds[n_runs] = end
        while n_runs > 1:
            merged = 0
            for run in range(0, n_runs, 2):
                if run + 1 < n_runs:
                    _merge_runs(
                        cols,
                        dists,
                        bounds[run],
                        bounds[run + 1],
                        bounds[run + 2],
                        buffer_cols,
                        buffer_dists,
                    )
                bounds[merged] = bounds[run]
                merged += 1
            bounds[merged] = end
            n_runs = merged


@jit
def _group_by_row_kernel(rows, counts, order):
    # Stable counting sort: order lists the pairs grouped by row.
    cursor = np.empty(counts.shape[0], dtype=np.intp)
    position = 0
    for r in range(counts.shape[0]):
        cursor[r] = position
        position += counts[r]
    for p in range(rows.shape[0]):
        order[cursor[rows[p]]] = p
        cursor[rows[p]] += 1


def sort_pairs(rows, cols, n_samples, *values):
    """Sort pairs by ``(row, col)``; return sorted ``rows, cols, *values``.

    A stable counting sort by row, then a merge sort of each row's columns
    that takes sorted runs as they come: linear time for input made of a
    few sorted pieces (for example the concatenation of sorted pair lists).

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels import sort_pairs
    >>> rows, cols, values = sort_pairs(
    ...     np.array([1, 0, 1]), np.array([0, 2, 1]), 2, np.array([5.0, 6.0, 7.0])
    ... )
    >>> rows.tolist(), cols.tolist(), values.tolist()
    ([0, 1, 1], [2, 0, 1], [6.0, 5.0, 7.0])
    """
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    cols = np.ascontiguousarray(cols, dtype=np.intp)
    counts = np.bincount(rows, minlength=n_samples)
    offsets = np.zeros(counts.shape[0] + 1, dtype=np.intp)
    np.cumsum(counts, out=offsets[1:])
    order = np.empty(rows.shape[0], dtype=np.intp)
    _group_by_row_kernel(rows, counts, order)
    sorted_cols = cols[order]
    run_on_row_ranges(
        _sort_segments_kernel, counts.shape[0], offsets, sorted_cols, order
    )
    return (rows[order], sorted_cols, *(np.asarray(v)[order] for v in values))


def _check_radii(radii, n_samples):
    radii = np.ascontiguousarray(radii, dtype=np.float64)
    if radii.shape != (n_samples,):
        raise ValueError(
            f"radii must be a 1-D array with one radius per row of Z ({n_samples}), "
            f"got shape {radii.shape}."
        )
    if np.isnan(radii).any():
        raise ValueError("radii must not contain NaN.")
    return radii


def find_impostors(
    Z, y, radii, *, working_memory=None, exact_distances=False, max_pairs=None
):
    """All differently labelled pairs closer than the first row's radius.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components), float32 or float64
        The transformed rows, ``X @ L.T`` for LMNN.
    y : ndarray of shape (n_samples,), int
        Class codes.
    radii : ndarray of shape (n_samples,)
        Squared radius per row; ``(i, l)`` is returned when
        ``||z_i - z_l||^2 < radii[i]`` and ``y[i] != y[l]``.
    working_memory : float or None
        Budget in MiB for one block (the product block plus an index buffer
        of 4 or 8 bytes per entry); None means
        ``sklearn.get_config()["working_memory"]``. The output is extra.
    exact_distances : bool, default=False
        Compute every returned distance exactly (float64 sum of squared
        differences). By default only pairs near a radius are recomputed; the
        others carry the GEMM value, within the error bound of
        :mod:`linmetric._kernels.distances` (a relative error of about
        ``1e-5`` of ``||z_i||^2 + ||z_l||^2`` in float32). The set of pairs is
        exact either way.
    max_pairs : int or None, default=None
        Give up, returning None, as soon as more pairs than this are found;
        the pairs found so far are dropped, so the output never holds more.

    Returns
    -------
    rows, cols : ndarray of shape (n_pairs,), intp
        The pairs, sorted by ``(row, col)``.
    sq_dists : ndarray of shape (n_pairs,), dtype of ``Z``
        Their squared distances.
    (or None, when there are more than ``max_pairs`` pairs)

    References
    ----------
    K. Q. Weinberger and L. K. Saul, "Distance Metric Learning for Large
    Margin Nearest Neighbor Classification", JMLR 10 (2009), section 5.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels import find_impostors
    >>> Z = np.array([[0.0], [1.0], [2.0], [5.0]])
    >>> y = np.array([0, 1, 0, 1])
    >>> rows, cols, sq_dists = find_impostors(Z, y, np.full(4, 2.0))
    >>> rows.tolist(), cols.tolist(), sq_dists.tolist()
    ([0, 1, 1, 2], [1, 0, 2, 1], [1.0, 1.0, 1.0, 1.0])
    """
    Z = as_float_matrix(Z, "Z")
    n_samples = Z.shape[0]
    y = np.asarray(y)
    if y.shape != (n_samples,):
        raise ValueError(
            f"y must be a 1-D array with one label per row of Z ({n_samples}), "
            f"got shape {y.shape}."
        )
    radii = _check_radii(radii, n_samples)
    norms = row_norms_sq(Z)
    factor = error_factor(Z.dtype, Z.shape[1])
    code_dtype = np.int32 if 4 * n_samples + 3 <= np.iinfo(np.int32).max else np.int64
    bytes_per_entry = Z.itemsize + np.dtype(code_dtype).itemsize
    n_threads = kernel_threads(n_samples, MIN_ROWS_PER_THREAD)
    search = _TiledSearch(factor, bool(exact_distances), code_dtype, max_pairs)
    pieces = []
    for label in np.unique(y)[:-1]:
        members = np.flatnonzero(y == label)
        others = np.flatnonzero(y > label)
        n_rows, n_cols = tile_shape(
            members.shape[0],
            others.shape[0],
            bytes_per_entry,
            working_memory,
            n_threads,
        )
        search.start_class(Z, norms, radii, members, others, n_rows, n_cols)
        with limit_threads(blas=1):
            run_tasks([(search.work,)] * min(n_threads, len(search.tasks)))
        if search.over:
            return None
        pieces.extend(piece for piece in search.pieces if piece is not None)
        search.forget_class()
    counts = np.zeros(n_samples, dtype=np.intp)
    for piece in pieces:
        counts += np.bincount(piece[0], minlength=n_samples)
    return _assemble(pieces, counts, Z.dtype)


# One tile of the full search: at most this many rows and columns, so that
# its product (and codes) stay in cache between the GEMM and the filter, and
# each single-threaded GEMM is large enough to run near the core's peak.
_TILE_ROWS = 512
_TILE_COLS = 4096


def tile_shape(n_rows, n_cols, bytes_per_entry, working_memory, n_threads):
    """Rows and columns of one tile: cache-sized, and the tiles of all
    threads together within ``working_memory``."""
    budget = get_working_memory(working_memory) * 2**20 / n_threads
    cols = max(1, min(n_cols, _TILE_COLS, int(budget // bytes_per_entry)))
    rows = max(1, min(n_rows, _TILE_ROWS, int(budget // (cols * bytes_per_entry))))
    return rows, cols


class _TiledSearch:
    """The tiles of one class of a full search, taken in turn by threads.

    The class's rows and the rows of the later classes are copied once;
    each thread owns a product and a code buffer; a tile's GEMM runs on one
    BLAS thread and its filter right after, on the product still in cache.
    The pairs of tile ``t`` go to ``pieces[t]``, so the result does not
    depend on which thread ran which tile.
    """

    def __init__(self, factor, exact, code_dtype, max_pairs):
        self.factor, self.exact, self.code_dtype = factor, exact, code_dtype
        self.max_pairs = max_pairs
        self.n_found = 0
        self.over = False
        self.lock = threading.Lock()

    def start_class(self, Z, norms, radii, members, others, n_rows, n_cols):
        """Prepare the tiles of ``members`` (rows) against ``others``."""
        self.members, self.others = members, others
        self.Z_rows, self.Z_cols = Z[members], Z[others]
        self.row_norms, self.col_norms = norms[members], norms[others]
        self.row_radii, self.col_radii = radii[members], radii[others]
        self.tasks = [
            (
                start,
                min(start + n_rows, members.shape[0]),
                col,
                min(col + n_cols, others.shape[0]),
            )
            for start in range(0, members.shape[0], n_rows)
            for col in range(0, others.shape[0], n_cols)
        ]
        self.pieces = [None] * len(self.tasks)
        self.next_task = 0

    def forget_class(self):
        """Drop the class's copies and pairs (the caller keeps the pairs)."""
        self.Z_rows = self.Z_cols = None
        self.tasks, self.pieces = [], []

    def _take(self, n_hits):
        with self.lock:
            self.n_found += n_hits
            if self.max_pairs is not None and self.n_found > self.max_pairs:
                self.over = True
            if self.over or self.next_task >= len(self.tasks):
                return None
            task = self.next_task
            self.next_task += 1
            return task

    def work(self):
        products = codes = None
        total = 0
        while (task := self._take(total)) is not None:
            start, stop, col_start, col_stop = self.tasks[task]
            shape = (stop - start, col_stop - col_start)
            size = shape[0] * shape[1]
            if products is None or products.size < size:
                products = np.empty(size, dtype=self.Z_rows.dtype)
                codes = np.empty(size, dtype=self.code_dtype)
            block = products[:size].reshape(shape)
            block_codes = codes[:size].reshape(shape)
            Z_cols = self.Z_cols[col_start:col_stop]
            np.matmul(self.Z_rows[start:stop], Z_cols.T, out=block)
            n_codes = np.empty(shape[0], dtype=np.intp)
            n_hits = np.empty(shape[0], dtype=np.intp)
            _filter_kernel(
                0,
                shape[0],
                block,
                self.Z_rows,
                self.row_norms,
                self.row_radii,
                Z_cols,
                self.col_norms[col_start:col_stop],
                self.col_radii[col_start:col_stop],
                start,
                self.factor,
                self.exact,
                block_codes,
                n_codes,
                n_hits,
            )
            total = int(n_hits.sum())
            if total:
                offsets = np.zeros(shape[0], dtype=np.intp)
                np.cumsum(n_hits[:-1], out=offsets[1:])
                piece = (
                    np.empty(total, dtype=np.intp),
                    np.empty(total, dtype=np.intp),
                    np.empty(total, dtype=block.dtype),
                )
                _emit_kernel(
                    0,
                    shape[0],
                    block,
                    block_codes,
                    n_codes,
                    offsets,
                    self.members[start:stop],
                    self.others[col_start:col_stop],
                    *piece,
                )
                self.pieces[task] = piece


def _assemble(pieces, counts, dtype):
    # Group the pieces' pairs by row (counting sort), then sort each row's
    # segment by column: linear in the number of pairs, cache-friendly.
    n_samples = counts.shape[0]
    offsets = np.zeros(n_samples + 1, dtype=np.intp)
    np.cumsum(counts, out=offsets[1:])
    n_pairs = int(offsets[-1])
    cols = np.empty(n_pairs, dtype=np.intp)
    sq_dists = np.empty(n_pairs, dtype=dtype)
    cursor = offsets[:-1].copy()
    while pieces:
        piece = pieces.pop(0)  # free each piece once it is moved
        _scatter_by_row_kernel(*piece, cursor, cols, sq_dists)
        del piece
    run_on_row_ranges(_sort_segments_kernel, n_samples, offsets, cols, sq_dists)
    rows = np.empty(n_pairs, dtype=np.intp)
    run_on_row_ranges(_fill_rows_kernel, n_samples, offsets, rows)
    return rows, cols, sq_dists
