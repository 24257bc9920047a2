"""Leave-one-out Gaussian kernel regression of MLKR, fused row by row.

For each row ``i`` of the projected data ``Z = X A^T`` (``n x k``), one pass
computes the squared distances ``d_ij = ||z_i - z_j||^2`` to every other row
(sums of squared differences in float64: ``k`` is small, and no GEMM
expansion loses the precision of near pairs), the leave-one-out softmax
``p_ij = exp(min_l d_il - d_ij) / sum_j exp(min_l d_il - d_ij)``, the
prediction ``yhat_i = sum_j p_ij y_j``, and the gradient weights
``W_ij = (yhat_i - y_i) p_ij (yhat_i - y_j)``, which are accumulated into
``S Z`` with ``S = D_r + D_c - W - W^T`` and never stored. The gradient of
``sum_i (y_i - yhat_i)^2`` is then ``4 (S Z)^T X``.

Rows are split over threads; the terms of ``W^T Z`` and of the column sums,
which every row adds to all rows, go to one buffer per thread, summed at
the end. The result therefore changes with the number of threads by
rounding only. Memory: ``O(n_threads * n * k)``, never ``n^2``.
"""

import math

import numpy as np

from ._chunking import get_num_threads, run_tasks, split_range
from ._config import jit


@jit
def _loo_rows_kernel(
    start, stop, Z, y, residuals, SZ_rows, SZ_columns, column_sums, row_buffer
):
    n, k = Z.shape
    for i in range(start, stop):
        smallest = np.inf
        for j in range(n):
            if j == i:
                continue
            distance = 0.0
            for c in range(k):
                diff = Z[i, c] - Z[j, c]
                distance += diff * diff
            row_buffer[j] = distance
            smallest = min(smallest, distance)
        total = 0.0
        weighted = 0.0
        for j in range(n):
            if j == i:
                continue
            kernel = math.exp(smallest - row_buffer[j])
            row_buffer[j] = kernel
            total += kernel
            weighted += kernel * y[j]
        y_hat = weighted / total
        residual = y_hat - y[i]
        residuals[i] = residual
        scale = residual / total
        row_sum = 0.0
        for j in range(n):
            if j == i:
                continue
            weight = scale * row_buffer[j] * (y_hat - y[j])
            row_sum += weight
            column_sums[j] += weight
            for c in range(k):
                SZ_rows[i, c] -= weight * Z[j, c]
                SZ_columns[j, c] -= weight * Z[i, c]
        for c in range(k):
            SZ_rows[i, c] += row_sum * Z[i, c]


def loo_kernel_regression(Z, y, *, n_threads=None):
    """Residuals of leave-one-out kernel regression, and ``S Z`` of its gradient.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components), float64
        The projected data ``X A^T``.
    y : ndarray of shape (n_samples,), float64
        Targets.
    n_threads : int, optional
        Threads to split the rows over; default
        :func:`linmetric._kernels._chunking.get_num_threads`.

    Returns
    -------
    residuals : ndarray of shape (n_samples,)
        ``yhat_i - y_i``.
    SZ : ndarray of shape (n_samples, n_components)
        ``S Z``; the loss gradient with respect to ``A`` is ``4 SZ.T @ X``.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.mlkr import loo_kernel_regression
    >>> Z = np.array([[0.0], [0.1], [5.0]])
    >>> residuals, _ = loo_kernel_regression(Z, np.array([1.0, 1.0, 0.0]))
    >>> (np.round(residuals, 3) + 0.0).tolist()
    [0.0, 0.0, 1.0]
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    n_samples, n_components = Z.shape
    if y.shape != (n_samples,):
        raise ValueError(
            f"y must have shape ({n_samples},), one target per row of Z; got "
            f"shape {y.shape}."
        )
    if n_samples < 2:
        raise ValueError(
            f"Leave-one-out regression needs at least 2 samples; got {n_samples}."
        )
    if n_threads is None:
        n_threads = get_num_threads()
    ranges = split_range(n_samples, max(1, min(n_threads, n_samples // 64)))
    residuals = np.empty(n_samples)
    SZ = np.zeros((n_samples, n_components))
    buffers = [
        (
            np.zeros((n_samples, n_components)),
            np.zeros(n_samples),
            np.empty(n_samples),
        )
        for _ in ranges
    ]
    run_tasks(
        [
            (_loo_rows_kernel, start, stop, Z, y, residuals, SZ, *buffer)
            for (start, stop), buffer in zip(ranges, buffers, strict=True)
        ]
    )
    for columns, column_sums, _ in buffers:
        SZ += columns
        SZ += column_sums[:, None] * Z
    return residuals, SZ
