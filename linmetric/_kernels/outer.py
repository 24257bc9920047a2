"""Weighted sums of outer products of pair differences.

``C = sum_p w_p (x_a - x_b)(x_a - x_b)^T`` over pairs ``p = (a, b)`` equals
``X^T S X`` with ``S = D - W - W^T``, where ``W[a, b] = sum of w_p`` and
``D`` the diagonal of the row plus column sums of ``W``. The sparse product
``S X`` is one numba pass over the pairs (``(S X)[a] += w_p (x_a - x_b)``,
``(S X)[b] -= w_p (x_a - x_b)``, float64); ``X^T (S X)`` is one float64 GEMM.
This is the LMNN gradient's main term, and the pull term of ITML-style
updates.
"""

import numpy as np

from ._chunking import get_num_threads, run_tasks
from ._config import jit
from .distances import check_array, check_pairs


@jit
def _scatter_kernel(start, stop, X, rows, cols, weights, out):
    # out (this thread's own buffer) accumulates S X over the pairs start:stop.
    n_features = X.shape[1]
    diff = np.empty(n_features, dtype=np.float64)
    for p in range(start, stop):
        a = rows[p]
        b = cols[p]
        w = weights[p]
        for k in range(n_features):
            diff[k] = w * (np.float64(X[a, k]) - np.float64(X[b, k]))
        for k in range(n_features):
            out[a, k] += diff[k]
            out[b, k] -= diff[k]


def weighted_outer_sum(X, rows, cols, weights):
    """``sum_p w_p (x_rows[p] - x_cols[p])(x_rows[p] - x_cols[p])^T``, in float64.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    rows, cols : array-like of int, shape (n_pairs,)
    weights : array-like of float, shape (n_pairs,)

    Returns
    -------
    C : ndarray of shape (n_features, n_features), float64
        Symmetric. Accumulated in float64. The pairs are split over threads,
        each with its own ``(n_samples, n_features)`` float64 buffer, so the
        last bits depend on the number of threads.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels import weighted_outer_sum
    >>> X = np.array([[0.0, 0.0], [1.0, 2.0], [1.0, 0.0]])
    >>> weighted_outer_sum(X, [0, 1], [1, 2], [1.0, 0.5])
    array([[1., 2.],
           [2., 6.]])
    """
    X = check_array(X, "X")
    rows, cols = check_pairs(rows, cols, X.shape[0])
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if weights.shape != rows.shape:
        raise ValueError(
            f"weights must have one value per pair ({rows.shape[0]}), got shape "
            f"{weights.shape}."
        )
    n_pairs = rows.shape[0]
    n_parts = max(1, min(get_num_threads(), n_pairs // 4096))
    buffers = np.zeros((n_parts, *X.shape), dtype=np.float64)
    bounds = [(n_pairs * p) // n_parts for p in range(n_parts + 1)]

    run_tasks(
        [
            (
                _scatter_kernel,
                bounds[i],
                bounds[i + 1],
                X,
                rows,
                cols,
                weights,
                buffers[i],
            )
            for i in range(n_parts)
        ]
    )
    product = buffers[0]
    for index in range(1, n_parts):
        product += buffers[index]
    C = X.T @ product if X.dtype == np.float64 else X.T.astype(np.float64) @ product
    return (C + C.T) / 2.0
