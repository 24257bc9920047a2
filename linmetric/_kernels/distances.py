"""Squared Euclidean distances in blocks: BLAS for the product, numba for the rest.

``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b``: the ``a.b`` block is one GEMM in
the input's dtype; adding the norms (accumulated in float64) and clamping at
zero is one fused numba pass. Blocks of rows are sized by the byte budget, so
no ``n x n`` array is ever made.

Precision. With unit roundoff ``u`` of the input's dtype (``2**-24`` for
float32, ``2**-53`` for float64) and ``d`` features, every GEMM-based value
differs from the exact squared distance by at most
``error_bound = (2 d + 8) u (||a||^2 + ||b||^2)`` (the standard bound on a
length-``d`` dot product, doubled for safety). Near points lose relative
precision: in float32 two points at distance ``1e-3`` of norm ``1`` may come
out as 0. The neighbour and impostor searches use this bound to recheck, in
exact float64 arithmetic, every pair whose outcome it could change.
:func:`sq_distances_of_pairs` computes exact values (float64 sums of squared
differences) for given pairs.
"""

import numpy as np

from ._chunking import rows_per_chunk, run_on_row_ranges
from ._config import jit, jit_reassoc


def as_float_matrix(X, name, *, dtype=None):
    """Make ``X`` a C-contiguous 2-D float32/float64 array; return it.

    Float32 and float64 are kept; any other dtype becomes float64, or
    ``dtype`` when given.
    """
    X = np.asarray(X)
    if dtype is None:
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array, got an array of shape {X.shape}."
        )
    return np.ascontiguousarray(X, dtype=dtype)


def check_pair_of_arrays(A, B):
    """Validate ``A`` and ``B`` (None means ``A``) to one common float dtype."""
    A = as_float_matrix(A, "A")
    if B is None:
        return A, None
    B = np.asarray(B)
    dtype = np.result_type(A.dtype, B.dtype if B.dtype.kind == "f" else np.float64)
    A = as_float_matrix(A, "A", dtype=dtype)
    B = as_float_matrix(B, "B", dtype=dtype)
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"A and B must have the same number of columns, got A with "
            f"{A.shape[1]} and B with {B.shape[1]}."
        )
    return A, B


def check_pairs(rows, cols, n_samples):
    """Validate pair index arrays: same length, 1-D, in ``[0, n_samples)``."""
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    cols = np.ascontiguousarray(cols, dtype=np.intp)
    if rows.ndim != 1 or rows.shape != cols.shape:
        raise ValueError(
            f"rows and cols must be 1-D arrays of the same length, got shapes "
            f"{rows.shape} and {cols.shape}."
        )
    for name, index in (("rows", rows), ("cols", cols)):
        if index.size and (index.min() < 0 or index.max() >= n_samples):
            raise ValueError(
                f"{name} must index rows of an array with {n_samples} rows, got "
                f"values in [{index.min()}, {index.max()}]."
            )
    return rows, cols


def error_factor(dtype, n_features):
    """Factor ``(2 d + 8) u`` of the GEMM error bound (see module docstring)."""
    return (2.0 * n_features + 8.0) * float(np.finfo(dtype).eps) / 2.0


@jit
def _row_norms_kernel(start, stop, X, out):
    for i in range(start, stop):
        total = 0.0
        for k in range(X.shape[1]):
            value = np.float64(X[i, k])
            total += value * value
        out[i] = total


def row_norms_sq(X):
    """Squared Euclidean norm of each row, accumulated in float64.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64

    Returns
    -------
    norms : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels import row_norms_sq
    >>> row_norms_sq(np.array([[3.0, 4.0], [0.0, 1.0]]))
    array([25.,  1.])
    """
    X = as_float_matrix(X, "X")
    out = np.empty(X.shape[0], dtype=np.float64)
    run_on_row_ranges(_row_norms_kernel, X.shape[0], X, out, row_work=X.shape[1])
    return out


@jit
def _add_norms_kernel(start, stop, block, row_norms, col_norms, diagonal_offset):
    # block holds a.b on entry, ||a||^2 + ||b||^2 - 2 a.b clamped at 0 on exit.
    # ``x < 0`` (not ``x <= 0`` or max) keeps NaN as NaN.
    for i in range(start, stop):
        norm_i = row_norms[i]
        for j in range(block.shape[1]):
            value = norm_i + col_norms[j] - 2.0 * block[i, j]
            if value < 0.0:
                value = 0.0
            block[i, j] = value
        if diagonal_offset >= 0:
            # self-distances are exactly 0, not the expansion's rounding error
            block[i, i + diagonal_offset] = 0.0


# The fused pass after each GEMM reads the block back; a block that stays in
# cache makes that pass cheap. Fewer rows than _MIN_GEMM_ROWS would slow the
# GEMM itself more than the cache saves.
_CACHE_BYTES = 8 * 2**20
_MIN_GEMM_ROWS = 128


