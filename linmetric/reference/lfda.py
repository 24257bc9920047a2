"""Local Fisher Discriminant Analysis: the paper's equations in plain NumPy.

The textbook form, written to be read and to serve as the oracle of the
tests. It builds the full ``n x n`` affinity and weight matrices and sums
the outer products pair by pair, so it is only for small data;
:mod:`linmetric._lfda` computes the same matrices class by class, on one
triangle of each class's affinity matrix or on blocks of its rows.

Notation (Sugiyama, 2007).

- Local scaling, section 4: ``sigma_i = ||x_i - x_i^(k)||`` with ``x_i^(k)``
  the k-th nearest neighbour of ``x_i`` (here, as in the author's code, in
  its own class), and affinity ``A_ij = exp(-||x_i - x_j||^2 / (sigma_i
  sigma_j))``.
- Weights, eqs. (18) and (19): ``W^w_ij = A_ij / n_c`` and ``W^b_ij = A_ij
  (1/n - 1/n_c)`` if ``y_i = y_j = c``; ``W^w_ij = 0`` and ``W^b_ij = 1/n``
  otherwise.
- Scatter matrices, eqs. (16) and (17): ``S = 1/2 sum_ij W_ij (x_i - x_j)
  (x_i - x_j)^T``.
- Transformation, eq. (20): the generalised eigenvectors ``S^b phi = lambda
  S^w phi`` of the largest eigenvalues; the 'weighted' embedding scales each
  by ``sqrt(lambda)``.

References
----------
.. [1] M. Sugiyama, "Dimensionality Reduction of Multimodal Labeled Data by
   Local Fisher Discriminant Analysis", Journal of Machine Learning Research
   8, 2007.
"""

import numpy as np
from scipy import linalg


def affinity_matrix(X, y, k):
    """``A_ij`` for pairs of the same class, 0 for other pairs."""
    n = X.shape[0]
    sq_dist = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    sigma = np.zeros(n)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if members.size < 2:
            continue
        k_c = min(k, members.size - 1)
        for i in members:
            others = np.sort(sq_dist[i, members[members != i]])
            sigma[i] = np.sqrt(others[k_c - 1])  # k-th nearest in the class
    A = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if y[i] != y[j]:
                continue
            denominator = sigma[i] * sigma[j]
            if denominator > 0:
                A[i, j] = np.exp(-sq_dist[i, j] / denominator)
            else:  # both scales 0: coinciding points are fully affine
                A[i, j] = 1.0 if sq_dist[i, j] == 0 else 0.0
    return A


def scatter_matrices(X, y, k):
    """The local within-class and between-class scatter, eqs. (16)-(19)."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    A = affinity_matrix(X, y, k)
    _, class_sizes = np.unique(y, return_inverse=False, return_counts=True)
    size = dict(zip(np.unique(y), class_sizes, strict=True))
    S_w = np.zeros((d, d))
    S_b = np.zeros((d, d))
    for i in range(n):
        for j in range(n):
            diff = X[i] - X[j]
            outer = np.outer(diff, diff)
            if y[i] == y[j]:
                n_c = size[y[i]]
                S_w += 0.5 * A[i, j] / n_c * outer
                S_b += 0.5 * A[i, j] * (1.0 / n - 1.0 / n_c) * outer
            else:
                S_b += 0.5 / n * outer
    return S_w, S_b


def lfda(X, y, n_components, k=7, regularization=1e-8):
    """The 'weighted' LFDA map, shape ``(n_components, n_features)``.

    ``S^w`` is regularised as in :class:`linmetric.LFDA` (eigenvalues
    floored at ``regularization`` times the largest), then
    :func:`scipy.linalg.eigh` solves the generalised problem directly.
    """
    S_w, S_b = scatter_matrices(X, y, k)
    w, U = linalg.eigh(S_w)
    w = np.maximum(w, regularization * w[-1])
    S_w = (U * w) @ U.T
    eigenvalues, phi = linalg.eigh(S_b, S_w)  # phi^T S_w phi = I
    order = np.argsort(eigenvalues)[::-1][:n_components]
    eigenvalues, phi = eigenvalues[order], phi[:, order]
    T = phi * np.sqrt(np.maximum(eigenvalues, 0))
    return T.T, eigenvalues
