"""KISSME, Köstinger et al. (2012), in NumPy.

For a pair ``(x_i, x_j)`` with difference ``x_ij = x_i - x_j``, KISSME
compares the hypotheses "similar" (``H_0``) and "dissimilar" (``H_1``),
each a zero-mean Gaussian on ``x_ij``::

    Sigma_S = 1/|S| sum_{(i,j) in S} x_ij x_ij^T              (eq. 10)
    Sigma_D = 1/|D| sum_{(i,j) in D} x_ij x_ij^T              (eq. 11)

The log-likelihood ratio is, up to a constant, ``x_ij^T M x_ij`` with::

    M = Sigma_S^-1 - Sigma_D^-1                               (eq. 12)

and ``M`` is made positive semi-definite by clipping its negative
eigenvalues (the paper's re-projection onto the PSD cone).

Pairs from labels: all pairs (``pair_covariances``), or each point with
its ``k`` nearest points of its class and its ``k`` nearest points of the
other classes (``neighbor_pair_covariances``, the default of
:class:`linmetric.KISSME`).

This module enumerates every pair one by one: slow on purpose. The fast
version is :class:`linmetric.KISSME`, which computes the same covariances
from class scatters. Both add the ridge ``epsilon I``, ``epsilon =
regularization * (tr Sigma_S + tr Sigma_D) / (2 d)``, to the covariances (the
paper has none).

References
----------
M. Köstinger, M. Hirzer, P. Wohlhart, P. M. Roth and H. Bischof, "Large
scale metric learning from equivalence constraints", CVPR 2012.
"""

import numpy as np


def pair_covariances(X, y):
    """``Sigma_S`` and ``Sigma_D`` over all pairs ``i < j`` of rows of X."""
    n_features = X.shape[1]
    similar = np.zeros((n_features, n_features))
    dissimilar = np.zeros((n_features, n_features))
    n_similar = n_dissimilar = 0
    for i in range(X.shape[0]):
        for j in range(i + 1, X.shape[0]):
            x_ij = X[i] - X[j]
            if y[i] == y[j]:
                similar += np.outer(x_ij, x_ij)
                n_similar += 1
            else:
                dissimilar += np.outer(x_ij, x_ij)
                n_dissimilar += 1
    return similar / n_similar, dissimilar / n_dissimilar


def neighbor_pair_covariances(X, y, k):
    """``Sigma_S`` and ``Sigma_D`` over each point's nearest neighbours.

    Similar pairs: each ``i`` with its ``k`` nearest points of its class;
    dissimilar pairs: each ``i`` with its ``k`` nearest points of the other
    classes (all of them where there are fewer); ties go to the smaller
    index. A pair found from both of its points counts twice.
    """
    n_features = X.shape[1]
    sums = [np.zeros((n_features, n_features)), np.zeros((n_features, n_features))]
    counts = [0, 0]
    for i in range(X.shape[0]):
        distances = ((X - X[i]) ** 2).sum(axis=1)
        order = np.lexsort((np.arange(X.shape[0]), distances))  # ties: index
        same = [j for j in order if y[j] == y[i] and j != i][:k]
        other = [j for j in order if y[j] != y[i]][:k]
        for kind, neighbours in enumerate((same, other)):
            for j in neighbours:
                x_ij = X[i] - X[j]
                sums[kind] += np.outer(x_ij, x_ij)
                counts[kind] += 1
    return sums[0] / counts[0], sums[1] / counts[1]


def kissme_metric(sigma_similar, sigma_dissimilar, regularization=1e-3):
    """``M = Sigma_S^-1 - Sigma_D^-1`` (eq. 12), projected onto the PSD cone."""
    n_features = sigma_similar.shape[0]
    epsilon = regularization * np.trace(sigma_similar + sigma_dissimilar)
    epsilon /= 2 * n_features
    identity = np.eye(n_features)
    M = np.linalg.inv(sigma_similar + epsilon * identity) - np.linalg.inv(
        sigma_dissimilar + epsilon * identity
    )
    w, V = np.linalg.eigh((M + M.T) / 2)
    return V @ np.diag(np.maximum(w, 0.0)) @ V.T
