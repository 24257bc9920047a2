"""Least Squared-residual Metric Learning (Liu et al. 2012), in NumPy.

For quadruplets ``(a, b, c, d)`` meaning ``d_M(a, b) < d_M(c, d)`` with
weights ``w_q`` (summing to one), LSML minimises::

    f(M) = sum_q w_q H(d_M(a_q, b_q) - d_M(c_q, d_q)) + lambda D_ld(M, M0)

with ``d_M(x, y) = sqrt((x - y)^T M (x - y))``, ``H(r) = max(r, 0)^2`` and
``D_ld(M, M0) = tr(M M0^-1) - log det(M M0^-1) - d``. Its gradient in M:

    df/dM = sum_q 2 w_q r_q (v_ab v_ab^T / (2 d_ab) - v_cd v_cd^T / (2 d_cd))
            + lambda (M0^-1 - M^-1)

over the violated quadruplets (``r_q = d_ab - d_cd > 0``). The paper descends
this gradient and projects M back onto the PSD cone; ``lsml`` below does
that, with a backtracking step. Slow on purpose. The fast version works on
``L`` with ``M = L^T L`` (``linmetric._lsml.lsml_loss_grad``).
"""

import numpy as np


def objective(M, quadruplets, weights, prior, regularization):
    """``f(M)`` for quadruplets of shape (n, 4, d) and weights summing to one."""
    loss = 0.0
    for (a, b, c, d), w in zip(quadruplets, weights, strict=True):
        residual = np.sqrt((a - b) @ M @ (a - b)) - np.sqrt((c - d) @ M @ (c - d))
        loss += w * max(residual, 0.0) ** 2
    prior_inverse = np.linalg.inv(prior)
    _, logdet = np.linalg.slogdet(M @ prior_inverse)
    divergence = np.trace(M @ prior_inverse) - logdet - M.shape[0]
    return loss + regularization * divergence


def gradient(M, quadruplets, weights, prior, regularization):
    """``df/dM``."""
    grad = np.zeros_like(M)
    for (a, b, c, d), w in zip(quadruplets, weights, strict=True):
        v_ab, v_cd = a - b, c - d
        d_ab, d_cd = np.sqrt(v_ab @ M @ v_ab), np.sqrt(v_cd @ M @ v_cd)
        if d_ab > d_cd:
            grad += w * (d_ab - d_cd) * np.outer(v_ab, v_ab) / d_ab
            if d_cd > 0:
                grad -= w * (d_ab - d_cd) * np.outer(v_cd, v_cd) / d_cd
    return grad + regularization * (np.linalg.inv(prior) - np.linalg.inv(M))


def project_psd(M, floor=1e-10):
    """The nearest symmetric matrix with eigenvalues at least ``floor``."""
    eigenvalues, vectors = np.linalg.eigh((M + M.T) / 2)
    return (vectors * np.maximum(eigenvalues, floor)) @ vectors.T


def lsml(quadruplets, weights, prior, regularization, n_iter=2000):
    """Projected gradient descent on M from the prior, with backtracking."""
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    M, step = prior.copy(), 1.0
    f = objective(M, quadruplets, weights, prior, regularization)
    for _ in range(n_iter):
        grad = gradient(M, quadruplets, weights, prior, regularization)
        while step > 1e-20:
            candidate = project_psd(M - step * grad)
            f_new = objective(candidate, quadruplets, weights, prior, regularization)
            if f_new <= f - 1e-4 * np.vdot(grad, M - candidate):
                break
            step /= 2
        if f - f_new < 1e-15 * abs(f):
            break
        M, f, step = candidate, f_new, 2 * step
    return M
