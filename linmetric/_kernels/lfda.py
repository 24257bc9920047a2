"""LFDA's local scatter of one class, on one triangle of its affinity matrix.

The affinity matrix ``A`` of a class is symmetric, so only its lower
triangle is ever formed: the Gram matrix comes from one SYRK (half the
work of a GEMM), ``A X_c`` from one TRMM on the triangle (again half), and
the passes in between (distances, the k-th neighbour, the exponent, the
degrees) read and write the triangle row by row. The caller keeps the
triangle in the lower half of a C-ordered ``n_c x n_c`` array ``T``, whose
transpose is the Fortran-ordered upper triangle BLAS works on.

The local scale is exact: a first scan (the one that turns products into
distances) finds, from the GEMM values and their error bound (see :mod:`linmetric._kernels.distances`), a threshold every
true k-th neighbour lies under; a second scan recomputes in float64, from the
rows themselves, only the pairs that may lie under it (as
:mod:`linmetric._kernels.neighbors` does for whole neighbour lists).

Every kernel is serial; LFDA runs the classes on threads.
"""

import numpy as np

from ._config import jit, jit_reassoc
from .distances import exact_sq_distance


@jit
def _insert_sorted(values, value):
    # values is sorted; insert value, drop the last entry.
    position = values.shape[0] - 1
    while position > 0 and values[position - 1] > value:
        values[position] = values[position - 1]
        position -= 1
    values[position] = value


@jit
def triangle_kth_distance(T, X, norms, k, factor, out):
    """Squared distances on a triangle, and each row's exact k-th neighbour distance.

    On entry ``T``'s lower triangle holds the products ``x_i . x_j`` (GEMM,
    each distance it gives within ``factor * (norms[i] + norms[j])`` of the
    exact one); on exit ``max(norms[i] + norms[j] - 2 x_i . x_j, 0)`` for
    ``j < i`` and an exact 0 on the diagonal (``x < 0``, not ``max``, keeps
    NaN as NaN). ``X`` holds the rows; ``1 <= k < n``. ``out`` (float64)
    receives the exact k-th smallest squared distance from each row to the
    other rows, duplicates included.
    """
    n = T.shape[0]
    bounds = np.full((n, k), np.inf)
    worst = np.full(n, np.inf)  # bounds[:, k - 1], contiguous
    # Scan 1: the distances, and the k-th smallest upper bound of each row
    # over both halves of its row of the full matrix.
    for i in range(n):
        norm_i = norms[i]
        for j in range(i):
            value = norm_i + norms[j] - 2.0 * T[i, j]
            if value < 0.0:
                value = 0.0
            T[i, j] = value
            bound = value + factor * (norm_i + norms[j])
            if bound < worst[i]:
                _insert_sorted(bounds[i], bound)
                worst[i] = bounds[i, k - 1]
            if bound < worst[j]:
                _insert_sorted(bounds[j], bound)
                worst[j] = bounds[j, k - 1]
        T[i, i] = 0.0
    # Scan 2: exact distances of the pairs whose lower bound is under a
    # row's threshold; the k smallest of them per row.
    best = np.full((n, k), np.inf)
    for i in range(n):
        norm_i = norms[i]
        threshold_i = worst[i]
        for j in range(i):
            lower = T[i, j] - factor * (norm_i + norms[j])
            for_i = lower <= threshold_i
            for_j = lower <= worst[j]
            if for_i or for_j:
                exact = exact_sq_distance(X, i, X, j)
                if for_i and exact < best[i, k - 1]:
                    _insert_sorted(best[i], exact)
                if for_j and exact < best[j, k - 1]:
                    _insert_sorted(best[j], exact)
    for i in range(n):
        out[i] = best[i, k - 1]


@jit
def triangle_exponents(T, inverse_scales):
    """``T[i, j] = -(T[i, j] s_i) s_j`` for ``j <= i``, ``s`` the inverse scales.

    The argument of the affinity's exponential. In this order a zero
    distance stays zero (so the diagonal's affinity is 1) even where
    ``s_i s_j`` overflows.
    """
    for i in range(T.shape[0]):
        scale_i = inverse_scales[i]
        for j in range(i + 1):
            T[i, j] = -(T[i, j] * scale_i) * inverse_scales[j]


@jit_reassoc
def triangle_degrees(T, out):
    """``out[i] = sum_j A_ij`` (float64) for the symmetric ``A`` of ``T``'s lower triangle.

    The sums may be reordered (``jit_reassoc``), so that they vectorise.
    """
    out[:] = 0.0
    for i in range(T.shape[0]):
        row = 0.0
        for j in range(i):
            value = np.float64(T[i, j])
            row += value
            out[j] += value
        out[i] += row + np.float64(T[i, i])
