"""SCML's stochastic steps: AdaGrad regularised dual averaging on triplets.

For a triplet ``(a, b, c)`` and basis projections ``p`` of the points, the
hinge argument is ``1 + z^T w`` with
``z_k = ((p_a,k - p_b,k)^2 - (p_a,k - p_c,k)^2) / scale``. One step draws a
mini-batch, sums ``z`` over the triplets with a positive hinge (the
subgradient ``g``), and sets in closed form::

    gsum += g;  H2 += g * g
    w_k = gamma t / (delta + sqrt(H2_k)) * max(0, -gsum_k / t - beta)
        = gamma max(0, -gsum_k - beta t) / (delta + sqrt(H2_k))

(the second form is computed: one division per weight instead of two).
The ``z`` of the first triplets are computed before the steps, in
parallel, and kept in a table of bounded size (each triplet is drawn many
times in a fit); a hinge argument needs only the elements with a non-zero
weight, and only a triplet with a positive hinge adds its whole ``z``: a
step costs ``O(batch_size * n_nonzero + n_positive * n_basis + n_basis)``
with kept rows, and ``O(batch_size * n_nonzero)`` when no hinge is positive
(late in a fit, most triplets of a batch hold and most weights are
zero). The batches are drawn by the caller, so the path is the NumPy one
up to the order of the sums.
"""

import numpy as np

from ._config import jit


