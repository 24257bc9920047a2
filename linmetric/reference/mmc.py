"""Mahalanobis Metric for Clustering (MMC), Xing, Ng, Jordan and Russell (2002), in NumPy.

With ``S`` the similar pairs and ``D`` the dissimilar pairs, and
``||x - x'||_A = sqrt((x - x')^T A (x - x'))``, the paper's problem is::

    max_A  g(A) = sum_{(i,j) in D} ||x_i - x_j||_A
    s.t.   f(A) = sum_{(i,j) in S} ||x_i - x_j||_A^2 <= 1     (the set C1)
           A is positive semi-definite                          (the set C2)

``f`` is linear in ``A``: ``f(A) = <A, Sigma_S>`` with
``Sigma_S = sum_S (x_i - x_j)(x_i - x_j)^T``, so ``C1`` is a half-space and
its Frobenius projection is ``A - max(0, f(A) - 1) / ||Sigma_S||_F^2 *
Sigma_S``; the projection onto ``C2`` sets the negative eigenvalues to zero.
The full form (section 2.2 of the paper) repeats a gradient step on ``g``,
taken orthogonal to the gradient of ``f`` (that is to ``Sigma_S``), followed
by alternating projections onto ``C1`` and ``C2``.

The diagonal form (section 2.1) minimises the equivalent unconstrained
objective over the diagonal ``a`` of ``A``, ``a >= 0``::

    h(a) = sum_{(i,j) in S} ||x_i - x_j||_a^2 - log(sum_{(i,j) in D} ||x_i - x_j||_a)

which is convex; the paper uses Newton-Raphson. Here: projected Newton
steps (variables at zero that the gradient pushes below zero stay fixed)
with a backtracking (Armijo) line search in which each trial point is
rescaled to the best scale along its ray: ``Q`` is homogeneous of degree
1/2 in ``a``, so ``h(c a) = c s.a - log(c) / 2 - log Q(a)`` is least at
``c = 1 / (2 s.a)`` (at the optimum the similar sum ``s.a`` is 1/2). The
rescaled point is never worse, so a step the plain test accepts is
accepted; far fewer are refused.

Details the paper leaves open, fixed the same way in ``linmetric.MMC``:

- start: ``A0 = I / trace(Sigma_S)`` (so ``f(A0) = 1``) and
  ``a0 = 1 / (2 sum_k s_k)`` on every feature in which some pair differs
  (the scale at which ``h`` is stationary along ``a``), 0 elsewhere;
- ``h`` is unbounded below when some feature separates dissimilar pairs but
  never similar ones (``s_k = 0``): ``s`` is floored at ``1e-3`` times its
  mean over the features in which some pair differs, so such a feature gets
  a large but finite weight;
- the Newton system gets a ridge of ``1e-10`` times the largest diagonal
  entry of the Hessian, so that a feature in which no dissimilar pair
  differs (a zero row) is driven to zero instead of making it singular;
- the gradient step has length ``rate * ||A||_F``; ``rate`` starts at 0.1,
  doubles (up to 1) after a step and halves until a step increases ``g``;
- alternating projections stop once ``f(A) <= 1 + 1e-9`` after a PSD
  projection (at most 50 rounds); ``A`` is then scaled by ``1 / f(A)`` if
  ``f(A) > 1``, which keeps it PSD and makes it feasible;
- a dissimilar pair at distance zero adds nothing to the gradient of ``g``
  (``||.||_A`` is not differentiable there);
- the full form stops when one iteration changes ``A`` by at most ``tol``
  relatively (Frobenius norm); the diagonal form when the full (projected)
  Newton step would change ``a`` by at most ``tol`` relatively; both when
  no step improves the objective.

This is slow on purpose: one Python-level step per pair. The fast version is
``linmetric.MMC``.

References
----------
E. P. Xing, A. Y. Ng, M. I. Jordan and S. Russell, "Distance metric learning,
with application to clustering with side-information", NIPS 2002.
"""

import numpy as np

INITIAL_RATE = 0.1
MAX_PROJECTIONS = 50
FEASIBILITY_TOL = 1e-9
SMALLEST_STEP = 1e-10
ARMIJO = 1e-4
S_FLOOR = 1e-3
RIDGE = 1e-10


def dissimilar_objective(A, dissimilar_diffs):
    """``g(A) = sum_D ||d||_A`` and its gradient ``sum_D d d^T / (2 ||d||_A)``."""
    value = 0.0
    grad = np.zeros_like(A)
    for d in dissimilar_diffs:
        distance = np.sqrt(max(d @ A @ d, 0.0))
        value += distance
        if distance > 0:
            grad += np.outer(d, d) / (2.0 * distance)
    return value, grad


def project(A, sigma):
    """Alternating projections onto ``C1 = {<A, sigma> <= 1}`` and the PSD cone."""
    sigma_sq = np.sum(sigma * sigma)
    for _ in range(MAX_PROJECTIONS):
        excess = np.sum(A * sigma) - 1.0
        if excess > 0:  # projection onto the half-space C1
            A = A - excess / sigma_sq * sigma
        w, V = np.linalg.eigh((A + A.T) / 2)  # projection onto C2
        A = (V * np.maximum(w, 0.0)) @ V.T
        if np.sum(A * sigma) <= 1.0 + FEASIBILITY_TOL:
            break
    value = np.sum(A * sigma)
    if value > 1.0:  # exact feasibility: scaling keeps A PSD
        A = A / value
    return A


