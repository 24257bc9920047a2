"""Information-Theoretic Metric Learning, Algorithm 1 of Davis et al. (2007), in NumPy.

ITML solves::

    min_{M, xi}  D_ld(M, M0) + gamma * D_ld(diag(xi), diag(xi0))
    s.t.         (x_a - x_b)^T M (x_a - x_b) <= xi_c   for similar pairs c
                 (x_a - x_b)^T M (x_a - x_b) >= xi_c   for dissimilar pairs c

with the LogDet divergence ``D_ld(A, B) = tr(A B^-1) - log det(A B^-1) - n``
and ``xi0`` the bounds (``u`` for similar pairs, ``l`` for dissimilar ones).
Algorithm 1 cycles through the constraints and projects onto each in turn
(Bregman's method, with one dual variable ``lambda_c >= 0`` per constraint).

Step 3.4 of the printed Algorithm 1 reads
``alpha = min(lambda, delta / 2 * (1 / p - gamma / xi))``. The exact LogDet
projection (derived below, and used in the authors' released code) is
``alpha = min(lambda, delta * gamma / (gamma + 1) * (1 / p - 1 / xi))``; this
module implements the exact form. Derivation: the projection changes
``M^-1`` by ``-delta * alpha * v v^T`` and ``1 / xi`` by ``delta * alpha /
gamma``; by Sherman-Morrison the new squared distance is ``p / (1 - delta *
alpha * p)``, and setting it equal to the new ``xi`` gives the formula.

This is slow on purpose: one Python-level step per constraint. The fast
version is ``linmetric._kernels.bregman.bregman_sweep``.

References
----------
J. V. Davis, B. Kulis, P. Jain, S. Sra and I. S. Dhillon,
"Information-theoretic metric learning", ICML 2007.
"""

import numpy as np


def bregman_projection(M, v, delta, xi, lam, gamma):
    """Project ``(M, xi)`` onto the constraint of one pair (steps 3.2 to 3.8).

    Parameters
    ----------
    M : ndarray of shape (n_features, n_features)
        Current symmetric positive definite matrix.
    v : ndarray of shape (n_features,)
        ``x_a - x_b``.
    delta : {+1, -1}
        +1 for a similar pair, -1 for a dissimilar one.
    xi : float
        Current slack target of the constraint.
    lam : float
        Current dual variable of the constraint.
    gamma : float
        Slack weight; ``np.inf`` for hard constraints.

    Returns
    -------
    M, xi, lam : the updated matrix (a new array), target and dual variable.
    """
    p = v @ M @ v  # step 3.2: the current squared distance
    if not p > 0:  # v = 0: no metric can move this pair
        return M, xi, lam
    gamma_proj = 1.0 if np.isinf(gamma) else gamma / (gamma + 1.0)
    alpha = min(lam, delta * gamma_proj * (1.0 / p - 1.0 / xi))  # step 3.4
    beta = delta * alpha / (1.0 - delta * alpha * p)  # step 3.5
    if not np.isinf(gamma):
        xi = gamma * xi / (gamma + delta * alpha * xi)  # step 3.6
    lam = lam - alpha  # step 3.7
    Mv = M @ v
    M = M + beta * np.outer(Mv, Mv)  # step 3.8
    return M, xi, lam


def itml(diffs, signs, bounds, prior, gamma, *, max_iter=1000, tol=1e-3):
    """Algorithm 1: cyclic Bregman projections until M settles.

    Parameters
    ----------
    diffs : ndarray of shape (n_constraints, n_features)
        ``x_a - x_b`` for each pair.
    signs : ndarray of shape (n_constraints,)
        +1 similar, -1 dissimilar.
    bounds : tuple (u, l)
        Target squared distances: at most ``u`` for similar pairs, at least
        ``l`` for dissimilar ones.
    prior : ndarray of shape (n_features, n_features)
        The symmetric positive definite ``M0``.
    gamma : float
        Slack weight.
    max_iter : int
        The most sweeps over all constraints.
    tol : float
        Stop after a sweep that changed M by at most ``tol`` relatively,
        ``||M_k - M_{k-1}||_F <= tol * ||M_{k-1}||_F``. (The authors' code
        stops on the relative change of ``lambda`` instead.)

    Returns
    -------
    M : ndarray of shape (n_features, n_features)
    n_iter : int
        Sweeps done.
    converged : bool
    """
    u, l = bounds
    # The sweep visits similar and dissimilar pairs interleaved in proportion
    # (each kind in its given order): in blocks of one kind, each block
    # undoes much of the other's work and the sweeps converge slowly.
    order = interleaved_order(signs)
    diffs, signs = np.asarray(diffs)[order], np.asarray(signs)[order]
    M = np.array(prior, dtype=np.float64)
    lam = np.zeros(len(diffs))  # step 1
    xi = np.where(np.asarray(signs) > 0, u, l).astype(np.float64)  # step 2
    for n_iter in range(1, max_iter + 1):  # step 3
        M_old = M
        for c, v in enumerate(diffs):  # step 3.1: cycle through the pairs
            M, xi[c], lam[c] = bregman_projection(M, v, signs[c], xi[c], lam[c], gamma)
        if np.linalg.norm(M - M_old) <= tol * np.linalg.norm(M_old):  # step 4
            return M, n_iter, True
    return M, max_iter, False


def interleaved_order(signs):
    """Pairs of each sign at evenly spaced positions, each sign's in given order.

    The ``k``-th of ``n`` pairs of one sign goes to position ``(k + 1/2) / n``
    of the unit interval; ties keep similar pairs first.
    """
    signs = np.asarray(signs)
    position = np.zeros(len(signs))
    for sign in (1, -1):
        members = np.flatnonzero(signs == sign)
        position[members] = (np.arange(len(members)) + 0.5) / max(len(members), 1)
    return np.argsort(position, kind="stable")