@jit
def rda_steps(
    projections, triplets, batches, scale, weights, gradient_sum, squared_sum,
    first_step, beta, gamma, delta, table, order,
):  # fmt: skip
    """Run ``len(batches)`` RDA steps in place; return the summed batch objectives.

    The feature rows ``z`` of the first ``n_kept`` triplets are read from
    ``table`` (see :func:`feature_rows`); those of the others are computed
    from the projections at each draw. Only the elements with a non-zero
    weight enter a hinge argument; a triplet with a positive hinge adds its
    whole ``z`` to the subgradient. Skipping the zero weights changes no sum
    (each skipped term is an exact zero); so does skipping, in a step where
    no hinge is positive, the weights that were zero (the threshold only
    grows).

    The table's columns may be in any ``order`` (see
    :func:`permute_columns`): the steps then work on the sums and weights
    in that order, and add every sum over the elements in increasing
    element index as before, so the result does not depend on the order.
    With the likely non-zero weights in the first columns, a hinge argument
    reads a few contiguous cache lines of a row instead of most of them.

    Parameters
    ----------
    projections : ndarray of shape (n_points, n_basis), float64
    triplets : ndarray of shape (n_triplets, 3), intp
    batches : ndarray of shape (n_steps, batch_size), intp
        Rows of ``triplets``, one batch per step.
    scale : float
        Divides every ``z``.
    weights, gradient_sum, squared_sum : ndarray of shape (n_basis,), float64
        ``w``, ``gsum`` and ``H2`` (by element), updated in place.
    first_step : int
        Number of steps done before (``t`` of the first step is one more).
    beta, gamma, delta : float
    table : ndarray of shape (n_kept + batch_size, n_basis), float64
        The ``z`` of triplets ``0 .. n_kept - 1``, then one scratch row per
        triplet of a batch for the others (overwritten); column ``p`` holds
        element ``order[p]``.
    order : ndarray of shape (n_basis,), intp
        A permutation of the elements.

    Returns
    -------
    loss : float
        The sum over the steps of the batch objective
        ``mean [1 + z^T w]_+ + beta sum(w)`` (``w`` before the step).
    """
    n_steps, batch_size = batches.shape
    n_basis = projections.shape[1]
    n_kept = table.shape[0] - batch_size
    # the column of each element; the sums and weights by column
    column = np.empty(n_basis, dtype=np.intp)
    permuted = False
    for p in range(n_basis):
        column[order[p]] = p
        permuted = permuted or order[p] != p
    if permuted:
        w = np.empty(n_basis)
        gsum = np.empty(n_basis)
        h2 = np.empty(n_basis)
        for p in range(n_basis):
            w[p] = weights[order[p]]
            gsum[p] = gradient_sum[order[p]]
            h2[p] = squared_sum[order[p]]
    else:
        w, gsum, h2 = weights, gradient_sum, squared_sum
    gradient = np.empty(n_basis)
    # the columns of the elements with a non-zero weight, in increasing
    # element index
    nonzero = np.empty(n_basis, dtype=np.intp)
    n_nonzero = 0
    for k in range(n_basis):
        if weights[k] != 0.0:
            nonzero[n_nonzero] = column[k]
            n_nonzero += 1
    margins = np.empty(batch_size)
    rows = np.empty(batch_size, dtype=np.intp)
    positive = np.empty(batch_size, dtype=np.intp)
    inverse_batch = 1.0 / batch_size  # a product per element, not a division
    total = 0.0
    for step in range(n_steps):
        t = first_step + step + 1
        for r in range(batch_size):
            triplet = batches[step, r]
            if triplet < n_kept:
                rows[r] = triplet
            else:
                rows[r] = n_kept + r
                if permuted:
                    _feature_row_in_order(
                        projections, triplets[triplet], scale, order, table[n_kept + r]
                    )
                else:
                    _feature_row(
                        projections, triplets[triplet], scale, table[n_kept + r]
                    )
        # sum(w) in increasing k (the order in which the weights were
        # computed), added beside the first hinge arguments
        l1 = _hinge_arguments(table, rows, nonzero, n_nonzero, w, margins)
        hinge = 0.0
        n_positive = 0
        for r in range(batch_size):
            if margins[r] > 0.0:
                positive[n_positive] = rows[r]
                n_positive += 1
                hinge += margins[r]
        total += hinge / batch_size + beta * l1
        threshold = beta * t
        if n_positive == 0:
            # g = 0 leaves both sums as they are and the threshold grows:
            # only a non-zero weight can stay non-zero
            n_kept_nonzero = 0
            for i in range(n_nonzero):
                p = nonzero[i]
                if _set_weight(w, p, gsum, h2, threshold, gamma, delta):
                    nonzero[n_kept_nonzero] = p
                    n_kept_nonzero += 1
            n_nonzero = n_kept_nonzero
            continue
        # g = (z_1 + z_2 + ...) / batch_size over the positive hinges, added
        # in batch order; the usual counts in a single pass
        if n_positive == 1:
            z0 = table[positive[0]]
            for p in range(n_basis):
                g = z0[p] * inverse_batch
                gsum[p] += g
                h2[p] += g * g
        elif n_positive == 2:
            z0 = table[positive[0]]
            z1 = table[positive[1]]
            for p in range(n_basis):
                g = (z0[p] + z1[p]) * inverse_batch
                gsum[p] += g
                h2[p] += g * g
        elif n_positive == 3:
            z0 = table[positive[0]]
            z1 = table[positive[1]]
            z2 = table[positive[2]]
            for p in range(n_basis):
                g = (z0[p] + z1[p] + z2[p]) * inverse_batch
                gsum[p] += g
                h2[p] += g * g
        else:
            gradient[:] = table[positive[0]]
            for j in range(1, n_positive):
                row = table[positive[j]]
                for p in range(n_basis):
                    gradient[p] += row[p]
            for p in range(n_basis):
                g = gradient[p] * inverse_batch
                gsum[p] += g
                h2[p] += g * g
        # w_k = gamma t / (delta + sqrt(H2_k)) max(0, -gsum_k / t - beta),
        # computed as gamma max(0, -gsum_k - beta t) / (delta + sqrt(H2_k)):
        # one division instead of two per non-zero weight (a few roundings
        # apart, and zero exactly where -gsum_k <= beta t)
        # (the loop in order kept apart: going through column[k] there too
        # made a digits fit at 1280 bases 4-9% slower)
        n_nonzero = 0
        if permuted:
            for k in range(n_basis):
                p = column[k]
                if _set_weight(w, p, gsum, h2, threshold, gamma, delta):
                    nonzero[n_nonzero] = p
                    n_nonzero += 1
        else:
            for k in range(n_basis):
                if _set_weight(w, k, gsum, h2, threshold, gamma, delta):
                    nonzero[n_nonzero] = k
                    n_nonzero += 1
    if permuted:
        for p in range(n_basis):
            weights[order[p]] = w[p]
            gradient_sum[order[p]] = gsum[p]
            squared_sum[order[p]] = h2[p]
    return total


@jit
def permute_columns(start, stop, table, order):
    """Put the columns of rows ``start:stop`` of ``table`` in ``order``.

    Column ``p`` becomes the former column ``order[p]``.
    """
    copy = np.empty(order.shape[0])
    for t in range(start, stop):
        row = table[t]
        copy[:] = row
        for p in range(order.shape[0]):
            row[p] = copy[order[p]]


