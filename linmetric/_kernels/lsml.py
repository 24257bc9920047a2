"""LSML's passes over the quadruplets, outside the BLAS products.

With ``v_ab = a - b`` and ``v_cd = c - d`` for each quadruplet, LSML needs
the differences themselves (taken straight from the points by index, with
no gathered copies of the points), the distances ``||L v||`` from the
mapped differences ``L v`` (one BLAS product), and, for each violated
quadruplet (``r = d_ab - d_cd > 0``), the differences scaled by
``sqrt(2 w r / d)`` so that the gradient's symmetric sum
``sum_q 2 w_q r_q (v_ab v_ab^T / d_ab - v_cd v_cd^T / d_cd)`` is two
rank-k BLAS updates. The distances' sums of 64 or so squares are
reassociated (``jit_reassoc``): the results change only by rounding.
"""

import numpy as np

from ._config import jit, jit_reassoc


@jit
def quadruplet_differences(points, index, out):
    """``out[q, 0] = p[a] - p[b]`` and ``out[q, 1] = p[c] - p[d]``; the largest |entry|.

    Parameters
    ----------
    points : ndarray of shape (n_points, n_features), float32 or float64
    index : ndarray of shape (n_quadruplets, 4), intp
        Rows of ``points``: ``a, b, c, d``.
    out : ndarray of shape (n_quadruplets, 2, n_features), float64
        The differences, computed in float64.

    Returns
    -------
    largest : float
        The largest absolute difference (inf if one overflowed).
    """
    n_quadruplets = index.shape[0]
    n_features = points.shape[1]
    # The largest |difference| per feature: the inner loop then carries no
    # dependence from one feature to the next, and vectorises.
    largest = np.zeros(n_features)
    for q in range(n_quadruplets):
        for side in range(2):
            first = points[index[q, 2 * side]]
            second = points[index[q, 2 * side + 1]]
            row = out[q, side]
            for k in range(n_features):
                value = np.float64(first[k]) - np.float64(second[k])
                row[k] = value
                size = abs(value)
                if size > largest[k]:
                    largest[k] = size
    result = 0.0
    for k in range(n_features):
        if largest[k] > result:
            result = largest[k]
    return result


@jit_reassoc
def scale_differences(diffs, factor, lengths):
    """``diffs *= factor`` in place and ``lengths[q, side]``, the norms of ``v_ab``, ``v_cd``.

    ``factor`` is a power of two, so the scaling changes no digit.
    """
    n_quadruplets, _, n_features = diffs.shape
    for q in range(n_quadruplets):
        for side in range(2):
            squares = 0.0
            for k in range(n_features):
                value = diffs[q, side, k] * factor
                diffs[q, side, k] = value
                squares += value * value
            lengths[q, side] = np.sqrt(squares)


@jit
def mean_variance(points):
    """The mean over the columns of their sample variances (``ddof=1``), in float64.

    Two passes: the column means, then the squared deviations from them.
    """
    n_points, n_features = points.shape
    means = np.zeros(n_features)
    for i in range(n_points):
        for k in range(n_features):
            means[k] += points[i, k]
    for k in range(n_features):
        means[k] /= n_points
    squares = np.zeros(n_features)
    for i in range(n_points):
        for k in range(n_features):
            deviation = points[i, k] - means[k]
            squares[k] += deviation * deviation
    total = 0.0
    for k in range(n_features):
        total += squares[k]
    return total / ((n_points - 1) * n_features)


@jit_reassoc
def residuals(mapped, diffs, weights, distance, near, far, known, loss, n_violated):
    """Distances, the squared-hinge loss and the scaled rows of the violated.

    Parameters
    ----------
    mapped : ndarray of shape (2 * n_quadruplets, n_components), float64
        ``L v_ab`` and ``L v_cd`` of each quadruplet, rows ``2q`` and ``2q + 1``.
    diffs : ndarray of shape (n_quadruplets, 2, n_features), float64
        ``v_ab`` and ``v_cd``.
    weights : ndarray of shape (n_quadruplets,), float64
    distance : ndarray of shape (n_quadruplets, 2), float64
        Receives ``d_ab`` and ``d_cd``; holds them already if ``known``
        (``mapped`` is then not read).
    near, far : ndarray of shape (n_rows, n_features), float64
        From row ``n_violated`` on, one row per violated quadruplet receives
        ``v_ab sqrt(2 w r / d_ab)`` and ``v_cd sqrt(2 w r / d_cd)`` (zero
        rows for a zero distance).
    known : bool
    loss : float
        The loss of the quadruplets before these (of earlier blocks), to
        which theirs is added one by one.
    n_violated : int
        The violated quadruplets before these.

    Returns
    -------
    loss : float
        ``loss + sum_q w_q max(d_ab - d_cd, 0)^2``.
    n_violated : int
        ``n_violated`` plus those violated here.
    """
    n_quadruplets, _, n_features = diffs.shape
    n_components = mapped.shape[1]
    for q in range(n_quadruplets):
        if known:
            d_ab = distance[q, 0]
            d_cd = distance[q, 1]
        else:
            squares_ab = 0.0
            squares_cd = 0.0
            for k in range(n_components):
                squares_ab += mapped[2 * q, k] * mapped[2 * q, k]
                squares_cd += mapped[2 * q + 1, k] * mapped[2 * q + 1, k]
            d_ab = np.sqrt(squares_ab)
            d_cd = np.sqrt(squares_cd)
            distance[q, 0] = d_ab
            distance[q, 1] = d_cd
        residual = d_ab - d_cd
        if residual > 0.0:
            loss += weights[q] * residual * residual
            scaled = 2.0 * weights[q] * residual
            root_ab = np.sqrt(scaled / d_ab) if d_ab > 0.0 else 0.0
            root_cd = np.sqrt(scaled / d_cd) if d_cd > 0.0 else 0.0
            for k in range(n_features):
                near[n_violated, k] = diffs[q, 0, k] * root_ab
                far[n_violated, k] = diffs[q, 1, k] * root_cd
            n_violated += 1
    return loss, n_violated