def block_rows(bytes_per_row, working_memory, n_rows):
    """Rows per block: within the budget, and cache-sized when that allows."""
    budget_rows = rows_per_chunk(bytes_per_row, working_memory, max_rows=n_rows)
    cache_rows = max(_MIN_GEMM_ROWS, _CACHE_BYTES // max(int(bytes_per_row), 1))
    return max(1, min(budget_rows, cache_rows))


def _distance_block(A, start, stop, B, row_norms, col_norms, same, out=None):
    block = np.matmul(A[start:stop], B.T, out=out)
    run_on_row_ranges(
        _add_norms_kernel,
        stop - start,
        block,
        row_norms[start:stop],
        col_norms,
        start if same else -1,
        row_work=block.shape[1],
    )
    return block


def _blocked(A, B, working_memory):
    """What both blocked distance routines start from.

    The checked ``A`` and ``B`` (``A`` itself when None), whether they are
    the same array, their squared row norms, and the ``(start, stop)`` row
    ranges of ``A``'s blocks within ``working_memory``.
    """
    A, B = check_pair_of_arrays(A, B)
    same = B is None
    if same:
        B = A
    row_norms = row_norms_sq(A)
    col_norms = row_norms if same else row_norms_sq(B)
    n_rows = block_rows(B.shape[0] * A.itemsize, working_memory, A.shape[0])
    ranges = [
        (start, min(start + n_rows, A.shape[0]))
        for start in range(0, A.shape[0], n_rows)
    ]
    return A, B, same, row_norms, col_norms, ranges


def sq_distance_blocks(A, B=None, *, working_memory=None):
    """Squared Euclidean distances from blocks of rows of ``A`` to all of ``B``.

    The product ``A[start:stop] @ B.T`` runs in BLAS in the input's dtype; the
    norms (float64) are added and the result clamped at zero in one numba pass.

    Parameters
    ----------
    A : ndarray of shape (n_samples_a, n_features), float32 or float64
    B : ndarray of shape (n_samples_b, n_features) or None
        None means ``A`` (and the diagonal is then exactly zero).
    working_memory : float or None
        Budget in MiB for one block; None means
        ``sklearn.get_config()["working_memory"]``.

    Yields
    ------
    start, stop : int
        The rows ``A[start:stop]`` the block belongs to.
    block : ndarray of shape (stop - start, n_samples_b)
        Squared distances, in the input's dtype, ``>= 0``. Each block is a new
        array. Error bound: see the module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels import sq_distance_blocks
    >>> A = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    >>> for start, stop, block in sq_distance_blocks(A):
    ...     print(start, stop, block.tolist())
    0 3 [[0.0, 25.0, 1.0], [25.0, 0.0, 20.0], [1.0, 20.0, 0.0]]
    """
    A, B, same, row_norms, col_norms, ranges = _blocked(A, B, working_memory)
    for start, stop in ranges:
        yield (
            start,
            stop,
            _distance_block(A, start, stop, B, row_norms, col_norms, same),
        )


@jit_reassoc
def exact_sq_distance(X, i, Y, j):
    """``||X[i] - Y[j]||^2`` as a float64 sum of squared differences.

    The one exact row-distance loop of the kernels. The sum may be reordered
    so that it vectorises (``jit_reassoc``): the order of a sum of squares
    changes it by rounding only.
    """
    total = 0.0
    for k in range(X.shape[1]):
        diff = np.float64(X[i, k]) - np.float64(Y[j, k])
        total += diff * diff
    return total


@jit
def _pair_distances_kernel(start, stop, Z, rows, cols, out):
    for p in range(start, stop):
        out[p] = exact_sq_distance(Z, rows[p], Z, cols[p])


def sq_distances_of_pairs(Z, rows, cols, *, dtype=None, check_indices=True):
    """Exact squared distances ``||Z[rows[p]] - Z[cols[p]]||^2`` of given pairs.

    Sums of squared differences accumulated in float64 (no expansion, so no
    cancellation), stored in ``dtype``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features), float32 or float64
    rows, cols : array-like of int, shape (n_pairs,)
    dtype : {None, numpy.float32, numpy.float64}, default=None
        The dtype of the result; None means ``Z``'s.
    check_indices : bool, default=True
        Check that the indices are rows of ``Z``. False skips the check (and
        any copy) for ``intp`` index arrays the caller built itself, as LMNN
        does on every evaluation of its loss.

    Returns
    -------
    sq_dists : ndarray of shape (n_pairs,)

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels import sq_distances_of_pairs
    >>> Z = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    >>> sq_distances_of_pairs(Z, [0, 1], [1, 2])
    array([25., 20.])
    """
    Z = as_float_matrix(Z, "Z")
    if check_indices:
        rows, cols = check_pairs(rows, cols, Z.shape[0])
    out = np.empty(rows.shape[0], dtype=Z.dtype if dtype is None else dtype)
    run_on_row_ranges(
        _pair_distances_kernel, rows.shape[0], Z, rows, cols, out, row_work=Z.shape[1]
    )
    return out