@jit
def _feature_row_in_order(projections, triplet, scale, order, out):
    """``out[p] = z[order[p]]`` of one triplet."""
    a = projections[triplet[0]]
    b = projections[triplet[1]]
    c = projections[triplet[2]]
    for p in range(out.shape[0]):
        k = order[p]
        near = a[k] - b[k]
        far = a[k] - c[k]
        out[p] = (near * near - far * far) / scale


@jit
def _set_weight(weights, k, gradient_sum, squared_sum, threshold, gamma, delta):
    """Set ``w_k`` in closed form; True when it is non-zero."""
    shrunk = -gradient_sum[k] - threshold
    if shrunk > 0.0:
        weights[k] = gamma * shrunk / (delta + np.sqrt(squared_sum[k]))
        return True
    weights[k] = 0.0
    return False


@jit
def _feature_row(projections, triplet, scale, out):
    """``out = z`` of one triplet."""
    a = projections[triplet[0]]
    b = projections[triplet[1]]
    c = projections[triplet[2]]
    for k in range(out.shape[0]):
        near = a[k] - b[k]
        far = a[k] - c[k]
        out[k] = (near * near - far * far) / scale


@jit
def _hinge_arguments(rows_of, rows, index, n_index, weights, out):
    """``out[r] = 1 + sum_i rows_of[rows[r], index[i]] * weights[index[i]]``.

    Each sum in increasing ``i``, as one sequence; eight sums (then two,
    then one) side by side so that their additions overlap. Also returns
    ``sum_i weights[index[i]]``, in the same order.
    """
    n_rows = rows.shape[0]
    total = 0.0
    r = 0
    while r + 8 <= n_rows:
        z0, z1 = rows_of[rows[r]], rows_of[rows[r + 1]]
        z2, z3 = rows_of[rows[r + 2]], rows_of[rows[r + 3]]
        z4, z5 = rows_of[rows[r + 4]], rows_of[rows[r + 5]]
        z6, z7 = rows_of[rows[r + 6]], rows_of[rows[r + 7]]
        m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = 1.0
        l1 = 0.0
        for i in range(n_index):
            j = index[i]
            weight = weights[j]
            l1 += weight
            m0 += z0[j] * weight
            m1 += z1[j] * weight
            m2 += z2[j] * weight
            m3 += z3[j] * weight
            m4 += z4[j] * weight
            m5 += z5[j] * weight
            m6 += z6[j] * weight
            m7 += z7[j] * weight
        if r == 0:
            total = l1
        out[r], out[r + 1], out[r + 2], out[r + 3] = m0, m1, m2, m3
        out[r + 4], out[r + 5], out[r + 6], out[r + 7] = m4, m5, m6, m7
        r += 8
    while r + 2 <= n_rows:
        z0, z1 = rows_of[rows[r]], rows_of[rows[r + 1]]
        m0 = m1 = 1.0
        l1 = 0.0
        for i in range(n_index):
            j = index[i]
            weight = weights[j]
            l1 += weight
            m0 += z0[j] * weight
            m1 += z1[j] * weight
        if r == 0:
            total = l1
        out[r], out[r + 1] = m0, m1
        r += 2
    while r < n_rows:
        z0 = rows_of[rows[r]]
        m0 = 1.0
        l1 = 0.0
        for i in range(n_index):
            weight = weights[index[i]]
            l1 += weight
            m0 += z0[index[i]] * weight
        if r == 0:
            total = l1
        out[r] = m0
        r += 1
    return total