def mmc_full(similar_diffs, dissimilar_diffs, *, max_iter=100, tol=1e-3):
    """The full-matrix MMC: projected gradient ascent on ``g`` (section 2.2).

    Returns
    -------
    A : ndarray of shape (n_features, n_features)
    n_iter : int
    converged : bool
    """
    sigma = sum(np.outer(d, d) for d in similar_diffs)  # f(A) = <A, sigma>
    sigma_sq = np.sum(sigma * sigma)
    A = np.eye(sigma.shape[0]) / np.trace(sigma)
    g, _ = dissimilar_objective(A, dissimilar_diffs)
    rate = INITIAL_RATE
    for n_iter in range(1, max_iter + 1):
        _, grad = dissimilar_objective(A, dissimilar_diffs)
        # The gradient of g orthogonal to the gradient of f (sigma).
        grad = grad - np.sum(grad * sigma) / sigma_sq * sigma
        grad_norm = np.linalg.norm(grad)
        if grad_norm == 0:
            return A, n_iter - 1, True
        A_norm = np.linalg.norm(A)
        while True:
            trial = project(A + rate * A_norm / grad_norm * grad, sigma)
            g_trial, _ = dissimilar_objective(trial, dissimilar_diffs)
            if g_trial > g:
                break
            rate /= 2.0
            if rate < SMALLEST_STEP:  # no step increases g: stationary
                trial, g_trial = A, g
                break
        change = np.linalg.norm(trial - A) / A_norm
        A, g = trial, g_trial
        if change <= tol:
            return A, n_iter, True
        rate = min(2.0 * rate, 1.0)
    return A, max_iter, False


def similar_sums(similar_diffs, dissimilar_diffs):
    """``s_k = sum_S d_k^2``, floored on the active features, and those features."""
    s = sum(d * d for d in similar_diffs)
    active = (s > 0) | (np.sum(np.asarray(dissimilar_diffs) ** 2, axis=0) > 0)
    floor = S_FLOOR * s[active].mean()
    return np.where(active, np.maximum(s, floor), 0.0), active


def diagonal_objective(a, s, dissimilar_diffs):
    """``h(a)``, its gradient and its Hessian (section 2.1).

    With ``s`` from :func:`similar_sums`, ``q_p = ||d_p||_a`` and ``Q = sum_D q_p``::

        h(a)      = s . a - log Q
        dh/da_k   = s_k - (sum_p d_pk^2 / (2 q_p)) / Q
        d2h/da_k da_l = (sum_p d_pk^2 d_pl^2 / (4 q_p^3)) / Q + G_k G_l / Q^2

    with ``G_k = sum_p d_pk^2 / (2 q_p)``. Pairs with ``q_p = 0`` are left out
    of the derivatives.
    """
    n_features = a.shape[0]
    Q = 0.0
    G = np.zeros(n_features)
    H = np.zeros((n_features, n_features))
    for d in dissimilar_diffs:
        d2 = d * d
        q = np.sqrt(max(d2 @ a, 0.0))
        Q += q
        if q > 0:
            G += d2 / (2.0 * q)
            H += np.outer(d2, d2) / (4.0 * q**3)
    if not Q > 0:
        return np.inf, np.zeros(n_features), np.zeros((n_features, n_features))
    value = s @ a - np.log(Q)
    grad = s - G / Q
    hess = H / Q + np.outer(G, G) / Q**2
    return value, grad, hess


def mmc_diagonal(similar_diffs, dissimilar_diffs, *, max_iter=100, tol=1e-3):
    """The diagonal MMC: projected Newton on ``h`` with ``a >= 0``.

    Returns
    -------
    a : ndarray of shape (n_features,)
    n_iter : int
    converged : bool
    """
    s, active = similar_sums(similar_diffs, dissimilar_diffs)
    a = np.where(active, 1.0 / (2.0 * s.sum()), 0.0)
    h, _, _ = diagonal_objective(a, s, dissimilar_diffs)
    for n_iter in range(1, max_iter + 1):
        _, grad, hess = diagonal_objective(a, s, dissimilar_diffs)
        free = active & ((a > 0) | (grad < 0))
        hess_free = hess[np.ix_(free, free)]
        hess_free += RIDGE * hess_free.diagonal().max() * np.eye(free.sum())
        direction = np.zeros_like(a)
        direction[free] = np.linalg.solve(hess_free, -grad[free])
        # Convergence is judged on the full Newton step, not on the step the
        # line search takes (a short step far from the optimum is no sign of it).
        change = np.linalg.norm(np.maximum(a + direction, 0.0) - a) / np.linalg.norm(a)
        # h(c a) = c s.a - log(c) / 2 - log Q(a) is least at c = 1 / (2 s.a):
        # each trial point is judged, and the step ends, at the best scale
        # along its ray.
        t = 1.0
        while True:
            trial = np.maximum(a + t * direction, 0.0)
            rescaled = trial / (2.0 * (s @ trial))
            h_trial, _, _ = diagonal_objective(rescaled, s, dissimilar_diffs)
            if h_trial <= h + ARMIJO * grad @ (trial - a):
                break
            t /= 2.0
            if t < SMALLEST_STEP:  # no step decreases h: stationary
                rescaled, change = a / (2.0 * (s @ a)), 0.0
                break
        a = rescaled
        h, _, _ = diagonal_objective(a, s, dissimilar_diffs)
        if change <= tol:
            return a, n_iter, True
    return a, max_iter, False
