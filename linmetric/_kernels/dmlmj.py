"""Nearest same-class and other-class neighbours, every pair of rows once.

DMLMJ needs, for every row, its ``k`` nearest rows of the same class and its
``k`` nearest rows of the other classes. Both searches are done together,
with the rows sorted by class: a block of rows of class ``a`` is multiplied
(one GEMM) with the rows from its own first row to the end, that is the
rest of its own class and every later class. So each pair of rows, and each
pair of classes, is visited once, and one pass over the product block
updates both rows of each pair: the block's row and the column's row.

The selection is exact. Each row keeps its ``k`` best (exact distance,
index) so far, sorted. A pair is skipped when the lower bound of its
distance from the GEMM value (see :mod:`linmetric._kernels.distances` for
the bound) exceeds the current ``k``-th best of both its rows; otherwise its
distance is recomputed in float64 from the rows themselves and offered to
both lists. The ``k``-th best only decreases, so a skipped pair can never
enter a list: the result does not depend on BLAS rounding, on the blocking
or on the number of threads, and ties go to the smaller (original) index.
Only a few dozen exact distances per row are recomputed.

The products are made one column tile at a time (256 rows x 1024 columns,
1 MiB in float32), each scanned while it is still in the core's cache,
and always in float32: float64 rows are rounded to float32 for the GEMM
only, with the bound widened to cover that rounding (:func:`_gemm_operand`).

Threads deal out the column tiles of a block in turn; each runs its own
single-threaded GEMMs, keeps private copies of the block rows' lists and
writes the lists of its own columns only; the private copies are merged at
the end of the block.
"""

import numpy as np

from .._threads import MIN_WORK_PER_THREAD, kernel_threads, limit_threads
from ._chunking import run_tasks
from ._config import jit
from .distances import block_rows, error_factor, exact_sq_distance, row_norms_sq

# Columns checked together by the branch-free first pass of a row's scan.
_CHUNK = 64
# Rows of a block and columns of a tile: the product tile (1 MiB in float32)
# and the tile's rows stay in a core's cache between the GEMM and the scan.
_BLOCK_ROWS = 256
_TILE_COLUMNS = 1024


@jit
def _offer(best, best_index, row, value, index):
    # Insert (value, index) into the sorted list of `row` if it beats its last
    # entry (order by value, then index). Returns whether it was inserted.
    last = best.shape[1] - 1
    if value > best[row, last] or (
        value == best[row, last] and index >= best_index[row, last]
    ):
        return False
    position = last
    while position > 0 and (
        best[row, position - 1] > value
        or (best[row, position - 1] == value and best_index[row, position - 1] > index)
    ):
        best[row, position] = best[row, position - 1]
        best_index[row, position] = best_index[row, position - 1]
        position -= 1
    best[row, position] = value
    best_index[row, position] = index
    return True


@jit
def _scan_columns(
    ii,
    begin,
    end,
    products,
    shift,
    X,
    lower_norms,
    offset,
    original,
    row_best,
    row_index,
    col_best,
    col_index,
    col_limit,
):
    # Offer the pairs (ii, jj), begin <= jj < end, to both rows' lists; the
    # GEMM value of a pair is products[ii, jj - shift]. A first, branch-free
    # pass over each chunk of columns checks whether any
    # pair in it may enter a list; most chunks are skipped after it.
    last = row_best.shape[1] - 1
    i = offset + ii
    low_i = lower_norms[i]
    limit = row_best[ii, last]
    for chunk in range(begin, end, _CHUNK):
        chunk_end = min(chunk + _CHUNK, end)
        hits = 0
        for jj in range(chunk, chunk_end):
            lower = low_i + lower_norms[offset + jj] - 2.0 * products[ii, jj - shift]
            hits += (lower <= limit) | (lower <= col_limit[jj])
        if hits == 0:
            continue
        for jj in range(chunk, chunk_end):
            j = offset + jj
            lower = low_i + lower_norms[j] - 2.0 * products[ii, jj - shift]
            if lower > limit and lower > col_limit[jj]:
                continue
            exact = exact_sq_distance(X, i, X, j)
            if _offer(row_best, row_index, ii, exact, original[j]):
                limit = row_best[ii, last]
            if _offer(col_best, col_index, jj, exact, original[i]):
                col_limit[jj] = col_best[jj, last]


