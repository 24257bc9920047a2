"""Squared pair differences of the diagonal MMC, without materialising the differences.

The diagonal form of MMC sees the pairs only through the per-feature sums
``s_k = sum_S d_k^2`` over the similar pairs and the squares ``d_pk^2`` of
the dissimilar ones, with ``d = (x_i - x_j) / 2**exponent`` in float64 and
``exponent`` set by the largest absolute difference. One pass over the
points writes the squares of the unscaled differences (taken in float64)
and finds the largest difference; the caller then multiplies the squares by
``2**(-2 * exponent)``. Multiplying by a power of two changes no digit
and commutes with squaring and with rounded sums, so the result is that of
scaling first, exactly, as long as no square overflows or turns subnormal:
the caller takes NumPy's path unless the largest difference lies in
``[2**-300, 2**300]``, and a square below ``2**-1022`` (a difference below
``1e-154``, some 1e-64 of the largest or less) differs in the last digits
of a number that no sum notices.
"""

import numpy as np

from ._config import jit

# Dissimilar pairs whose squares are written to the output together.
BLOCK = 16


@jit
def squared_differences(X, rows, cols, similar, s, dissimilar_sums, out_t):
    """Squared differences: sums over the similar pairs, rows of the dissimilar.

    Pair ``p`` has difference ``d = X[rows[p]] - X[cols[p]]`` (in float64).
    ``s`` and ``dissimilar_sums`` (zeroed here) receive ``sum d^2`` over the
    similar and the dissimilar pairs, pair after pair; column ``j`` of
    ``out_t``, of shape ``(n_features, n_dissimilar)``, receives ``d^2`` of
    the ``j``-th dissimilar pair.

    Returns
    -------
    largest : float
        ``max |d|`` over all pairs and features (inf if a difference
        overflows).
    """
    n_features = X.shape[1]
    for k in range(n_features):
        s[k] = 0.0
        dissimilar_sums[k] = 0.0
    # The squares of BLOCK dissimilar pairs gather in a small buffer, a row
    # per pair, written to out_t a cache line per feature at a time: one
    # column of out_t at a time would touch a page per feature and pair.
    # Every inner loop runs along the features with no dependence between
    # them (the largest |d| is kept per feature), so it is vectorised.
    buffer = np.empty((BLOCK, n_features))
    largest = np.zeros(n_features)
    filled = 0
    written = 0
    for p in range(rows.shape[0]):
        x = X[rows[p]]
        y = X[cols[p]]
        if similar[p]:
            for k in range(n_features):
                d = np.float64(x[k]) - np.float64(y[k])
                largest[k] = max(largest[k], abs(d))
                s[k] += d * d
        else:
            row = buffer[filled]
            for k in range(n_features):
                d = np.float64(x[k]) - np.float64(y[k])
                largest[k] = max(largest[k], abs(d))
                row[k] = d * d
                dissimilar_sums[k] += d * d
            filled += 1
            if filled == BLOCK:
                _flush(buffer, filled, out_t, written)
                written += filled
                filled = 0
    _flush(buffer, filled, out_t, written)
    result = 0.0
    for k in range(n_features):
        result = max(result, largest[k])
    return result


@jit
def _flush(buffer, filled, out_t, start):
    for k in range(buffer.shape[1]):
        for i in range(filled):
            out_t[k, start + i] = buffer[i, k]


@jit
def scaled_rows(matrix, rows, weights, out):
    """``out[i] = matrix[rows[i]] * weights`` in one pass (gather and scale).

    ``out`` has at least ``len(rows)`` rows; each product is NumPy's.
    """
    for i in range(rows.shape[0]):
        source = matrix[rows[i]]
        target = out[i]
        for j in range(weights.shape[0]):
            target[j] = source[j] * weights[j]
