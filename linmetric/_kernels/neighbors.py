"""Target neighbours: the k nearest rows of the same class, class by class.

For each class, blocks of its rows are compared with all its rows: one GEMM
per block (single-threaded, the blocks taken by threads in turn), then a
fused numba pass that selects the k nearest (partial selection, no sort of
the row). The selection is exact: a first scan finds,
from the GEMM values and their error bound (see
:mod:`linmetric._kernels.distances`), a threshold that every true neighbour
lies under; a second scan recomputes, in float64 from the rows themselves,
only the candidates under it and keeps the k smallest by (distance, index).
The result therefore does not depend on BLAS rounding, and ties are broken by
the smaller index.
"""

import numpy as np

from .._threads import MIN_ROWS_PER_THREAD, kernel_threads, limit_threads
from ._chunking import run_tasks
from ._config import jit
from .distances import (
    as_float_matrix,
    block_rows,
    error_factor,
    exact_sq_distance,
    row_norms_sq,
)


@jit
def _insert(values, indices, count, value, index):
    # Insert (value, index) into the sorted prefix values[:count] (order by
    # value, then index), dropping the last entry when full.
    capacity = values.shape[0]
    position = count if count < capacity else capacity - 1
    while position > 0 and (
        values[position - 1] > value
        or (values[position - 1] == value and indices[position - 1] > index)
    ):
        if position < capacity:
            values[position] = values[position - 1]
            indices[position] = indices[position - 1]
        position -= 1
    values[position] = value
    indices[position] = index
    return min(count + 1, capacity)


@jit
def _top_k_kernel(
    start, stop, products, X_class, norms, block_start, factor, out_index, out_dist
):
    # products[ii, j] = x_{block_start+ii} . x_j (GEMM, input dtype).
    n_cols = products.shape[1]
    k = out_index.shape[1]
    upper = np.empty(k, dtype=np.float64)
    upper_index = np.empty(k, dtype=np.intp)
    best = np.empty(k, dtype=np.float64)
    best_index = np.empty(k, dtype=np.intp)
    for ii in range(start, stop):
        i = block_start + ii
        norm_i = norms[i]
        # Scan 1: the k-th smallest upper bound of the exact distance.
        count = 0
        for j in range(n_cols):
            if j == i:
                continue
            approx = norm_i + norms[j] - 2.0 * products[ii, j]
            bound = approx + factor * (norm_i + norms[j])
            if count < k or bound < upper[k - 1]:
                count = _insert(upper, upper_index, count, bound, j)
        threshold = upper[k - 1]
        # Scan 2: exact distances of the candidates that may beat it.
        count = 0
        for j in range(n_cols):
            if j == i:
                continue
            approx = norm_i + norms[j] - 2.0 * products[ii, j]
            if approx - factor * (norm_i + norms[j]) > threshold:
                continue
            exact = exact_sq_distance(X_class, i, X_class, j)
            if count < k or exact < best[k - 1]:
                count = _insert(best, best_index, count, exact, j)
        for m in range(k):
            out_index[ii, m] = best_index[m]
            out_dist[ii, m] = best[m]


def _top_k_blocks(blocks, X_class, norms, factor, out_index, out_dist):
    # The k nearest of the rows start:stop of each block, in one buffer.
    products = None
    for start, stop in blocks:
        shape = (stop - start, X_class.shape[0])
        if products is None or products.size < shape[0] * shape[1]:
            products = np.empty(shape[0] * shape[1], dtype=X_class.dtype)
        block = products[: shape[0] * shape[1]].reshape(shape)
        np.matmul(X_class[start:stop], X_class.T, out=block)
        _top_k_kernel(
            0,
            stop - start,
            block,
            X_class,
            norms,
            start,
            factor,
            out_index[start:stop],
            out_dist[start:stop],
        )


def target_neighbors(X, y, n_neighbors, *, working_memory=None, return_distance=False):
    """The ``n_neighbors`` nearest rows of the same class, for every row.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    y : ndarray of shape (n_samples,), int
        Class codes (any integers; usually ``0..n_classes-1``).
    n_neighbors : int
        Number of target neighbours per row, ``>= 1``.
    working_memory : float or None
        Budget in MiB for one block of within-class products; None means
        ``sklearn.get_config()["working_memory"]``.
    return_distance : bool, default=False
        Also return the squared distances.

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), intp
        Indices into ``X``; per row sorted by distance, ties by index. A row
        is never its own neighbour; a duplicate row is (at distance 0).
    sq_distances : ndarray of shape (n_samples, n_neighbors), dtype of ``X``
        Only with ``return_distance=True``: exact squared distances (float64
        sums of squared differences, stored in ``X``'s dtype).

    Raises
    ------
    ValueError
        If a class has ``n_neighbors`` or fewer members, naming the class code
        and its size.

    References
    ----------
    K. Q. Weinberger and L. K. Saul, "Distance Metric Learning for Large
    Margin Nearest Neighbor Classification", JMLR 10 (2009), section 3.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels import target_neighbors
    >>> X = np.array([[0.0], [1.0], [3.0], [10.0], [11.0], [13.0]])
    >>> y = np.array([0, 0, 0, 1, 1, 1])
    >>> target_neighbors(X, y, 1).ravel().tolist()
    [1, 0, 1, 4, 3, 4]
    """
    X = as_float_matrix(X, "X")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(
            f"y must be a 1-D array with one label per row of X ({X.shape[0]}), "
            f"got shape {y.shape}."
        )
    k = int(n_neighbors)
    if k < 1 or k != n_neighbors:
        raise ValueError(
            f"n_neighbors must be a positive integer, got {n_neighbors!r}."
        )
    classes, sizes = np.unique(y, return_counts=True)
    for label, size in zip(classes, sizes, strict=True):
        if size <= k:
            raise ValueError(
                f"Class {label} has {size} member(s); target neighbours need more "
                f"than n_neighbors={k} members in every class."
            )
    factor = error_factor(X.dtype, X.shape[1])
    indices = np.empty((X.shape[0], k), dtype=np.intp)
    sq_distances = np.empty((X.shape[0], k), dtype=X.dtype)
    for label in classes:
        members = np.flatnonzero(y == label)
        X_class = X[members]
        norms = row_norms_sq(X_class)
        n_class = members.shape[0]
        n_threads = kernel_threads(n_class, MIN_ROWS_PER_THREAD)
        n_rows = block_rows(n_class * X.itemsize * n_threads, working_memory, n_class)
        local_index = np.empty((n_class, k), dtype=np.intp)
        local_dist = np.empty((n_class, k), dtype=X.dtype)
        blocks = [
            (start, min(start + n_rows, n_class)) for start in range(0, n_class, n_rows)
        ]
        # Threads take the blocks in turn (block b to thread b mod n_threads),
        # each with its own product buffer and a single-threaded GEMM: two
        # BLAS threads on one block wait on each other; two blocks do not.
        groups = [blocks[t::n_threads] for t in range(min(n_threads, len(blocks)))]
        tasks = [
            (
                _top_k_blocks,
                group,
                X_class,
                norms,
                factor,
                local_index,
                local_dist,
            )
            for group in groups
        ]
        with limit_threads(blas=1):
            run_tasks(tasks)
        del X_class
        indices[members] = members[local_index]
        sq_distances[members] = local_dist
    if return_distance:
        return indices, sq_distances
    return indices