@jit
def _scan_block(
    col_start,
    col_stop,
    products,
    X,
    lower_norms,
    offset,
    split,
    original,
    row_same,
    row_same_index,
    row_other,
    row_other_index,
    col_same,
    col_same_index,
    col_same_limit,
    col_other,
    col_other_index,
    col_other_limit,
):
    # products[ii, jj - col_start] = X[offset + ii] . X[offset + jj] for the
    # block's rows ii and the tile's columns col_start <= jj < col_stop
    # (column numbers count from `offset`); columns below `split` are the block's own
    # class (pairs with jj > ii only: each pair once), the others later
    # classes. lower_norms = (1 - error factor) * squared norms, so that
    # lower_norms[i] + lower_norms[j] - 2 p is a lower bound of the exact
    # squared distance. row_* are the block rows' lists (private to this
    # caller), col_* those of the columns with their last entries
    # (col_limit); this call writes columns col_start:col_stop only.
    for ii in range(products.shape[0]):
        _scan_columns(
            ii,
            max(col_start, ii + 1),
            min(col_stop, split),
            products,
            col_start,
            X,
            lower_norms,
            offset,
            original,
            row_same,
            row_same_index,
            col_same,
            col_same_index,
            col_same_limit,
        )
        _scan_columns(
            ii,
            max(col_start, split),
            col_stop,
            products,
            col_start,
            X,
            lower_norms,
            offset,
            original,
            row_other,
            row_other_index,
            col_other,
            col_other_index,
            col_other_limit,
        )


@jit
def _merge_lists(best, best_index, private, private_index):
    # Offer every entry of `private` not already in `best` (same index) to it.
    k = best.shape[1]
    for row in range(best.shape[0]):
        for m in range(k):
            index = private_index[row, m]
            present = False
            for q in range(k):
                if best_index[row, q] == index:
                    present = True
                    break
            if not present:
                _offer(best, best_index, row, private[row, m], index)


def _scan_tiles(tiles, buffer, P, X, lower_norms, start, stop, split, original, lists):
    # One thread's share of a block: for each column tile, the product of
    # the block's rows with the tile's rows (single-threaded BLAS, into this
    # thread's buffer, so that it is still in cache when scanned), then the
    # scan. P is X in the GEMM's dtype; lists = the block rows' private
    # lists, then the shared ones.
    rows = P[start:stop]
    for col_start, col_stop in tiles:
        width = col_stop - col_start
        products = buffer[: (stop - start) * width].reshape(stop - start, width)
        np.matmul(rows, P[start + col_start : start + col_stop].T, out=products)
        _scan_block(
            col_start,
            col_stop,
            products,
            X,
            lower_norms,
            start,
            split,
            original,
            *lists,
        )


def _scan_with_threads(P, X, lower_norms, start, stop, split, original, lists, buffers):
    same, same_index, same_limit, other, other_index, other_limit = lists
    n_rows, n_cols = stop - start, X.shape[0] - start
    n_threads = min(len(buffers), kernel_threads(n_rows * n_cols, MIN_WORK_PER_THREAD))
    # Tiles dealt out in turn, so that each thread gets a share of the
    # (half-empty) same-class triangle.
    tiles = [
        (col_start, min(col_start + _TILE_COLUMNS, n_cols))
        for col_start in range(0, n_cols, _TILE_COLUMNS)
    ]
    n_threads = max(1, min(n_threads, len(tiles)))
    shared = (
        same[start:],
        same_index[start:],
        same_limit[start:],
        other[start:],
        other_index[start:],
        other_limit[start:],
    )
    privates = [
        tuple(a[start:stop].copy() for a in (same, same_index, other, other_index))
        for _ in range(n_threads)
    ]
    tasks = [
        (
            _scan_tiles,
            tiles[thread::n_threads],
            buffers[thread],
            P,
            X,
            lower_norms,
            start,
            stop,
            split,
            original,
            (*private, *shared),
        )
        for thread, private in enumerate(privates)
    ]
    run_tasks(tasks)
    for private in privates:
        _merge_lists(same[start:stop], same_index[start:stop], *private[:2])
        _merge_lists(other[start:stop], other_index[start:stop], *private[2:])
    same_limit[start:stop] = same[start:stop, -1]
    other_limit[start:stop] = other[start:stop, -1]


def _gemm_operand(X):
    """The rows in the dtype of the products, and the bound's norm terms.

    Float32 rows are multiplied as they are. Float64 rows are multiplied
    in float32 too (half the time of a float64 GEMM): the products are only
    used to exclude pairs, and the bound below also covers the rounding of
    the rows to float32, each of whose entries moves by at most ``u |x|``
    (``u`` the float32 unit roundoff), which moves ``2 a . b`` by at most
    ``(2 u + u^2) (||a||^2 + ||b||^2)``; ``2 eps`` more covers it, and an
    absolute term covers entries and products that fall below float32's
    normal range. Rows with entries beyond ``2**40`` (in the centred units
    of the caller, far outside any data) stay in float64.

    Returns ``P`` and ``lower_norms`` such that
    ``lower_norms[i] + lower_norms[j] - 2 P[i] . P[j]`` (computed by BLAS in
    ``P``'s dtype) is at most the exact ``||X[i] - X[j]||^2``.
    """
    norms = row_norms_sq(X)
    n_features = X.shape[1]
    if X.dtype == np.float32 or not np.abs(X).max(initial=0.0) <= 2.0**40:
        return X, (1.0 - error_factor(X.dtype, n_features)) * norms
    eps = float(np.finfo(np.float32).eps)
    factor = error_factor(np.float32, n_features) + 2.0 * eps
    tiny = 4.0 * (n_features + 1) * 2.0**-100
    return X.astype(np.float32), (1.0 - factor) * norms - tiny


