"""Bregman projections of ITML: rank-one LogDet updates of a Mahalanobis matrix.

One projection enforces one pair constraint on ``M`` (and on the
constraint's slack target ``xi``). With ``v = x_a - x_b``, ``p = v^T M v``,
``delta = +1`` for a similar pair (wanted: ``p <= xi``) and ``-1`` for a
dissimilar one (wanted: ``p >= xi``), the exact LogDet projection with slack
weight ``gamma`` is::

    alpha  = min(lambda, delta * gamma / (gamma + 1) * (1 / p - 1 / xi))
    lambda = lambda - alpha
    beta   = delta * alpha / (1 - delta * alpha * p)
    xi     = 1 / (1 / xi + delta * alpha / gamma)
    M      = M + beta * (M v)(M v)^T

(``gamma / (gamma + 1)`` becomes 1 and ``xi`` stays fixed when
``gamma = inf``.) ``lambda >= 0`` is the constraint's dual variable: a
constraint that holds and has ``lambda = 0`` leaves ``M`` unchanged.

Each projection costs two passes over ``M``: ``w = M v`` and the rank-one
update. Both are written as row-wise ``axpy`` loops over the contiguous
``d x d`` float64 matrix, which vectorise without reordering sums. The update
adds ``s * z_a * z_b`` with ``z = sqrt(|beta|) M v`` and ``s = sign(beta)``:
the product is the same for ``(a, b)`` and ``(b, a)``, so ``M`` stays exactly
symmetric.
"""

import numpy as np

from ._config import jit


@jit
def _symmetric_matvec(metric, v, out, nonzero):
    # out = M v for symmetric M, as a sum of rows v[b] * M[b, :] over the
    # nonzero entries of v only (pair differences of sparse or image data
    # are often zero in many features), four rows at a time: each pass over
    # ``out`` does four multiply-adds per load and store, and the inner loop
    # vectorises without reordering any sum. ``nonzero`` is workspace.
    n_features = v.shape[0]
    n_nonzero = 0
    for b in range(n_features):
        out[b] = 0.0
        if v[b] != 0.0:
            nonzero[n_nonzero] = b
            n_nonzero += 1
    n_blocked = n_nonzero - n_nonzero % 4
    for k in range(0, n_blocked, 4):
        b0 = nonzero[k]
        b1 = nonzero[k + 1]
        b2 = nonzero[k + 2]
        b3 = nonzero[k + 3]
        v0 = v[b0]
        v1 = v[b1]
        v2 = v[b2]
        v3 = v[b3]
        row0 = metric[b0]
        row1 = metric[b1]
        row2 = metric[b2]
        row3 = metric[b3]
        for a in range(n_features):
            out[a] += v0 * row0[a] + v1 * row1[a] + v2 * row2[a] + v3 * row3[a]
    for k in range(n_blocked, n_nonzero):
        vb = v[nonzero[k]]
        row = metric[nonzero[k]]
        for a in range(n_features):
            out[a] += vb * row[a]


@jit
def _signed_rank_one_update(metric, z, sign):
    # M += sign * z z^T. ``(sign * z[a]) * z[b]`` is exact in the sign, so
    # entries (a, b) and (b, a) receive the same value: M stays symmetric.
    n_features = z.shape[0]
    for a in range(n_features):
        za = sign * z[a]
        row = metric[a]
        for b in range(n_features):
            row[b] += za * z[b]


@jit
def bregman_sweep(metric, diffs, signs, slack, duals, gamma):
    """One cyclic pass of ITML's Bregman projections over all constraints.

    Updates ``metric``, ``slack`` and ``duals`` in place, in the order of the
    rows of ``diffs``.

    Parameters
    ----------
    metric : ndarray of shape (n_features, n_features), float64
        The symmetric positive definite matrix ``M``, C-contiguous.
    diffs : ndarray of shape (n_constraints, n_features), float64
        ``x_a - x_b`` for each constraint pair.
    signs : ndarray of shape (n_constraints,), int8
        +1 for a similar pair, -1 for a dissimilar one.
    slack : ndarray of shape (n_constraints,), float64
        The current targets ``xi`` (start: the bounds ``u`` or ``l``).
    duals : ndarray of shape (n_constraints,), float64
        The dual variables ``lambda`` (start: zeros).
    gamma : float
        Slack weight, positive; ``np.inf`` enforces the bounds exactly.

    Returns
    -------
    n_updates : int
        Number of projections that changed ``M``.

    Notes
    -----
    A constraint whose squared distance ``p`` is not positive (the two
    points coincide, or rounding) is skipped: no metric can change it.
    Accumulation is in float64 throughout.
    """
    n_constraints, n_features = diffs.shape
    finite_gamma = gamma < np.inf
    gamma_proj = gamma / (gamma + 1.0) if finite_gamma else 1.0
    w = np.empty(n_features, dtype=np.float64)
    nonzero = np.empty(n_features, dtype=np.intp)
    n_updates = 0
    for c in range(n_constraints):
        _symmetric_matvec(metric, diffs[c], w, nonzero)
        p = 0.0
        for a in range(n_features):
            p += diffs[c, a] * w[a]
        if not p > 0.0:
            continue
        delta = np.float64(signs[c])
        alpha = min(duals[c], delta * gamma_proj * (1.0 / p - 1.0 / slack[c]))
        if alpha == 0.0:
            continue
        denominator = 1.0 - delta * alpha * p
        if not denominator > 0.0:
            continue
        duals[c] -= alpha
        beta = delta * alpha / denominator
        if finite_gamma:
            slack[c] = 1.0 / (1.0 / slack[c] + delta * alpha / gamma)
        scale = np.sqrt(abs(beta))
        sign = 1.0 if beta > 0.0 else -1.0
        for a in range(n_features):
            w[a] *= scale
        _signed_rank_one_update(metric, w, sign)
        n_updates += 1
    return n_updates
