"""Weighted sums of outer products of pair differences.

``C = sum_p w_p (x_a - x_b)(x_a - x_b)^T`` over pairs ``p = (a, b)`` equals
``X^T (D - W - W^T) X``, where ``W[a, b]`` sums the weights of the pairs
``(a, b)`` and ``D`` is the diagonal of the row plus column sums of ``W``.
Since ``X^T W^T X = (X^T W X)^T`` and ``C`` is symmetric, ``C`` is the
symmetric part of

    H = X^T (D X - 2 W X),

computed with one sparse product ``W X`` (a numba pass over the pairs:
``(W X)[a] += w_p x_b``, a gather, no scattered writes) and one float64 GEMM
(over blocks of the rows that occur in some pair). This is the main term of the LMNN gradient.
"""

import numpy as np

from .._threads import MIN_PAIRS_PER_THREAD, kernel_threads
from ._chunking import rows_per_chunk, run_tasks
from ._config import jit
from .distances import as_float_matrix, check_pairs


@jit
def _gather_kernel(start, stop, X, rows, cols, weights, out):
    # out[a] += w_p x_b for the pairs start:stop, accumulated in float64.
    for p in range(start, stop):
        a = rows[p]
        b = cols[p]
        w = weights[p]
        for k in range(X.shape[1]):
            out[a, k] += w * np.float64(X[b, k])


def _sparse_product(X, rows, cols, weights):
    """``W X`` in float64, the pairs split over threads.

    When ``rows`` is sorted (as impostor pairs are), each thread owns whole
    rows, so all write to one array and the result does not depend on the
    number of threads. Otherwise each thread has its own buffer and the
    buffers are added in a fixed order.
    """
    n_pairs = rows.shape[0]
    n_parts = kernel_threads(n_pairs, MIN_PAIRS_PER_THREAD)
    nominal = [(n_pairs * part) // n_parts for part in range(n_parts + 1)]
    if n_parts > 1 and np.all(rows[1:] >= rows[:-1]):
        # move each boundary back to the first pair of its row
        bounds = [0]
        for position in nominal[1:-1]:
            bounds.append(int(np.searchsorted(rows, rows[position], side="left")))
        bounds.append(n_pairs)
        product = np.zeros(X.shape, dtype=np.float64)
        run_tasks(
            [
                (
                    _gather_kernel,
                    bounds[p],
                    bounds[p + 1],
                    X,
                    rows,
                    cols,
                    weights,
                    product,
                )
                for p in range(n_parts)
                if bounds[p + 1] > bounds[p]
            ]
        )
        return product
    buffers = np.zeros((n_parts, *X.shape), dtype=np.float64)
    run_tasks(
        [
            (
                _gather_kernel,
                nominal[p],
                nominal[p + 1],
                X,
                rows,
                cols,
                weights,
                buffers[p],
            )
            for p in range(n_parts)
        ]
    )
    product = buffers[0]
    for part in range(1, n_parts):
        product += buffers[part]
    return product


def weighted_outer_sum(X, rows, cols, weights, *, working_memory=None):
    """``sum_p w_p (x_rows[p] - x_cols[p])(x_rows[p] - x_cols[p])^T``, in float64.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    rows, cols : array-like of int, shape (n_pairs,)
    weights : array-like of float, shape (n_pairs,)
    working_memory : float or None
        Budget in MiB for the float64 copies of blocks of ``X``; None means
        ``sklearn.get_config()["working_memory"]``. Besides it, the kernel
        holds ``W X``: ``n_samples x n_features`` float64 (one per thread
        when ``rows`` is not sorted).

    Returns
    -------
    C : ndarray of shape (n_features, n_features), float64
        Symmetric. Everything is accumulated in float64; the result differs
        from the pair-by-pair sum by rounding of order
        ``1e-16 * sum_p |w_p| (||x_a||^2 + ||x_b||^2)``. With sorted
        ``rows`` it does not depend on the number of threads.

    References
    ----------
    K. Q. Weinberger and L. K. Saul, "Distance Metric Learning for Large
    Margin Nearest Neighbor Classification", JMLR 10 (2009), eq. 26 (the
    gradient as sums of outer products ``C_ij``).

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels import weighted_outer_sum
    >>> X = np.array([[0.0, 0.0], [1.0, 2.0], [1.0, 0.0]])
    >>> weighted_outer_sum(X, [0, 1], [1, 2], [1.0, 0.5])
    array([[1., 2.],
           [2., 6.]])
    """
    X = as_float_matrix(X, "X")
    rows, cols = check_pairs(rows, cols, X.shape[0])
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if weights.shape != rows.shape:
        raise ValueError(
            f"weights must have one value per pair ({rows.shape[0]}), got shape "
            f"{weights.shape}."
        )
    n_samples, n_features = X.shape
    product = _sparse_product(X, rows, cols, weights)  # W X
    degrees = np.bincount(rows, weights, minlength=n_samples)
    degrees += np.bincount(cols, weights, minlength=n_samples)
    # Only rows in some pair contribute.
    in_pairs = np.zeros(n_samples, dtype=bool)
    in_pairs[rows] = True
    in_pairs[cols] = True
    active = np.flatnonzero(in_pairs)
    n_active = active.shape[0]
    # H = X^T (D X - 2 W X) = X^T D X - 2 G, whose symmetric part is C: one
    # GEMM per block of rows, which bounds the float64 copies.
    H = np.zeros((n_features, n_features))
    n_rows = rows_per_chunk(3 * n_features * 8, working_memory, max_rows=n_active)
    for start in range(0, n_active, n_rows):
        index = active[start : start + n_rows]
        block = X[index].astype(np.float64, copy=False)
        right = block * degrees[index, None]
        right -= 2.0 * product[index]
        H += block.T @ right

    return (H + H.T) / 2.0