@jit
def local_steps(
    projections, triplets, embedded, batches, scale, coefficients, squared_sum,
    eta, delta, beta,
):  # fmt: skip
    """Run ``len(batches)`` proximal AdaGrad steps of local SCML in place.

    The weight of element ``k`` at the anchor ``a`` is ``u_k^2`` with
    ``u_k = coefficients[k] . embedded[a]``; a triplet with a positive hinge
    adds ``2 u_k z_k embedded[a]`` to row ``k`` of the subgradient. Each
    row then moves by ``eta / sqrt(delta^2 + H2_k)`` times its subgradient
    (``H2_k`` the running sum of its squared norms) and is shrunk by that
    step times ``beta`` in norm (to zero if shorter).

    Parameters
    ----------
    projections : ndarray of shape (n_points, n_basis), float64
    triplets : ndarray of shape (n_triplets, 3), intp
    embedded : ndarray of shape (n_points, n_embedding + 1), float64
        ``(z_x, 1)`` of each point.
    batches : ndarray of shape (n_steps, batch_size), intp
    scale : float
    coefficients : ndarray of shape (n_basis, n_embedding + 1), float64
        Updated in place.
    squared_sum : ndarray of shape (n_basis,), float64
        Updated in place.
    eta, delta, beta : float

    Returns
    -------
    loss : float
        The sum over the steps of the batch objective (before each step).
    """
    n_steps, batch_size = batches.shape
    n_basis, n_columns = coefficients.shape
    gradient = np.empty((n_basis, n_columns))
    factor = np.empty(n_basis)
    total = 0.0
    for step in range(n_steps):
        gradient[:, :] = 0.0
        hinge = 0.0
        for r in range(batch_size):
            triplet = batches[step, r]
            a = triplets[triplet, 0]
            b = triplets[triplet, 1]
            c = triplets[triplet, 2]
            margin = 1.0
            for k in range(n_basis):
                u = 0.0
                for j in range(n_columns):
                    u += coefficients[k, j] * embedded[a, j]
                near = projections[a, k] - projections[b, k]
                far = projections[a, k] - projections[c, k]
                z = (near * near - far * far) / scale
                margin += u * u * z
                factor[k] = 2.0 * u * z
            if margin > 0.0:
                hinge += margin
                for k in range(n_basis):
                    for j in range(n_columns):
                        gradient[k, j] += factor[k] * embedded[a, j]
        penalty = 0.0
        for k in range(n_basis):
            norm2 = 0.0
            for j in range(n_columns):
                norm2 += coefficients[k, j] * coefficients[k, j]
            penalty += np.sqrt(norm2)
        total += hinge / batch_size + beta * penalty
        for k in range(n_basis):
            g2 = 0.0
            for j in range(n_columns):
                gradient[k, j] /= batch_size
                g2 += gradient[k, j] * gradient[k, j]
            squared_sum[k] += g2
            size = eta / np.sqrt(delta * delta + squared_sum[k])
            norm2 = 0.0
            for j in range(n_columns):
                coefficients[k, j] -= size * gradient[k, j]
                norm2 += coefficients[k, j] * coefficients[k, j]
            norm = np.sqrt(norm2)
            shrink = 1.0 - size * beta / norm if norm > 0.0 else 0.0
            if shrink < 0.0:
                shrink = 0.0
            for j in range(n_columns):
                coefficients[k, j] *= shrink
    return total


@jit
def feature_rows(start, stop, projections, triplets, scale, table):
    """``table[t] = z`` of triplet ``t``, for ``start <= t < stop``.

    The same expression as in :func:`rda_steps`, row by row, so the rows
    can be split over threads (``run_on_row_ranges``).
    """
    for t in range(start, stop):
        _feature_row(projections, triplets[t], scale, table[t])


@jit
def group_sorted_rows(rows, keys, order, inverse, first):
    """Merge equal neighbours of the rows in ``order`` (sorted by ``keys``).

    Writes the group of each row in ``inverse`` and the first row of each
    group (the smallest row index, whatever the order of equal keys) in
    ``first``; returns the number of groups, or -1 if two different rows
    share a key (they need not be neighbours then).
    """
    n_groups = 0
    previous = order[0]
    first[0] = previous
    inverse[previous] = 0
    for i in range(1, order.shape[0]):
        current = order[i]
        same = True
        for j in range(rows.shape[1]):
            if rows[current, j] != rows[previous, j]:
                same = False
                break
        if not same:
            if keys[current] == keys[previous]:
                return -1
            n_groups += 1
            first[n_groups] = current
        elif current < first[n_groups]:
            first[n_groups] = current
        inverse[current] = n_groups
        previous = current
    return n_groups + 1


@jit
def class_sums(X, codes, n_classes):
    """``sums[c] = sum of the rows of X with code c``, added in row order."""
    sums = np.zeros((n_classes, X.shape[1]))
    for i in range(X.shape[0]):
        row = sums[codes[i]]
        for j in range(X.shape[1]):
            row[j] += X[i, j]
    return sums
