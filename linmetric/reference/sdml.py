"""Sparse Determinant Metric Learning (Qi, Tang, Zha, Chua, Zhang 2009), in NumPy.

SDML solves::

    min_{M > 0}  tr(M0^-1 M) - log det M + lambda ||M||_1,off
                 + eta tr(M X^T L X)

with ``X^T L X = (1 / n) sum_p y_p (x_p - x'_p)(x_p - x'_p)^T``, ``y_p = +1``
for a similar pair and -1 for a dissimilar one. With
``P = M0^-1 + eta X^T L X`` this is the graphical lasso
``min tr(P M) - log det M + lambda ||M||_1,off`` (eq. 9 of the paper), which
has a minimiser only when P is positive definite: P is scaled to unit
spectral norm and lifted by the smallest multiple of the identity that puts
its smallest eigenvalue at ``floor``.

The solver is plain proximal gradient (ISTA) with a fixed small step,
``step = lambda_min(M)^2``-sized, halved whenever the step would leave the
positive definite cone: slow on purpose. The fast version is
``linmetric._sdml.sparse_inverse`` (same fixed point, Barzilai-Borwein steps).
"""

import numpy as np


def pair_matrix(diffs, labels):
    """``X^T L X = (1 / n) sum_p y_p v_p v_p^T`` for differences ``v_p``."""
    matrix = np.zeros((diffs.shape[1], diffs.shape[1]))
    for v, label in zip(diffs, labels, strict=True):
        matrix += label * np.outer(v, v)
    return matrix / len(labels)


def lifted(P, floor):
    """``P / ||P||_2 + s I`` with the smallest ``s >= 0`` giving eigenvalues >= floor."""
    eigenvalues = np.linalg.eigvalsh(P)
    scale = np.abs(eigenvalues).max()
    shift = max(0.0, floor - eigenvalues[0] / scale)
    return P / scale + shift * np.eye(P.shape[0]), scale, shift


def soft_threshold_off_diagonal(A, threshold):
    """The proximal map of ``threshold * ||.||_1,off``."""
    out = np.sign(A) * np.maximum(np.abs(A) - threshold, 0.0)
    np.fill_diagonal(out, np.diag(A))
    return out


def sdml(diffs, labels, prior_inverse, eta, lam, floor=0.1, n_iter=20000):
    """The SDML metric ``M`` for pair differences ``diffs`` (shape (n, d)).

    Returns ``M`` in the units of the data: the minimiser for the lifted,
    scaled ``P``, divided by the scale.
    """
    P = prior_inverse + eta * pair_matrix(diffs, labels)
    P, scale, _ = lifted(P, floor)
    M = np.diag(1.0 / np.diag(P))
    for _ in range(n_iter):
        # A safe step: smaller than lambda_min(M)^2, the inverse Lipschitz
        # constant of the gradient P - M^-1 near M.
        step = 0.5 * np.linalg.eigvalsh(M)[0] ** 2
        gradient = P - np.linalg.inv(M)
        while True:
            candidate = soft_threshold_off_diagonal(M - step * gradient, step * lam)
            if np.linalg.eigvalsh(candidate)[0] > 0:
                break
            step /= 2
        if np.abs(candidate - M).max() < 1e-13 * np.abs(M).max():
            M = candidate
            break
        M = candidate
    return M / scale