def class_neighbors(X, y_codes, n_neighbors, *, working_memory=None):
    """The ``n_neighbors`` nearest rows of the same class and of the others.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
        C-contiguous.
    y_codes : ndarray of shape (n_samples,), int
        Class codes.
    n_neighbors : int
        Neighbours of each kind per row, ``>= 1``.
    working_memory : float or None
        Budget in MiB for one product block; None means
        ``sklearn.get_config()["working_memory"]``.

    Returns
    -------
    same, other : ndarray of shape (n_samples, n_neighbors), intp
        Indices into ``X`` of each row's nearest rows of its own class
        (never itself) and of the other classes, sorted by exact distance,
        ties by index. Where a row has fewer candidates than
        ``n_neighbors``, the missing entries are ``n_samples``.
    """
    n_samples = X.shape[0]
    k = int(n_neighbors)
    order = np.argsort(y_codes, kind="stable").astype(np.intp)
    sorted_y = y_codes[order]
    Xs = np.ascontiguousarray(X[order])
    P, lower_norms = _gemm_operand(Xs)
    class_stops = np.flatnonzero(np.diff(sorted_y)) + 1
    class_stops = np.append(class_stops, n_samples)
    lists = (
        np.full((n_samples, k), np.inf),
        np.full((n_samples, k), n_samples, dtype=np.intp),
        np.full(n_samples, np.inf),
        np.full((n_samples, k), np.inf),
        np.full((n_samples, k), n_samples, dtype=np.intp),
        np.full(n_samples, np.inf),
    )
    n_threads = kernel_threads()
    step = min(
        _BLOCK_ROWS, block_rows(_TILE_COLUMNS * X.itemsize, working_memory, n_samples)
    )
    buffers = [np.empty(step * _TILE_COLUMNS, dtype=P.dtype) for _ in range(n_threads)]
    class_start = 0
    # Each thread runs its own GEMMs: BLAS on one thread.
    with limit_threads(blas=1):
        for class_stop in class_stops:
            for start in range(class_start, class_stop, step):
                stop = min(start + step, class_stop)
                _scan_with_threads(
                    P,
                    Xs,
                    lower_norms,
                    start,
                    stop,
                    class_stop - start,
                    order,
                    lists,
                    buffers,
                )
            class_start = class_stop
    same, other = np.empty_like(lists[1]), np.empty_like(lists[4])
    same[order], other[order] = lists[1], lists[4]
    return same, other


@jit
def _loo_errors(start, stop, products, sq_norms, y_codes, n_classes, k):
    # Rows start:stop of the leave-one-out k-NN vote: products = Z Z^T, the
    # k nearest other rows by sq_norms[j] - 2 products[i, j] (ties: smaller
    # index), majority vote with ties to the smallest class code. Returns
    # the number of wrong votes.
    n_rows = products.shape[0]
    best = np.empty(k, dtype=np.float64)
    best_index = np.empty(k, dtype=np.intp)
    votes = np.zeros(n_classes, dtype=np.intp)
    wrong = 0
    for i in range(start, stop):
        count = 0
        for j in range(n_rows):
            if j == i:
                continue
            value = sq_norms[j] - 2.0 * products[i, j]
            if count == k and (
                value > best[k - 1] or (value == best[k - 1] and j > best_index[k - 1])
            ):
                continue
            position = count if count < k else k - 1
            while position > 0 and best[position - 1] > value:
                if position < k:
                    best[position] = best[position - 1]
                    best_index[position] = best_index[position - 1]
                position -= 1
            best[position] = value
            best_index[position] = j
            count = min(count + 1, k)
        votes[:] = 0
        for m in range(count):
            votes[y_codes[best_index[m]]] += 1
        winner = 0
        for c in range(n_classes):
            if votes[c] > votes[winner]:
                winner = c
        if winner != y_codes[i]:
            wrong += 1
    return wrong


def loo_knn_wrong(Z, y_codes, n_neighbors):
    """Number of rows of ``Z`` whose leave-one-out k-NN vote is wrong.

    ``Z`` is float64; the vote of each row's ``n_neighbors`` nearest other
    rows (ties by index), ties in the vote to the smallest class code.
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    sq_norms = np.einsum("ij,ij->i", Z, Z)
    products = Z @ Z.T
    y_codes = np.ascontiguousarray(y_codes, dtype=np.intp)
    n_classes = int(y_codes.max()) + 1
    return _loo_errors(
        0, Z.shape[0], products, sq_norms, y_codes, n_classes, int(n_neighbors)
    )
