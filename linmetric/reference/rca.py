"""Relevant Components Analysis: the paper's algorithm in plain NumPy.

The textbook form, written to be read and to serve as the oracle of the
tests; :mod:`linmetric._rca` computes the same map with one pass over the
chunklets and handles a singular covariance.

Notation (Bar-Hillel et al., 2005), Algorithm 1:

1. For each chunklet ``j`` of ``n_j`` points, subtract its mean ``m_j``
   from its points.
2. (Optional) reduce the dimension: keep the directions ``A`` that maximise
   ``|A^T S_t A| / |A^T C A|``, a Fisher criterion with the within-chunklet
   covariance ``C`` in place of the within-class scatter and the total
   scatter ``S_t``; they are the leading generalised eigenvectors of
   ``S_t a = lambda C a``.
3. Compute the covariance of the centred points, ``C = 1/p sum_j sum_i
   (x_ji - m_j)(x_ji - m_j)^T`` with ``p = sum_j n_j`` (eq. 1), in the
   reduced space.
4. The whitening transformation ``W = C^{-1/2}``; the RCA distance is
   ``(x - x')^T C^{-1} (x - x')``.

References
----------
.. [1] A. Bar-Hillel, T. Hertz, N. Shental and D. Weinshall, "Learning a
   Mahalanobis Metric from Equivalence Constraints", Journal of Machine
   Learning Research 6, 2005.
"""

import numpy as np
from scipy import linalg


def chunklet_covariance(X, chunks):
    """``C`` of eq. (1): chunklets are the ids >= 0 with two or more points."""
    d = X.shape[1]
    C = np.zeros((d, d))
    p = 0
    for j in np.unique(chunks[chunks >= 0]):
        points = X[chunks == j]
        if points.shape[0] < 2:
            continue
        centred = points - points.mean(axis=0)  # step 1
        C += centred.T @ centred
        p += points.shape[0]
    return C / p


def rca(X, chunks, n_components=None):
    """The RCA map; ``C`` must be non-singular (full rank).

    Returns ``L`` with ``L.T @ L = C^-1`` (no reduction), or the reduced map
    ``C_A^{-1/2} A^T`` with ``C_A = A^T C A``.
    """
    X = np.asarray(X, dtype=np.float64)
    C = chunklet_covariance(X, chunks)
    if n_components is None or n_components == X.shape[1]:
        w, U = linalg.eigh(C)
        return (U / np.sqrt(w)) @ U.T  # symmetric C^{-1/2}, step 4
    centred = X - X.mean(axis=0)
    S_t = centred.T @ centred / X.shape[0]
    eigenvalues, vectors = linalg.eigh(S_t, C)  # step 2
    A = vectors[:, np.argsort(eigenvalues)[::-1][:n_components]]
    C_A = A.T @ C @ A  # step 3, in the reduced space
    w, U = linalg.eigh(C_A)
    return (U / np.sqrt(w)) @ U.T @ A.T
