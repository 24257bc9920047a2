"""Reference versions of the kernels in :mod:`linmetric._kernels`.

Each function is the direct textbook form, in float64, with no blocking and
no tricks: the whole ``n x n`` (or ``n x n x d``) array is built at once. They
are slow and memory-hungry on purpose; the tests hold the fast kernels to
them.
"""

import numpy as np


def sq_distances(A, B=None):
    """``D[i, j] = ||a_i - b_j||^2``, summing squared differences in float64."""
    A = np.asarray(A, dtype=np.float64)
    B = A if B is None else np.asarray(B, dtype=np.float64)
    differences = A[:, None, :] - B[None, :, :]
    return np.sum(differences**2, axis=2)


def target_neighbors(X, y, n_neighbors):
    """The ``n_neighbors`` nearest same-class rows of each row (not itself).

    Sorted by distance, ties by index (``np.lexsort`` sorts by its last key
    first). Returns ``(indices, sq_distances)``.
    """
    y = np.asarray(y)
    D = sq_distances(X)
    n_samples = D.shape[0]
    indices = np.empty((n_samples, n_neighbors), dtype=np.intp)
    for i in range(n_samples):
        candidates = np.flatnonzero((y == y[i]) & (np.arange(n_samples) != i))
        if candidates.size < n_neighbors:
            raise ValueError(f"class {y[i]} has {candidates.size + 1} members")
        order = np.lexsort((candidates, D[i, candidates]))
        indices[i] = candidates[order[:n_neighbors]]
    return indices, np.take_along_axis(D, indices, axis=1)


def find_impostors(Z, y, radii):
    """All ``(i, l)`` with ``y[i] != y[l]`` and ``||z_i - z_l||^2 < radii[i]``.

    This is LMNN's impostor set (Weinberger and Saul, 2009, eq. 13, with
    ``radii[i]`` the farthest target neighbour's distance plus the margin).
    ``np.nonzero`` returns the pairs sorted by ``(row, col)``.
    """
    y = np.asarray(y)
    D = sq_distances(Z)
    is_impostor = (y[:, None] != y[None, :]) & (D < np.asarray(radii)[:, None])
    rows, cols = np.nonzero(is_impostor)
    return rows, cols, D[rows, cols]


def sq_distances_of_pairs(Z, rows, cols):
    """``||z_rows[p] - z_cols[p]||^2`` for each pair, in float64."""
    Z = np.asarray(Z, dtype=np.float64)
    return np.sum((Z[rows] - Z[cols]) ** 2, axis=1)


def weighted_outer_sum(X, rows, cols, weights):
    """``sum_p w_p (x_a - x_b)(x_a - x_b)^T``, one outer product at a time."""
    X = np.asarray(X, dtype=np.float64)
    C = np.zeros((X.shape[1], X.shape[1]))
    for a, b, w in zip(rows, cols, weights, strict=True):
        difference = X[a] - X[b]
        C += w * np.outer(difference, difference)
    return C
