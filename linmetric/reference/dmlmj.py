"""DMLMJ, Nguyen, Morell and De Baets (2017), in NumPy.

The positive and negative difference spaces hold ``x_i - x_j`` for ``x_j``
among the ``k`` nearest neighbours of ``x_i`` of the same class, and of the
other classes (section 3). Their Gaussian models have covariances::

    Sigma_S = 1/|S| sum_{(i,j) in S} (x_i - x_j)(x_i - x_j)^T
    Sigma_D = 1/|D| sum_{(i,j) in D} (x_i - x_j)(x_i - x_j)^T

and the Jeffrey divergence of their images under ``x -> L x`` is::

    J(L) = 1/2 tr((L Sigma_S L^T)^-1 L Sigma_D L^T)
         + 1/2 tr((L Sigma_D L^T)^-1 L Sigma_S L^T) - m.

Its maximiser is spanned by the eigenvectors of ``Sigma_S^-1 Sigma_D`` with
the largest ``lambda + 1 / lambda`` (Theorem 1). Here: brute-force
neighbours from the full distance matrix (ties to the smaller index), the
non-symmetric eigenproblem, vectors scaled to ``v^T Sigma_S v = 1``. Slow on
purpose; the fast version is :class:`linmetric.DMLMJ`. Both add the same
relative ridge to the covariances (the paper has none).

References
----------
B. Nguyen, C. Morell and B. De Baets, "Supervised distance metric learning
through maximization of the Jeffrey divergence", Pattern Recognition 64
(2017), 215-225.
"""

import numpy as np


def neighbor_pairs(X, y, k):
    """``(i, j)`` for the ``k`` nearest same-class and other-class ``j`` of ``i``."""
    distances = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    similar, dissimilar = [], []
    for i in range(X.shape[0]):
        order = np.argsort(distances[i], kind="stable")
        same = [j for j in order if y[j] == y[i] and j != i]
        other = [j for j in order if y[j] != y[i]]
        similar += [(i, j) for j in same[:k]]
        dissimilar += [(i, j) for j in other[:k]]
    return similar, dissimilar


def difference_covariance(X, pairs):
    """``1/|P| sum_{(i,j) in P} (x_i - x_j)(x_i - x_j)^T``."""
    diffs = np.array([X[i] - X[j] for i, j in pairs])
    return diffs.T @ diffs / len(pairs)


def jeffrey_divergence(L, sigma_similar, sigma_dissimilar):
    """``J(L)`` between ``N(0, L Sigma_S L^T)`` and ``N(0, L Sigma_D L^T)``."""
    S = L @ sigma_similar @ L.T
    D = L @ sigma_dissimilar @ L.T
    return 0.5 * (np.trace(np.linalg.solve(S, D)) + np.trace(np.linalg.solve(D, S)))


def dmlmj(X, y, n_components, k=5, regularization=1e-3):
    """The rows of ``L`` and their eigenvalues ``lambda``."""
    similar, dissimilar = neighbor_pairs(X, y, k)
    sigma_s = difference_covariance(X, similar)
    sigma_d = difference_covariance(X, dissimilar)
    epsilon = regularization * np.trace(sigma_s + sigma_d) / (2 * X.shape[1])
    sigma_s += epsilon * np.eye(X.shape[1])
    sigma_d += epsilon * np.eye(X.shape[1])
    values, vectors = np.linalg.eig(np.linalg.solve(sigma_s, sigma_d))
    values, vectors = values.real, vectors.real
    order = np.argsort(-(values + 1 / values), kind="stable")[:n_components]
    vectors = vectors[:, order]
    vectors /= np.sqrt(np.einsum("ij,ik,kj->j", vectors, sigma_s, vectors))
    return vectors.T, values[order], sigma_s, sigma_d
